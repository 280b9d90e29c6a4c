"""The shapes of the assembly's requests and answers, shared by the JSON API (`app`) and the
HTML pages (`pages`): pydantic models with unknown fields refused, strict bounded integers, and
statement text cleaned of control characters.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

from charter.assembly.store import Language
from charter.collective.analysis import AnalysisSummary
from charter.records import Strict

MAX_ID = 2**31 - 1
MAX_STATEMENT_CHARS = 300  # Polis allows 140; room for one sentence in Arabic or German
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Lone surrogates cannot be encoded as UTF-8 (neither database stores them); NUL neither in
# PostgreSQL text.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def clean_text(value: str) -> str:
    """Statement text as stored: surrounding space trimmed, no control characters."""
    value = value.strip()
    if not value:
        raise ValueError("empty text")
    if _CONTROL.search(value) or _UNSTORABLE.search(value):
        raise ValueError("control characters are not allowed")
    return value


def storable_text(value: str) -> str:
    """Free text (a description: newlines allowed) that both databases can store."""
    if _UNSTORABLE.search(value):
        raise ValueError("NUL bytes and lone surrogates are not allowed")
    return value


def exact_int(value: object) -> object:
    """Refuse booleans and floats where an integer is meant: `{"vote": true}` is not a vote.
    (Pydantic's lax mode reads `true` as 1 and `1.0` as 1 for a `Literal[-1, 0, 1]`.)"""
    if type(value) is not int:
        raise ValueError("must be an integer (not a boolean, string or float)")
    return value


StatementText = Annotated[
    str, Field(min_length=1, max_length=MAX_STATEMENT_CHARS), AfterValidator(clean_text)
]
ConvId = Annotated[int, Path(ge=1, le=MAX_ID, description="The conversation id.")]


class ConversationIn(Strict):
    topic: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(clean_text)]
    description: Annotated[str, Field(max_length=4000), AfterValidator(storable_text)] = ""
    language: Language = "en"
    seed_statements: Annotated[list[StatementText], Field(max_length=500)] = Field(
        default_factory=list
    )
    strict_moderation: bool = Field(
        True, description="Participants' statements are shown only once moderated in."
    )
    invite_only: bool = Field(False, description="Joining needs an invite code.")


class Created(Strict):
    id: int


class ConversationOut(Strict):
    id: int
    topic: str
    description: str
    language: Language
    strict_moderation: bool
    invite_only: bool


class ParticipantIn(Strict):
    invite_code: Annotated[str, Field(max_length=100)] | None = None


class ParticipantOut(Strict):
    token: str


class NextOut(Strict):
    statement_id: int
    text: str


StrictId = Annotated[int, Field(ge=1, le=MAX_ID, strict=True)]
VoteValue = Annotated[Literal[-1, 0, 1], BeforeValidator(exact_int)]


class VoteIn(Strict):
    statement_id: StrictId
    vote: VoteValue = Field(description="1 agree, -1 disagree, 0 pass (integers; not booleans).")


class VoteOut(Strict):
    replaced: bool = Field(
        description="True when this vote replaced the participant's earlier one."
    )


class StatementIn(Strict):
    text: StatementText


class StatementOut(Strict):
    statement_id: int
    text: str
    moderated: Literal[-1, 0, 1]
    n_agree: int = 0
    n_disagree: int = 0
    n_pass: int = 0


class ModerationIn(Strict):
    moderated: VoteValue = Field(description="1 in, -1 out, 0 pending.")


class InvitesIn(Strict):
    count: Annotated[int, Field(ge=1, le=1000, strict=True)]


class InvitesOut(Strict):
    codes: list[str]


class ProgressOut(Strict):
    voted: int
    total: int


class AnalysisOut(Strict):
    summary: AnalysisSummary | None
    problem: str | None = None


class DraftIn(Strict):
    min_gic: Annotated[float, Field(ge=0, le=1)] | None = None
    min_group_agree: Annotated[float, Field(ge=0, le=1)] | None = None
    max_principles: Annotated[int, Field(ge=1, le=1000)] | None = None
    name: Annotated[str, Field(max_length=100)] | None = None


class Problem(BaseModel):
    """An error: a sentence, or (422 from validation) FastAPI's list of field errors."""

    detail: str | list[dict[str, Any]]
