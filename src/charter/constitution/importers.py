"""Importers for the two public constitution formats.

- The Constitutional AI paper's prompt files (Bai et al. 2022,
  github.com/anthropics/ConstitutionalHarmlessnessPaper): `CritiqueRevisionInstructions.json`
  (`{id: {prompt: [critique request], edit_request: revision request}}`),
  `RLMadisonInstructions.json` (a list of multiple-choice comparison questions), and the few-shot
  files: `CritiqueRevisionFewShotPrompts.json` (transcripts ending in CritiqueRequest, Critique,
  RevisionRequest, Revision), `RLMadisonFewShotPrompts.json` (`prompt`, `corrects`, `incorrects`)
  and `RLMadisonPrecogFewShotPrompts.json` (chain-of-thought labelling transcripts).
- Hugging Face's llm-swarm constitution JSON: `constitutions: [{critic, revision}]` and
  `system_chat: [[messages…]]`, where each chat ends with critique request, critique, revision
  request and revision turns.

The paper keeps critique/revision principles and comparison principles apart (16 each), so the
import holds 32 principles: `harmful0`… with critique + revision, `comparison0`… with a comparison.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from charter.constitution.schema import (
    Constitution,
    CritiqueRevisionExample,
    FewShot,
    LabelExample,
    Principle,
    Source,
)
from charter.errors import InputError
from charter.records import Message

PAPER_REF = "Bai et al. 2022, Constitutional AI (ConstitutionalHarmlessnessPaper)"
TURN = re.compile(r"\n\n(Human|Assistant|CritiqueRequest|Critique|RevisionRequest|Revision):")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, None, "file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(path, getattr(e, "lineno", None), f"not valid JSON: {e}") from None


def _strip_tags(text: str, *tags: str) -> str:
    """Remove the paper's `\\n\\nTag:` scaffolding around a request."""
    text = text.strip()
    for tag in tags:
        text = text.removeprefix(f"{tag}:").removesuffix(f"{tag}:").strip()
    return text


def split_transcript(text: str) -> list[tuple[str, str]]:
    """`"\\n\\nHuman: hi\\n\\nAssistant: yo"` → `[("Human", "hi"), ("Assistant", "yo")]`.

    >>> split_transcript("\\n\\nHuman: hi\\n\\nAssistant: yo\\n\\nHuman:")
    [('Human', 'hi'), ('Assistant', 'yo')]
    """
    parts = TURN.split("\n\n" + text.lstrip("\n") if not text.startswith("\n\n") else text)
    turns = [(parts[i], parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2)]
    return [(who, said) for who, said in turns if said]


def _messages(turns: list[tuple[str, str]]) -> list[Message]:
    roles = {"Human": "user", "Assistant": "assistant"}
    return [Message(role=roles[who], content=said) for who, said in turns]


def critique_revision_principles(path: Path) -> list[Principle]:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise InputError(path, None, "expected an object of {id: {prompt, edit_request}}")
    principles = []
    for pid, entry in data.items():
        if not isinstance(entry, dict) or "prompt" not in entry or "edit_request" not in entry:
            raise InputError(
                path, None, f"principle {pid!r}: expected fields `prompt` and `edit_request`"
            )
        prompts = entry["prompt"] if isinstance(entry["prompt"], list) else [entry["prompt"]]
        principles.append(
            Principle(
                id=str(pid),
                critique=_strip_tags(str(prompts[0]), "CritiqueRequest", "Critique"),
                revision=_strip_tags(str(entry["edit_request"]), "RevisionRequest", "Revision"),
                sources=[Source(kind="paper", ref=f"{path.name}#{pid}", note=PAPER_REF)],
                tags=["paper"],
            )
        )
    return principles


def comparison_principles(path: Path) -> list[Principle]:
    data = _read_json(path)
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise InputError(path, None, "expected a list of comparison questions")
    return [
        Principle(
            id=f"comparison{i}",
            comparison=_strip_tags(text, "Options"),
            sources=[Source(kind="paper", ref=f"{path.name}#{i}", note=PAPER_REF)],
            tags=["paper"],
        )
        for i, text in enumerate(data)
    ]


def critique_revision_examples(path: Path) -> list[CritiqueRevisionExample]:
    data = _read_json(path)
    if not isinstance(data, list):
        raise InputError(path, None, "expected a list of transcripts")
    examples = []
    for i, text in enumerate(data):
        turns = split_transcript(str(text))
        fields = {who: said for who, said in turns if who not in ("Human", "Assistant")}
        missing = {"CritiqueRequest", "Critique", "RevisionRequest", "Revision"} - set(fields)
        if missing:
            raise InputError(path, None, f"transcript {i}: lacks {', '.join(sorted(missing))}")
        examples.append(
            CritiqueRevisionExample(
                messages=_messages([t for t in turns if t[0] in ("Human", "Assistant")]),
                critique_request=fields["CritiqueRequest"],
                critique=fields["Critique"],
                revision_request=fields["RevisionRequest"],
                revision=fields["Revision"],
            )
        )
    return examples


def label_examples(path: Path) -> list[LabelExample]:
    data = _read_json(path)
    if not isinstance(data, list):
        raise InputError(path, None, "expected a list of labelling examples")
    examples = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or "prompt" not in entry:
            raise InputError(path, None, f"example {i}: expected an object with `prompt`")
        if "corrects" in entry:
            turns = split_transcript(str(entry["prompt"]))
            for chosen, rejected in zip(entry["corrects"], entry["incorrects"], strict=False):
                examples.append(
                    LabelExample(
                        messages=_messages(turns), chosen=str(chosen), rejected=str(rejected)
                    )
                )
        else:
            examples.append(_precog_example(str(entry["prompt"]), path, i))
    return examples


PRECOG = re.compile(
    r"an assistant(?: \(A\))?:\n\n(?P<dialog>.*?)\n\n\{\}\n"
    r" \(A\) \[\[\[(?P<a>.*?)\]\]\]\n \(B\) \[\[\[(?P<b>.*?)\]\]\]"
    r"\n\nAssistant: Let's think step by step:\s*(?P<reasoning>.*?)"
    r"\n\nHuman:\nSo the answer is: \((?P<answer>[AB])\)",
    re.S,
)
DIALOG_TURN = re.compile(r"(?:^|\n\n)(H|A):\s*")


def _precog_example(text: str, path: Path, index: int) -> LabelExample:
    """A chain-of-thought labelling transcript: dialog in H:/A: lines, options in [[[…]]]."""
    m = PRECOG.search(text)
    if m is None:
        raise InputError(
            path, None, f"example {index}: not in the chain-of-thought transcript shape"
        )
    parts = DIALOG_TURN.split(m["dialog"])
    roles = {"H": "user", "A": "assistant"}
    messages = [
        Message(role=roles[parts[i]], content=parts[i + 1].strip())
        for i in range(1, len(parts) - 1, 2)
    ]
    chosen, rejected = (m["a"], m["b"]) if m["answer"] == "A" else (m["b"], m["a"])
    return LabelExample(
        messages=messages,
        chosen=chosen.strip(),
        rejected=rejected.strip(),
        reasoning=m["reasoning"].strip(),
    )


ANTHROPIC_FILES = {
    "CritiqueRevisionInstructions.json": "critique_revision",
    "RLMadisonInstructions.json": "comparison",
    "CritiqueRevisionFewShotPrompts.json": "critique_revision_examples",
    "RLMadisonFewShotPrompts.json": "label_examples",
    "RLMadisonPrecogFewShotPrompts.json": "label_examples",
}


def import_anthropic(paths: list[Path], name: str = "anthropic-cai-paper") -> Constitution:
    """One constitution from any of the paper's files (or a folder holding them)."""
    files: list[Path] = []
    for p in paths:
        files.extend(
            sorted(q for q in p.iterdir() if q.name in ANTHROPIC_FILES) if p.is_dir() else [p]
        )
    principles: list[Principle] = []
    few_shot = FewShot()
    for f in files:
        kind = ANTHROPIC_FILES.get(f.name)
        if kind is None:
            raise InputError(
                f, None, f"not one of the paper's files ({', '.join(ANTHROPIC_FILES)})"
            )
        if kind == "critique_revision":
            principles.extend(critique_revision_principles(f))
        elif kind == "comparison":
            principles.extend(comparison_principles(f))
        elif kind == "critique_revision_examples":
            few_shot.critique_revision.extend(critique_revision_examples(f))
        else:
            few_shot.labeling.extend(label_examples(f))
    if not principles:
        raise InputError(
            ", ".join(map(str, paths)),
            None,
            "no principles: give CritiqueRevisionInstructions.json or RLMadisonInstructions.json",
        )
    return Constitution(
        name=name,
        description="Imported from the Constitutional AI paper's prompt files (" + PAPER_REF + ").",
        principles=principles,
        few_shot=few_shot,
    )


def import_hf(path: Path, name: str | None = None) -> Constitution:
    """llm-swarm's constitution JSON: `constitutions: [{critic, revision}]`, `system_chat`."""
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("constitutions"), list):
        raise InputError(
            path, None, "expected an object with a `constitutions` list of {critic, revision}"
        )
    principles = []
    for i, entry in enumerate(data["constitutions"]):
        if not isinstance(entry, dict) or not {"critic", "revision"} <= set(entry):
            raise InputError(
                path, None, f"constitutions[{i}]: expected fields `critic` and `revision`"
            )
        principles.append(
            Principle(
                id=f"principle{i}",
                critique=str(entry["critic"]),
                revision=str(entry["revision"]),
                sources=[
                    Source(
                        kind="custom",
                        ref=f"{path.name}#constitutions[{i}]",
                        note="llm-swarm format",
                    )
                ],
            )
        )
    examples = []
    for i, chat in enumerate(data.get("system_chat") or []):
        try:
            messages = [Message.model_validate(m) for m in chat]
        except (ValueError, TypeError) as e:
            raise InputError(path, None, f"system_chat[{i}]: {e}") from None
        if len(messages) < 6:
            raise InputError(
                path,
                None,
                f"system_chat[{i}]: expected the conversation plus 4 critique/revision turns",
            )
        *conversation, creq, crit, rreq, rev = messages
        examples.append(
            CritiqueRevisionExample(
                messages=conversation,
                critique_request=creq.content,
                critique=crit.content,
                revision_request=rreq.content,
                revision=rev.content,
            )
        )
    return Constitution(
        name=name or path.stem,
        description=f"Imported from {path.name} (llm-swarm constitution format).",
        principles=principles,
        few_shot=FewShot(critique_revision=examples),
    )
