"""The records of a conversation: its statements, the ingest report, and the validated
`Conversation` that every later stage reads (`charter.collective.votes` reads the files,
`charter.collective.ingestion` builds it).

Conventions, the same everywhere in charter's API: **agree = +1, disagree = -1, pass = 0**, a
missing cell means "not seen". Ids are strings, ordered by `natural_order` (numerically when
every id is a number).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, field_validator

from charter.records import Record, Strict

Moderation = Literal[-1, 0, 1]
SourceFormat = Literal["polis-export", "polis-wide", "long-csv", "long-jsonl", "ingested"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # numpy's int64, where timestamps are kept


class Statement(Record):
    """One public statement (a Polis "comment"). `moderated`: 1 in, -1 out, 0 never moderated."""

    statement_id: str = Field(min_length=1)
    text: str
    moderated: Moderation = 0
    author_id: str | None = None
    created: int | None = Field(None, ge=INT64_MIN, le=INT64_MAX)

    @field_validator("statement_id")
    @classmethod
    def _id_clean(cls, v: str) -> str:
        if v != v.strip() or not v:
            raise ValueError("statement ids must be non-empty and carry no surrounding spaces")
        return v

    @field_validator("text")
    @classmethod
    def _text_nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("empty text")
        return v


class IngestReport(Strict):
    """What ingest read and what it dropped; written as `ingest.json`."""

    schema_version: int = 1
    source: str
    format: SourceFormat
    statements_file: str
    votes_file: str
    groups_file: str | None = None
    n_statements: int
    n_participants: int
    n_votes: int
    n_superseded: int = Field(0, description="Older votes replaced by a later vote on the pair.")
    n_tossed_participants: int = Field(0, description="Participants in ids-to-toss.csv dropped.")
    n_tossed_votes: int = 0
    dropped: dict[str, int] = Field(default_factory=dict, description="--lenient drops by reason.")
    skipped: dict[str, int] = Field(
        default_factory=dict,
        description="Left out by rule in every mode, never fatal: statements with empty text "
        "(moderated out, or not) and the votes on them.",
    )
    warnings: list[str] = Field(default_factory=list, description="Skips a person should check.")


@dataclass(frozen=True)
class Conversation:
    """Validated statements and votes (the latest vote per participant and statement).

    Votes are parallel arrays indexing `participant_ids` and `statements`; values are +1/0/-1.
    `export_groups` holds the group ids of a Polis `participants-votes.csv`, when there was one.
    """

    statements: tuple[Statement, ...]
    participant_ids: tuple[str, ...]
    vote_participant: NDArray[np.int32]
    vote_statement: NDArray[np.int32]
    vote_value: NDArray[np.int8]
    vote_time: NDArray[np.int64]  # -1 where the source had no timestamp
    report: IngestReport
    export_groups: Mapping[str, int] | None = None
    # The files and folder it was read from: writing the conversation must never overwrite them.
    inputs: tuple[Path, ...] = ()

    @property
    def statement_ids(self) -> list[str]:
        return [s.statement_id for s in self.statements]

    @property
    def n_votes(self) -> int:
        return int(self.vote_value.shape[0])


def natural_order(ids: Sequence[str]) -> list[str]:
    """Ids sorted numerically when all are integers, else as text.

    Ties (`0` and `000`) are broken by the text, so the order never depends on the order the ids
    came in (participant ids come out of a set, whose order changes from run to run).

    >>> natural_order(["10", "9", "100"])
    ['9', '10', '100']
    >>> natural_order(["b", "a10", "a9"])
    ['a10', 'a9', 'b']
    >>> natural_order(["000", "0", "+0"])
    ['+0', '0', '000']
    """
    try:
        return sorted(ids, key=lambda x: (int(x), x))
    except ValueError:
        return sorted(ids)
