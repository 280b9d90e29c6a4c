"""Draft: from an analysis to a constitution whose every principle can be traced back to votes.

Last stage of the pipeline (ingest → analyze → draft). Statements that pass a threshold (on
GIC, or on the lowest agree rate of any group) are taken in order of GIC; a statement whose
embedding is at least `dedup_threshold` similar (cosine) to an already kept one merges into that
idea instead of making a new principle. Each idea becomes a principle with a `comparison`
("Choose the response that …") and a critique/revision pair, written by a fixed template or
rewritten by an LLM through any backend (falling back to the template, and saying so, when the
model's answer does not have the expected form). The principle's `sources` name the statement
ids; its `provenance` holds every statement's text hash, GIC, per-group agree counts and rates,
and the thresholds used.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from charter.backends.embeddings import Embedder
from charter.collective.analysis import ANALYSIS_FILE, AnalysisSummary, StatementSummary
from charter.constitution.schema import Constitution, Principle, Source
from charter.records import Message, Sampling, Strict

DEFAULT_MIN_GIC = 0.7
CONSTITUTION_FILE = "constitution.yaml"
Rewrite = Literal["template", "llm"]


class DraftConfig(Strict):
    """How statements become principles."""

    min_gic: float | None = Field(
        None,
        ge=0,
        le=1,
        description=f"Keep statements with GIC ≥ this (default {DEFAULT_MIN_GIC}).",
    )
    min_group_agree: float | None = Field(
        None, ge=0, le=1, description="Instead: keep statements every group agrees with at ≥ this."
    )
    dedup_threshold: float = Field(
        0.85, ge=0, le=1.0001, description="Cosine similarity at which statements merge."
    )
    include_unmoderated: bool = Field(
        True, description="Also use statements never moderated (moderated = 0); -1 never."
    )
    max_principles: int | None = Field(None, ge=1)
    rewrite: Rewrite = "template"
    backend: str | None = Field(None, description="Backend spec for `rewrite: llm`.")
    name: str | None = None

    @model_validator(mode="after")
    def _one_threshold(self) -> DraftConfig:
        if self.min_gic is not None and self.min_group_agree is not None:
            raise ValueError("give --min-gic or --min-group-agree, not both")
        return self

    @property
    def rule(self) -> tuple[str, float]:
        if self.min_group_agree is not None:
            return "min_group_agree", self.min_group_agree
        return "min_gic", self.min_gic if self.min_gic is not None else DEFAULT_MIN_GIC


@dataclass(frozen=True)
class Idea:
    """A kept statement (`lead`, highest GIC) and the near-duplicates merged into it."""

    lead: StatementSummary
    members: tuple[tuple[StatementSummary, float], ...]  # (statement, similarity to lead)


def min_group_agree(s: StatementSummary) -> float:
    return min((g.pa for g in s.groups.values()), default=0.0)


def select_statements(summary: AnalysisSummary, config: DraftConfig) -> list[StatementSummary]:
    """Statements that pass the threshold, highest GIC first (ties: id order)."""
    rule, threshold = config.rule
    allowed = {1, 0} if config.include_unmoderated else {1}
    picked = [
        s
        for s in summary.statements
        if s.moderated in allowed
        and (s.gic if rule == "min_gic" else min_group_agree(s)) >= threshold
    ]
    order = sorted(range(len(picked)), key=lambda i: (-picked[i].gic, i))
    return [picked[i] for i in order]


def merge_near_duplicates(
    statements: Sequence[StatementSummary], embed: Embedder, threshold: float
) -> list[Idea]:
    """Greedy, in the given order: each statement joins the most similar kept lead when the
    cosine similarity reaches `threshold`, else it leads a new idea."""
    if not statements:
        return []
    vectors = np.asarray(embed([s.text for s in statements]), dtype=np.float64)
    leads: list[int] = []
    members: dict[int, list[tuple[StatementSummary, float]]] = {}
    for i, s in enumerate(statements):
        if leads:
            sims = vectors[leads] @ vectors[i]
            best = int(np.argmax(sims))
            if sims[best] >= threshold:
                members[leads[best]].append((s, round(float(sims[best]), 4)))
                continue
        leads.append(i)
        members[i] = [(s, 1.0)]
    return [Idea(lead=statements[i], members=tuple(members[i])) for i in leads]


def _quoted(text: str) -> str:
    return "“" + " ".join(text.split()) + "”"


def template_texts(idea: Idea) -> dict[str, str]:
    """The fixed wording: the statement quoted as it was voted on, in any language."""
    q = _quoted(idea.lead.text)
    return {
        "comparison": (
            f"Choose the response that best upholds this publicly supported principle: {q}"
        ),
        "critique": (
            "Identify specific ways in which the assistant's last response conflicts with this "
            f"publicly supported principle: {q}"
        ),
        "revision": (
            "Please rewrite the assistant's response so that it upholds this publicly supported "
            f"principle: {q}"
        ),
    }


REWRITE_SYSTEM = (
    "You turn statements that the public voted for into principles of an AI constitution. "
    "Keep the statement's meaning exactly; add no new requirement."
)
_FIELDS = ("COMPARISON", "CRITIQUE", "REVISION")


def rewrite_prompt(idea: Idea) -> list[Message]:
    others = [m.text for m, _ in idea.members[1:]]
    similar = "".join(f"\n- {' '.join(t.split())}" for t in others)
    user = (
        f"Statement: {_quoted(idea.lead.text)}\n"
        + (f"Similar statements merged into it:{similar}\n" if others else "")
        + "Answer with exactly three lines:\n"
        "COMPARISON: Choose the response that …\n"
        "CRITIQUE: (ask to identify how the assistant's last response conflicts with it)\n"
        "REVISION: (ask to rewrite the response so that it follows it)"
    )
    return [Message(role="system", content=REWRITE_SYSTEM), Message(role="user", content=user)]


def parse_rewrite(text: str) -> dict[str, str] | None:
    """The three texts from a model's answer, or None when one is missing or malformed.

    >>> parse_rewrite("COMPARISON: Choose the response that is kind.\\nCRITIQUE: How unkind?\\n"
    ...               "REVISION: Make it kind.")["comparison"]
    'Choose the response that is kind.'
    >>> parse_rewrite("COMPARISON: Be kind.\\nCRITIQUE: a\\nREVISION: b") is None
    True
    """
    found: dict[str, str] = {}
    for name in _FIELDS:
        match = re.search(rf"^\s*\**{name}\**\s*:\s*(.+?)\s*$", text, re.MULTILINE | re.IGNORECASE)
        if match is None or not match.group(1).strip():
            return None
        found[name.lower()] = match.group(1).strip()
    if not found["comparison"].lower().startswith("choose the response that"):
        return None
    return found


def rewrite_with_llm(ideas: Sequence[Idea], backend: Any) -> list[tuple[dict[str, str], str]]:
    """(texts, how they were made) per idea, asking `backend` once for all ideas."""
    params = Sampling(temperature=0.0, max_new_tokens=200, seed=0)
    completions = backend.generate([rewrite_prompt(i) for i in ideas], params)
    out: list[tuple[dict[str, str], str]] = []
    for idea, completion in zip(ideas, completions, strict=True):
        parsed = parse_rewrite(completion.text)
        if parsed is None:
            out.append((template_texts(idea), f"template (llm:{backend.spec} answer unusable)"))
        else:
            out.append((parsed, f"llm:{backend.spec}"))
    return out


def _text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _principle_id(sid: str, taken: set[str]) -> str:
    base = "public-" + re.sub(r"[^A-Za-z0-9_.:-]", "-", sid)
    pid, n = base, 2
    while pid in taken:
        pid, n = f"{base}-{n}", n + 1
    taken.add(pid)
    return pid


def _statement_provenance(s: StatementSummary, similarity: float) -> dict[str, Any]:
    return {
        "id": s.statement_id,
        "text": s.text,
        "text_sha256": _text_sha256(s.text),
        "moderated": s.moderated,
        "gic": s.gic,
        "agree_rate": {g: st.pa for g, st in s.groups.items()},
        "agree": {g: st.na for g, st in s.groups.items()},
        "disagree": {g: st.nd for g, st in s.groups.items()},
        "seen": {g: st.ns for g, st in s.groups.items()},
        "similarity_to_lead": similarity,
    }


def _note(s: StatementSummary) -> str:
    rates = ", ".join(f"group {g} {100 * st.pa:.0f}%" for g, st in s.groups.items())
    return f"GIC {s.gic:.3f}; agree rate by group: {rates}"


def draft_constitution(
    summary: AnalysisSummary,
    config: DraftConfig | None = None,
    *,
    embed: Embedder | None = None,
    backend: Any = None,
    analysis_sha256: str | None = None,
) -> Constitution:
    """The constitution drafted from an analysis. `embed` defaults to all-MiniLM-L6-v2;
    `backend` (any charter backend) is required for `rewrite: llm` unless `config.backend`
    names one."""
    # long: the drafting steps (select, cluster, rewrite, order) share the analysis and its config
    from charter.errors import ConfigError

    config = config or DraftConfig()
    selected = select_statements(summary, config)
    rule, threshold = config.rule
    if not selected:
        raise ConfigError(
            f"no statement has {rule.replace('_', ' ')} ≥ {threshold} "
            f"(the highest GIC is {max((s.gic for s in summary.statements), default=0):.3f}); "
            "lower the threshold"
        )
    embedding_model = "custom"
    if embed is None:
        from charter.backends.embeddings import MODEL_NAME, minilm

        embed, embedding_model = minilm, MODEL_NAME
    ideas = merge_near_duplicates(selected, embed, config.dedup_threshold)
    if config.max_principles is not None:
        ideas = ideas[: config.max_principles]
    if config.rewrite == "llm":
        if backend is None:
            if config.backend is None:
                raise ConfigError("--rewrite llm needs --model SPEC")
            from charter.backends import load_backend

            backend = load_backend(config.backend)
        texts = rewrite_with_llm(ideas, backend)
    else:
        texts = [(template_texts(i), "template") for i in ideas]

    group_sizes = {str(g.id): g.size for g in summary.groups}
    selection = {
        "rule": rule,
        "threshold": threshold,
        "dedup_threshold": config.dedup_threshold,
        "include_unmoderated": config.include_unmoderated,
        "max_principles": config.max_principles,
        "embedding_model": embedding_model,
    }
    taken: set[str] = set()
    principles = []
    for idea, (words, how) in zip(ideas, texts, strict=True):
        principles.append(
            Principle(
                id=_principle_id(idea.lead.statement_id, taken),
                critique=words["critique"],
                revision=words["revision"],
                comparison=words["comparison"],
                sources=[
                    Source(kind="public", ref=s.statement_id, note=_note(s))
                    for s, _ in idea.members
                ],
                tags=["collective"],
                provenance={
                    "method": "charter collective draft",
                    "source": summary.source.source,
                    "analysis_sha256": analysis_sha256,
                    "groups_from": summary.groups_from,
                    "group_sizes": group_sizes,
                    "selection": selection,
                    "rewrite": how,
                    "gic": idea.lead.gic,
                    "statements": [_statement_provenance(s, sim) for s, sim in idea.members],
                },
            )
        )
    n_statements = sum(len(i.members) for i in ideas)
    source_name = Path(summary.source.source).name or "public input"
    return Constitution(
        name=config.name or f"collective-{re.sub(r'[^A-Za-z0-9_.-]+', '-', source_name)}",
        description=(
            f"Drafted by charter from {n_statements} public statements of {summary.source.source} "
            f"({rule.replace('_', ' ')} ≥ {threshold}; {len(summary.groups)} opinion groups from "
            f"{summary.groups_from}). Each principle cites its statements with their GIC and "
            "per-group agree rates."
        ),
        principles=principles,
    )


def write_constitution(
    constitution: Constitution, out: str | Path, analysis_dir: str | Path | None = None
) -> list[Path]:
    """Write the YAML to `out`, and also to `<analysis_dir>/constitution.yaml` (what
    `--constitution collective:DIR` loads) when that is another file."""
    from charter.constitution.load import dump_constitution
    from charter.runs import atomic_write_text

    text = dump_constitution(constitution)
    targets = [Path(out)]
    if analysis_dir is not None:
        home = Path(analysis_dir) / CONSTITUTION_FILE
        if home.resolve() != Path(out).resolve():
            targets.append(home)
    for path in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    return targets


def analysis_sha256(folder: str | Path) -> str:
    return hashlib.sha256((Path(folder) / ANALYSIS_FILE).read_bytes()).hexdigest()
