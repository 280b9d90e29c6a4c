"""Numbers for oversight experiments: judge accuracy with 95% intervals, calibration, and debater
Elo from a cross-play win table. Pure functions over plain numbers; no model is involved here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from charter.evaluate import stats


@dataclass(frozen=True)
class Interval:
    """A proportion (or mean) with its 95% interval, over `n` units."""

    value: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": round(self.value, 4),
            "low": round(self.low, 4),
            "high": round(self.high, 4),
            "n": self.n,
        }


def wilson_interval(successes: float, n: int, z: float = 1.959964) -> Interval:
    """The Wilson score interval of `successes / n` (fractional successes are allowed).

    >>> i = wilson_interval(8, 10)
    >>> round(i.value, 3), round(i.low, 3), round(i.high, 3)
    (0.8, 0.49, 0.943)
    """
    if n <= 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    low, high = stats.wilson_interval(successes, n, z)
    return Interval(successes / n, low, high, n)


def bootstrap_interval(
    values: Sequence[float], *, resamples: int = 2000, seed: int = 0
) -> Interval:
    """The mean of `values` with a percentile-bootstrap 95% interval (units resampled).

    >>> i = bootstrap_interval([1.0] * 5)
    >>> (i.value, i.low, i.high, i.n)
    (1.0, 1.0, 1.0, 5)
    """
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, arr.size, size=(resamples, arr.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Interval(float(arr.mean()), float(low), float(high), int(arr.size))


def decision_score(p_correct: float) -> float:
    """1 when the judge prefers the correct answer, 0 when it prefers the other, ½ on a tie.

    >>> [decision_score(p) for p in (0.9, 0.5, 0.2)]
    [1.0, 0.5, 0.0]
    """
    return 1.0 if p_correct > 0.5 else 0.5 if p_correct == 0.5 else 0.0


def position_averaged(p_by_question: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Each question's judge decision after averaging p(correct) over its answer orders.

    >>> position_averaged({"q1": [0.7, 0.4], "q2": [0.2, 0.6]})
    {'q1': 1.0, 'q2': 0.0}
    """
    return {q: decision_score(float(np.mean(ps))) for q, ps in p_by_question.items()}


def consultancy_accuracy(
    correct_side: Mapping[str, Sequence[float]], incorrect_side: Mapping[str, Sequence[float]]
) -> tuple[dict[str, float], float, float]:
    """Per-question scores averaged over the honest and the dishonest consultant, as in Michael
    et al. (2023) and Khan et al. (2024): a consultant argues for the correct answer in half the
    runs, so a judge that always believes the consultant scores 50%, not 100%.

    Return (per-question score, accuracy with the correct consultant, with the incorrect one).

    >>> scores, honest, dishonest = consultancy_accuracy({"q": [0.9, 0.8]}, {"q": [0.3, 0.6]})
    >>> scores, honest, dishonest
    ({'q': 0.5}, 1.0, 0.0)
    """
    honest = position_averaged(correct_side)
    dishonest = position_averaged(incorrect_side)
    questions = sorted(set(honest) & set(dishonest))
    scores = {q: (honest[q] + dishonest[q]) / 2 for q in questions}
    return (
        scores,
        float(np.mean([honest[q] for q in questions])) if questions else math.nan,
        float(np.mean([dishonest[q] for q in questions])) if questions else math.nan,
    )


@dataclass(frozen=True)
class Calibration:
    """How well the judge's confidence matches its accuracy (per transcript, not per question)."""

    ece: float  # expected calibration error over equal-width confidence bins
    brier: float  # mean (1 − p(correct))²
    bins: list[dict[str, float]]  # per non-empty bin: confidence, accuracy, count

    def as_dict(self) -> dict[str, Any]:
        return {"ece": round(self.ece, 4), "brier": round(self.brier, 4), "bins": self.bins}


def calibration(p_correct: Sequence[float], n_bins: int = 10) -> Calibration:
    """Calibration of two-way decisions: confidence is p of the chosen answer, in [0.5, 1].

    >>> c = calibration([0.9, 0.9, 0.1, 0.5])
    >>> round(c.brier, 4), round(c.ece, 4)
    (0.27, 0.175)
    """
    p = np.asarray(p_correct, dtype=float)
    if p.size == 0:
        return Calibration(math.nan, math.nan, [])
    conf = np.maximum(p, 1 - p)
    hit = np.where(p > 0.5, 1.0, np.where(p < 0.5, 0.0, 0.5))
    # Confidence lives in [0.5, 1]; bins split that range evenly.
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    ece, bins = 0.0, []
    for b in range(n_bins):
        sel = which == b
        if not sel.any():
            continue
        gap = abs(conf[sel].mean() - hit[sel].mean())
        ece += sel.mean() * gap
        bins.append(
            {
                "confidence": round(float(conf[sel].mean()), 4),
                "accuracy": round(float(hit[sel].mean()), 4),
                "count": int(sel.sum()),
            }
        )
    return Calibration(float(ece), float(np.mean((1 - p) ** 2)), bins)


def elo_from_wins(
    wins: Sequence[Sequence[float]],
    *,
    prior: float = 0.0,
    base: float = 1000.0,
    iters: int = 10_000,
) -> list[float]:
    """Elo ratings from a cross-play table, `wins[i][j]` = games (or judge approval, a fraction
    per game) that player i won against player j, by Bradley–Terry maximum likelihood (Hunter's
    MM updates). `prior` adds that many virtual drawn games to every pair, which keeps ratings
    finite when a player won or lost everything. Ratings average to `base`; a 400-point gap means
    10:1 odds.

    >>> [round(r, 1) for r in elo_from_wins([[0, 3], [1, 0]])]
    [1095.4, 904.6]
    """
    w = np.asarray(wins, dtype=float)
    n = w.shape[0]
    if w.shape != (n, n) or n < 2:
        raise ValueError("wins must be a square table of at least two players")
    if (w < 0).any():
        raise ValueError("wins must not be negative")
    w = w.copy()
    np.fill_diagonal(w, 0.0)
    if prior:
        w = w + (prior / 2) * (1 - np.eye(n))
    games = w + w.T
    total = w.sum(axis=1)
    if (total <= 0).any() or (total >= games.sum(axis=1)).any():
        raise ValueError("a player won every game or none, so its Elo is infinite; pass prior > 0")
    s = np.ones(n)
    for _ in range(iters):
        denom = (games / (s[:, None] + s[None, :])).sum(axis=1)
        new = total / denom
        new /= np.exp(np.log(new).mean())
        if np.allclose(new, s, rtol=1e-12, atol=1e-14):
            s = new
            break
        s = new
    ratings = 400 * np.log10(s)
    return [float(base + r - ratings.mean()) for r in ratings]
