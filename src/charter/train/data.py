"""Training rows at the edge: SFT rows from `charter sl`, preference rows from `charter label`.

Everything is read and validated before a model is loaded, so a bad file fails in a second with
its path and line. The rows are then turned into the plain dicts TRL's trainers take.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from charter.errors import InputError
from charter.jsonl import read_jsonl_numbered
from charter.records import Message, SFTRecord, Strict


class PreferenceRow(Strict):
    """A preference pair in TRL's conversational format, with an optional soft label.

    `charter label` writes more fields (votes, labeler, …); training reads only these, so the
    others are ignored rather than refused.
    """

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    prompt: list[Message] = Field(min_length=1)
    chosen: list[Message] = Field(min_length=1)
    rejected: list[Message] = Field(min_length=1)
    p_chosen: float | None = Field(None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _shape(self) -> PreferenceRow:
        if self.prompt[-1].role != "user":
            raise ValueError("the last `prompt` message must have role `user`")
        for name in ("chosen", "rejected"):
            answer: list[Message] = getattr(self, name)
            if any(m.role != "assistant" for m in answer):
                raise ValueError(f"`{name}` must hold assistant messages only")
        return self


def load_sft_rows(path: Path) -> list[SFTRecord]:
    """SFT rows (`messages` ending with the assistant's answer); at least one."""
    rows = []
    for lineno, row in read_jsonl_numbered(path, SFTRecord):
        last = row.messages[-1]
        if last.role != "assistant":
            raise InputError(
                path, lineno, f"field `messages`: the last message must be the assistant's "
                f"answer to train on (got role `{last.role}`)"
            )  # fmt: skip
        if not last.content.strip():
            raise InputError(path, lineno, "field `messages`: the assistant's answer is empty")
        rows.append(row)
    if not rows:
        raise InputError(path, None, "no rows to train on (the file is empty)")
    return rows


def load_preference_rows(path: Path, *, need_p: bool) -> list[PreferenceRow]:
    """Preference rows; with `need_p` (the soft loss) every row must carry `p_chosen`."""
    rows = []
    for lineno, row in read_jsonl_numbered(path, PreferenceRow):
        if need_p and row.p_chosen is None:
            raise InputError(
                path, lineno, "field `p_chosen` is missing: the soft loss trains towards each "
                "row's own label; label the pairs with `charter label` or use --loss sigmoid"
            )  # fmt: skip
        rows.append(row)
    if not rows:
        raise InputError(path, None, "no preference pairs to train on (the file is empty)")
    return rows


def sft_example(row: SFTRecord) -> dict[str, Any]:
    """An SFT row as TRL's conversational prompt/completion pair: loss on the last answer only.

    >>> from charter.records import Message
    >>> r = SFTRecord(id="a", messages=[Message(role="user", content="Hi"),
    ...                                  Message(role="assistant", content="Hello")])
    >>> sft_example(r)["completion"]
    [{'role': 'assistant', 'content': 'Hello'}]
    """
    messages = [m.model_dump() for m in row.messages]
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def preference_example(row: PreferenceRow) -> dict[str, Any]:
    """A preference row as TRL's conversational dict (a missing `p_chosen` reads as 1).

    >>> from charter.records import Message
    >>> u, a, b = (Message(role=r, content=c) for r, c in
    ...            [("user", "Q"), ("assistant", "A"), ("assistant", "B")])
    >>> preference_example(PreferenceRow(prompt=[u], chosen=[a], rejected=[b]))["p_chosen"]
    1.0
    """
    return {
        "prompt": [m.model_dump() for m in row.prompt],
        "chosen": [m.model_dump() for m in row.chosen],
        "rejected": [m.model_dump() for m in row.rejected],
        "p_chosen": 1.0 if row.p_chosen is None else float(row.p_chosen),
    }
