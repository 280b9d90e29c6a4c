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

import re
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from charter.constitution.schema import (
    Constitution,
    CritiqueRevisionExample,
    FewShot,
    LabelExample,
    Principle,
    Source,
)
from charter.errors import InputError, describe_validation_error, show_value
from charter.records import Message
from charter.userinput import parse_json, read_text

PAPER_REF = "Bai et al. 2022, Constitutional AI (ConstitutionalHarmlessnessPaper)"
TURN = re.compile(r"\n\n(Human|Assistant|CritiqueRequest|Critique|RevisionRequest|Revision):")
M = TypeVar("M", bound=BaseModel)


def _read_json(path: Path) -> Any:
    return parse_json(read_text(path, what="JSON file"), path)


def _build(model: type[M], path: Path, where: str, /, **fields: Any) -> M:
    """`model(**fields)`, its validation errors worded for the user and prefixed by `where`."""
    try:
        return model.model_validate(fields)
    except ValidationError as e:
        prefix = f"{where}: " if where else ""
        raise InputError(path, None, prefix + describe_validation_error(e)) from None


def _text(value: Any, path: Path, where: str) -> str:
    """`value` if it is non-blank text; else an error naming `where` (the file's own field)."""
    if not isinstance(value, str):
        raise InputError(path, None, f"{where}: expected text (got {show_value(value)})")
    if not value.strip():
        raise InputError(path, None, f"{where}: expected non-empty text (got {show_value(value)})")
    return value


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
    """The Human/Assistant turns as chat messages (critique/revision turns are not the chat)."""
    roles = {"Human": "user", "Assistant": "assistant"}
    return [Message(role=roles[who], content=said) for who, said in turns if who in roles]


def _stripped(text: str, path: Path, where: str, *tags: str) -> str:
    request = _strip_tags(text, *tags)
    if not request:
        raise InputError(path, None, f"{where}: holds only the `{tags[0]}:` scaffolding, no text")
    return request


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
        if not prompts:
            raise InputError(
                path, None, f"principle {pid!r}: field `prompt` is an empty list, expected text"
            )
        where = f"principle {pid!r}"
        critique = _text(prompts[0], path, f"{where}, field `prompt`")
        revision = _text(entry["edit_request"], path, f"{where}, field `edit_request`")
        principles.append(
            _build(
                Principle,
                path,
                where,
                id=pid,
                critique=_stripped(
                    critique, path, f"{where}, field `prompt`", "CritiqueRequest", "Critique"
                ),
                revision=_stripped(
                    revision, path, f"{where}, field `edit_request`", "RevisionRequest", "Revision"
                ),
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
        _build(
            Principle,
            path,
            f"question {i}",
            id=f"comparison{i}",
            comparison=_stripped(text, path, f"question {i}", "Options"),
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
        turns = split_transcript(_text(text, path, f"transcript {i}"))
        fields = {who: said for who, said in turns if who not in ("Human", "Assistant")}
        missing = {"CritiqueRequest", "Critique", "RevisionRequest", "Revision"} - set(fields)
        if missing:
            raise InputError(path, None, f"transcript {i}: lacks {', '.join(sorted(missing))}")
        examples.append(
            _build(
                CritiqueRevisionExample,
                path,
                f"transcript {i}",
                messages=_messages(turns),
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
        prompt = _text(entry["prompt"], path, f"example {i}, field `prompt`")
        if "corrects" in entry or "incorrects" in entry:
            examples.extend(_paired_examples(entry, prompt, path, i))
        else:
            examples.append(_precog_example(prompt, path, i))
    return examples


def _paired_examples(
    entry: dict[str, Any], prompt: str, path: Path, index: int
) -> list[LabelExample]:
    """A plain labelling example: the dialog, and `corrects[k]` preferred to `incorrects[k]`."""
    answers = {name: entry.get(name) for name in ("corrects", "incorrects")}
    for name, value in answers.items():
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise InputError(
                path,
                None,
                f"example {index}: field `{name}`: expected a list of answers, one per pair "
                f"(got {show_value(value)})",
            )
    corrects, incorrects = answers["corrects"] or [], answers["incorrects"] or []
    if len(corrects) != len(incorrects) or not corrects:
        raise InputError(
            path,
            None,
            f"example {index}: `corrects` holds {len(corrects)} answers and `incorrects` "
            f"{len(incorrects)}; they are paired, so they need the same number (at least one)",
        )
    messages = _messages(split_transcript(prompt))
    return [
        _build(
            LabelExample,
            path,
            f"example {index}",
            messages=messages,
            chosen=chosen,
            rejected=rejected,
        )
        for chosen, rejected in zip(corrects, incorrects, strict=True)
    ]


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
        {"role": roles[parts[i]], "content": parts[i + 1].strip()}
        for i in range(1, len(parts) - 1, 2)
    ]
    chosen, rejected = (m["a"], m["b"]) if m["answer"] == "A" else (m["b"], m["a"])
    return _build(
        LabelExample,
        path,
        f"example {index}",
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
    where = Path(", ".join(map(str, paths)))
    if not principles:
        raise InputError(
            where,
            None,
            "no principles: give CritiqueRevisionInstructions.json or RLMadisonInstructions.json",
        )
    return _build(
        Constitution,
        where,
        "",
        name=name,
        description="Imported from the Constitutional AI paper's prompt files (" + PAPER_REF + ").",
        principles=principles,
        few_shot=few_shot,
    )


def import_hf(path: Path, name: str | None = None) -> Constitution:
    """llm-swarm's constitution JSON: `constitutions: [{critic, revision}]`, `system_chat`."""
    # long: one file format, validated entry by entry with its own message for each field
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("constitutions"), list):
        raise InputError(
            path, None, "expected an object with a `constitutions` list of {critic, revision}"
        )
    if not data["constitutions"]:
        raise InputError(path, None, "`constitutions` is empty: expected at least one principle")
    principles = []
    for i, entry in enumerate(data["constitutions"]):
        if not isinstance(entry, dict) or not {"critic", "revision"} <= set(entry):
            raise InputError(
                path, None, f"constitutions[{i}]: expected fields `critic` and `revision`"
            )
        principles.append(
            _build(
                Principle,
                path,
                f"constitutions[{i}]",
                id=f"principle{i}",
                critique=_text(entry["critic"], path, f"constitutions[{i}], field `critic`"),
                revision=_text(entry["revision"], path, f"constitutions[{i}], field `revision`"),
                sources=[
                    Source(
                        kind="custom",
                        ref=f"{path.name}#constitutions[{i}]",
                        note="llm-swarm format",
                    )
                ],
            )
        )
    chats = data.get("system_chat")
    if chats is not None and not isinstance(chats, list):
        raise InputError(
            path, None, f"`system_chat`: expected a list of chats (got {show_value(chats)})"
        )
    examples = []
    for i, chat in enumerate(chats or []):
        if not isinstance(chat, list):
            raise InputError(
                path,
                None,
                f"system_chat[{i}]: expected a list of messages (got {show_value(chat)})",
            )
        messages = []
        for j, m in enumerate(chat):
            if not isinstance(m, dict):
                raise InputError(
                    path,
                    None,
                    f"system_chat[{i}][{j}]: expected a message {{role, content}} "
                    f"(got {show_value(m)})",
                )
            messages.append(_build(Message, path, f"system_chat[{i}][{j}]", **m))
        if len(messages) < 6:
            raise InputError(
                path,
                None,
                f"system_chat[{i}]: expected the conversation plus 4 critique/revision turns",
            )
        *conversation, creq, crit, rreq, rev = messages
        examples.append(
            _build(
                CritiqueRevisionExample,
                path,
                f"system_chat[{i}]",
                messages=conversation,
                critique_request=creq.content,
                critique=crit.content,
                revision_request=rreq.content,
                revision=rev.content,
            )
        )
    return _build(
        Constitution,
        path,
        "",
        name=path.stem if name is None else name,
        description=f"Imported from {path.name} (llm-swarm constitution format).",
        principles=principles,
        few_shot=FewShot(critique_revision=examples),
    )
