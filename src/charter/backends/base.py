"""The backend protocol: the one seam between charter's stages and any model engine.

A backend generates answers for batches of chats and scores short continuations (option
log-probs). Stages never know which engine is behind it; a spec string picks one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from charter.records import Completion, Message, OptionQuery, Sampling


@runtime_checkable
class Backend(Protocol):
    """What every engine implements. `spec` is the string the backend was made from."""

    spec: str

    def generate(self, requests: Sequence[Sequence[Message]], params: Sampling) -> list[Completion]:
        """One completion per chat, in the order given; the backend decides how to batch."""
        ...

    def option_logprobs(self, requests: Sequence[OptionQuery]) -> list[dict[str, float]]:
        """For each query, the log-probability of each option as a continuation of the prompt."""
        ...


def normalized_option_probs(logprobs: dict[str, float]) -> dict[str, float]:
    """Turn option log-probs into probabilities that sum to one (softmax over the options).

    >>> p = normalized_option_probs({"A": math.log(0.2), "B": math.log(0.6)})
    >>> round(p["A"], 6), round(p["B"], 6)
    (0.25, 0.75)
    """
    top = max(logprobs.values())
    weights = {k: math.exp(v - top) for k, v in logprobs.items()}
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` at the first stop string; report whether one was found.

    >>> truncate_at_stop("yes. STOP no", ["STOP"])
    ('yes. ', True)
    """
    cut = min((i for s in stop if (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
