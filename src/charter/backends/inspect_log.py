"""`inspect-log:PATH`: the answers of an Inspect AI log, replayed as a charter backend.

An Inspect `.eval` (or `.json`) log of another model on the same prompts (for instance
`inspect eval charter/harmful_compliance --model openai/gpt-4o`) becomes a model that
`charter evaluate` compares like any other:
`charter evaluate --models base=embedded --models gpt4o=inspect-log:logs/x.eval`. Its answers are
looked up by the conversation they answer (roles and texts); a prompt the log does not hold is an
error naming it. It cannot judge (no option log-probs) and ignores sampling settings: the answers
are what the logged model said. Needs `charter[inspect]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from charter.errors import BackendError
from charter.records import Completion, Message, OptionQuery, Sampling


def _key(chat: Sequence[Message]) -> tuple[tuple[str, str], ...]:
    return tuple((m.role, m.content.strip()) for m in chat)


class InspectLogBackend:
    """The answers of one Inspect log, by conversation."""

    def __init__(self, path: str) -> None:
        try:
            from inspect_ai.log import read_eval_log
        except ImportError:
            raise BackendError(
                "inspect-log: needs Inspect AI (pip install 'charter[inspect]')"
            ) from None
        self.spec = f"inspect-log:{path}"
        if not Path(path).exists():
            raise BackendError(f"inspect-log: no log at {path}")
        log = read_eval_log(path)
        self.model = log.eval.model
        self.answers: dict[tuple[tuple[str, str], ...], str] = {}
        for sample in log.samples or []:
            chat = sample.input
            if isinstance(chat, str):
                messages = [Message(role="user", content=chat)]
            else:
                messages = [
                    Message(role=m.role, content=m.text)
                    for m in chat
                    if m.role in ("system", "user", "assistant")
                ]
            self.answers[_key(messages)] = sample.output.completion

    def generate(self, requests: Sequence[Sequence[Message]], params: Sampling) -> list[Completion]:
        out = []
        for chat in requests:
            text = self.answers.get(_key(chat))
            if text is None:
                last = chat[-1].content[:60] if chat else ""
                raise BackendError(
                    f"{self.spec}: the log ({self.model}) has no answer to {last!r}; evaluate it "
                    "on the prompts its task asked (same sets, split, languages and limit)"
                )
            out.append(
                Completion(text=text, finish_reason="stop", completion_tokens=len(text.split()))
            )
        return out

    def option_logprobs(self, requests: Sequence[OptionQuery]) -> list[dict[str, float]]:
        raise BackendError(f"{self.spec}: a logged model's answers cannot score options (judge)")
