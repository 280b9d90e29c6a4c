"""Which statement a participant sees next: Polis's comment priority, then a weighted draw.

Polis (math/src/polismath/math/conversation.clj, `importance-metric` and `priority-metric`):

    p = (P + 1) / (S + 2)        a = (A + 1) / (S + 2)
    importance = (1 - p) · (E + 1) · a
    priority   = (importance · (1 + 8 · 2^(-S/5)))²

with A agrees, P passes, S votes seen and E the statement's extremity (its distance from the
origin in the opinion map: statements that separate the groups lie far out). The novelty factor
`1 + 8 · 2^(-S/5)` puts a new statement up to 81× ahead of a well-voted one; statements that are
mostly passed sink. A statement is then drawn at random with probability proportional to its
priority, among those this participant has not voted on.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    statement_id: int
    n_agree: int
    n_disagree: int
    n_pass: int


def priority(n_agree: int, n_pass: int, n_seen: int, extremity: float = 0.0) -> float:
    """Polis's priority of one statement.

    >>> round(priority(0, 0, 0), 4)  # brand new: (0.5 · 1 · 0.5 · 9)²
    5.0625
    >>> priority(0, 0, 0) > priority(10, 0, 20) > priority(0, 20, 20)
    True
    >>> priority(5, 0, 10, extremity=1.0) > priority(5, 0, 10)
    True
    """
    p = (n_pass + 1) / (n_seen + 2)
    a = (n_agree + 1) / (n_seen + 2)
    importance = (1 - p) * (extremity + 1) * a
    novelty = 1 + 8 * 2 ** (-n_seen / 5)
    return float((importance * novelty) ** 2)


def choose_next(
    candidates: Sequence[Candidate],
    extremity: Mapping[int, float],
    rng: random.Random,
) -> int | None:
    """A statement id drawn by priority, or None when there is nothing left to show."""
    if not candidates:
        return None
    weights = [
        priority(c.n_agree, c.n_pass, c.n_agree + c.n_disagree + c.n_pass,
                 extremity.get(c.statement_id, 0.0))
        for c in candidates
    ]  # fmt: skip
    return rng.choices([c.statement_id for c in candidates], weights=weights, k=1)[0]
