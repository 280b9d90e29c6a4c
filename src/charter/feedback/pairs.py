"""Response pairs for the labeller: two sampled answers per prompt, or pairs read from a file.

From a policy, the two answers of a prompt are sampled with seeds `seed` and `seed + 1`
(temperature > 0), so they differ even on servers that make a seeded request deterministic. From
a file (`--pairs-from`), rows are TRL preference rows, `prompt`/`chosen`/`rejected`, in the
conversational (lists of messages) or the standard (strings) form; other columns are ignored,
so a labelled `prefs.jsonl` can be labelled again. The file's `chosen` becomes the pair's first
answer, which lets the summary report how often the labeller agrees with the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from charter.backends.base import Backend
from charter.errors import CharterError, InputError
from charter.feedback.labeler import PairRecord
from charter.jsonl import describe_validation_error, iter_jsonl_lines
from charter.records import Message, PromptRecord, Sampling, stable_id
from charter.runs import JsonlWriter


class PreferenceRow(BaseModel):
    """A TRL preference row at the edge. Unknown columns are allowed: they are other tools'
    metadata (scores, sources), not misspellings of these three."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    prompt: str | list[Message]
    chosen: str | list[Message]
    rejected: str | list[Message]

    @field_validator("prompt")
    @classmethod
    def _prompt_ends_with_user(cls, v: str | list[Message]) -> str | list[Message]:
        if isinstance(v, list) and (not v or v[-1].role != "user"):
            raise ValueError("a conversational prompt must end with a `user` message")
        if isinstance(v, str) and not v.strip():
            raise ValueError("is empty")
        return v

    @field_validator("chosen", "rejected")
    @classmethod
    def _one_answer(cls, v: str | list[Message]) -> str | list[Message]:
        if isinstance(v, list) and (len(v) != 1 or v[0].role != "assistant"):
            raise ValueError("expected one `assistant` message (the answer to the prompt)")
        return v


def _text(v: str | list[Message]) -> str:
    return v if isinstance(v, str) else v[0].content


def read_pairs(path: str | Path) -> list[PairRecord]:
    """Pairs from a JSONL file of preference rows; errors name the file, line and field."""
    path = Path(path)
    out = []
    for lineno, obj in iter_jsonl_lines(path):
        try:
            row = PreferenceRow.model_validate(obj)
        except ValidationError as e:
            raise InputError(path, lineno, describe_validation_error(e)) from None
        prompt = (
            [Message(role="user", content=row.prompt)]
            if isinstance(row.prompt, str)
            else row.prompt
        )
        prompt_id = row.id or stable_id([m.model_dump() for m in prompt])
        answers = (_text(row.chosen), _text(row.rejected))
        out.append(
            PairRecord(
                id=stable_id("file", prompt_id, [m.model_dump() for m in prompt], answers),
                prompt_id=prompt_id,
                prompt=prompt,
                responses=answers,
                source="file",
            )
        )
    if not out:
        raise InputError(path, None, "no preference rows")
    return out


def pair_id(prompt: PromptRecord, policy: str, sampling: Sampling) -> str:
    return stable_id("policy", prompt.key(), policy, sampling.model_dump(mode="json"))


def sample_pairs(
    prompts: Sequence[PromptRecord],
    backend: Backend,
    sampling: Sampling,
    writer: JsonlWriter,
    *,
    chunk_size: int = 32,
    policy_key: str | None = None,
) -> tuple[int, int]:
    """Two answers per prompt not yet in `writer`, written per chunk; (written, tokens). Pair ids
    name the policy by `policy_key`, else by the backend's spec."""
    if sampling.temperature <= 0:
        raise CharterError("sampling a pair needs temperature > 0 (two greedy answers are equal)")
    key = policy_key or backend.spec
    todo = [p for p in prompts if pair_id(p, key, sampling) not in writer.done]
    second = sampling.model_copy(update={"seed": sampling.seed + 1})
    written = tokens = 0
    for start in range(0, len(todo), chunk_size):
        chunk = todo[start : start + chunk_size]
        chats = [p.chat() for p in chunk]
        ones = backend.generate(chats, sampling)
        twos = backend.generate(chats, second)
        tokens += sum(c.completion_tokens for c in [*ones, *twos])
        written += writer.write(
            [
                PairRecord(
                    id=pair_id(p, key, sampling),
                    prompt_id=p.key(),
                    prompt=chat,
                    responses=(a.text.strip(), b.text.strip()),
                    source="policy",
                    policy=backend.spec,
                    category=_category(p),
                )
                for p, chat, a, b in zip(chunk, chats, ones, twos, strict=True)
            ]
        )
    return written, tokens


def _category(prompt: PromptRecord) -> str | None:
    value = prompt.meta.get("category")
    return str(value) if value else None
