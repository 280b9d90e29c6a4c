"""A deterministic backend for unit tests of logic: scripted answers and log-probs, every call kept.

Without a script, the answer is a stable function of the chat (so tests can predict it) and the
option log-probs are a stable function of prompt and option.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from charter.backends.base import truncate_at_stop
from charter.records import Completion, Message, OptionQuery, Sampling, stable_id

Script = Callable[[Sequence[Message]], str]


@dataclass
class FakeCall:
    method: str
    requests: list[object]
    params: Sampling | None = None


@dataclass
class FakeBackend:
    """Scripted backend. `answers` are served in order (then the default rule); `delay` is the
    number of seconds each `generate` call sleeps, to make timing and kill tests realistic."""

    answers: list[str] | Script | None = None
    logprobs: dict[str, float] | Callable[[OptionQuery], dict[str, float]] | None = None
    delay: float = 0.0
    spec: str = "fake"
    calls: list[FakeCall] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.delay = float(self.delay)
        self._queue = list(self.answers) if isinstance(self.answers, list) else []

    def _answer(self, chat: Sequence[Message]) -> str:
        if callable(self.answers):
            return self.answers(chat)
        if self._queue:
            return self._queue.pop(0)
        last = chat[-1].content
        return f"Fake answer {stable_id([m.model_dump() for m in chat], length=6)} to: {last[:40]}"

    def generate(self, requests: Sequence[Sequence[Message]], params: Sampling) -> list[Completion]:
        self.calls.append(FakeCall("generate", [list(r) for r in requests], params))
        if self.delay:
            time.sleep(self.delay)
        out = []
        for chat in requests:
            text, stopped = truncate_at_stop(self._answer(chat), params.stop)
            words = text.split()
            finish = "stop"
            if len(words) > params.max_new_tokens:
                text, finish = " ".join(words[: params.max_new_tokens]), "length"
            out.append(
                Completion(
                    text=text,
                    finish_reason="stop" if stopped else finish,
                    prompt_tokens=sum(len(m.content.split()) for m in chat),
                    completion_tokens=min(len(words), params.max_new_tokens),
                )
            )
        return out

    def option_logprobs(self, requests: Sequence[OptionQuery]) -> list[dict[str, float]]:
        self.calls.append(FakeCall("option_logprobs", list(requests)))
        out = []
        for q in requests:
            if callable(self.logprobs):
                out.append(self.logprobs(q))
            elif self.logprobs is not None:
                out.append({o: self.logprobs[o] for o in q.options})
            else:
                # A stable pseudo-probability per (prompt, option), normalised to sum below one.
                prompt = (
                    q.prompt if isinstance(q.prompt, str) else [m.model_dump() for m in q.prompt]
                )
                raw = {o: 1 + int(stable_id(prompt, o, length=4), 16) % 97 for o in q.options}
                total = sum(raw.values()) * 1.25
                out.append({o: math.log(v / total) for o, v in raw.items()})
        return out
