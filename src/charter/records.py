"""Record types shared by every stage, and the deterministic ids that make runs resumable.

Records are pydantic models with `extra="forbid"`: a misspelt field in a file is an error at the
edge, not a silently dropped value. Records written to disk carry `schema_version`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

SCHEMA_VERSION = 1

Role = Literal["system", "user", "assistant"]


class Strict(BaseModel):
    """Base for every value object: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class AddedFields(Strict):
    """Options with fields added after run folders were made (`ADDED`): each is left out of the
    model's dumps while it holds its default, so that the hashes and ids computed from the
    dumps of existing runs, which never had it, stay what they were and the runs resume.

    >>> class Opts(AddedFields):
    ...     ADDED: ClassVar[tuple[str, ...]] = ("pool",)
    ...     k: int = 1
    ...     pool: str = "all"
    >>> Opts().model_dump(), Opts(pool="matched").model_dump()
    ({'k': 1}, {'k': 1, 'pool': 'matched'})
    """

    ADDED: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _without_added_defaults(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            fields = type(self).model_fields
            for name in self.ADDED:
                if name in data and getattr(self, name) == fields[name].default:
                    del data[name]
        return data


class Record(Strict):
    """Base for everything written to a JSONL file."""

    schema_version: int = SCHEMA_VERSION


class Message(Strict):
    role: Role
    content: str


Chat = list[Message]


class Sampling(Strict):
    """How to sample. `temperature == 0` means greedy decoding."""

    max_new_tokens: int = Field(256, ge=1)
    min_new_tokens: int = Field(0, ge=0, description="Suppress the end of text before this many.")
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    # Left out of dumps while off, so the ids of records made before it existed stay the same.
    top_k: int = Field(
        0,
        ge=0,
        description="Sample among the k most likely tokens (0: all).",
        exclude_if=lambda v: v == 0,
    )
    seed: int = 0
    stop: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _min_le_max(self) -> Sampling:
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError("min_new_tokens must not exceed max_new_tokens")
        return self


class Completion(Strict):
    text: str
    finish_reason: Literal["stop", "length"]
    prompt_tokens: int = 0
    completion_tokens: int = 0


class OptionQuery(Strict):
    """Score short continuations (`options`) after a prompt.

    A string prompt is scored as raw text; a chat is first rendered with the model's chat
    template and a generation prompt, so the options continue the assistant's turn.
    """

    prompt: str | list[Message]
    options: list[str] = Field(min_length=2)

    @field_validator("options")
    @classmethod
    def _distinct_nonempty(cls, options: list[str]) -> list[str]:
        if any(not o for o in options):
            raise ValueError("options must be non-empty strings")
        if len(set(options)) != len(options):
            raise ValueError("options must be distinct")
        return options


class PromptRecord(Record):
    """One input prompt: a bare user prompt, or a whole chat ending with a user turn."""

    id: str | None = None
    prompt: str | None = None
    messages: list[Message] | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _exactly_one_form(self) -> PromptRecord:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of `prompt` (a string) or `messages` (a chat)")
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError("`prompt` is empty")
        if self.messages is not None:
            if not self.messages:
                raise ValueError("`messages` is empty")
            if self.messages[-1].role != "user":
                raise ValueError("the last message must have role `user`")
            if not any(m.content.strip() for m in self.messages if m.role == "user"):
                raise ValueError("every user message is empty")
        if self.id is not None and not self.id.strip():
            raise ValueError("`id` is empty")
        return self

    def chat(self) -> list[Message]:
        if self.messages is not None:
            return list(self.messages)
        assert self.prompt is not None  # guaranteed by the validator
        return [Message(role="user", content=self.prompt)]

    def key(self) -> str:
        """The prompt's id, or a content hash when the file gave none."""
        return self.id if self.id is not None else stable_id([m.model_dump() for m in self.chat()])


class GenerationRecord(Record):
    """One answer from `charter generate` (the `generations.jsonl` rows)."""

    id: str
    prompt_id: str
    messages: list[Message]
    completion: str
    finish_reason: Literal["stop", "length"]
    prompt_tokens: int
    completion_tokens: int
    backend: str
    sampling: Sampling


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the form that ids and hashes are taken of."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def stable_id(*parts: Any, length: int = 16) -> str:
    """A deterministic id from any JSON-serialisable inputs.

    >>> stable_id("a", 1) == stable_id("a", 1) != stable_id("a", 2)
    True
    """
    digest = hashlib.sha256(canonical_json(list(parts)).encode("utf-8")).hexdigest()
    return digest[:length]


class SFTRecord(Record):
    """One supervised fine-tuning row in TRL's conversational format (`messages`)."""

    id: str
    messages: list[Message] = Field(min_length=2)
    meta: dict[str, Any] = Field(default_factory=dict)
