"""The statistics of model comparison: rates with Wilson intervals, pairwise win rates, Elo.

Everything here is a pure function of plain values, so each number can be checked by hand.

- A **rate** (harmful compliance, over-refusal) is `k / n` with a Wilson 95% interval.
- A **pairwise comparison** is one prompt answered by two models and judged once (the judge itself
  asks both orders); its outcome is the score of the first model: 1 (win), 0.5 (tie) or 0 (loss).
  A pair's **win rate** is `(wins + ties / 2) / n`.
- **Elo ratings** are the Bradley–Terry maximum-likelihood fit on the Elo scale, `P(i beats j) =
  1 / (1 + 10 ** ((R_j - R_i) / 400))`, with a tie counted as half a win for each side. Every
  pair of models also gets `pseudo_ties` virtual tied games (1 by default): a prior that keeps a
  rating finite when a model wins every comparison and connects models that were never compared.
  Ratings are anchored so that the `anchor` model (the base model) has 0; without an anchor the
  mean rating is 0. The CAI paper's figures plot Elo the same way, relative to a reference.
- **Intervals** of win rates and Elo come from a bootstrap that resamples *prompts* (all the
  comparisons of one prompt together, since they share one prompt's difficulty) with a fixed
  seed, and take the 2.5th and 97.5th percentiles.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

ELO_SCALE = 400.0
BOOTSTRAP_SEED = 0

__all__ = [
    "ELO_SCALE",
    "Comparison",
    "EloResult",
    "Rate",
    "WinRate",
    "bootstrap_elo",
    "elo_ratings",
    "mean_interval",
    "rate",
    "wilson_interval",
    "win_rates",
]


def wilson_interval(k: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% by default); `k` may be fractional
    (position-averaged successes).

    >>> lo, hi = wilson_interval(50, 100)
    >>> round(lo, 4), round(hi, 4)
    (0.4038, 0.5962)
    """
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Rate:
    """A proportion with its Wilson 95% interval."""

    k: int
    n: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "rate": self.rate,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "n": self.n,
            "k": self.k,
        }


def rate(k: int, n: int) -> Rate:
    """`k / n` with a Wilson 95% interval; no rate (None) when `n` is 0.

    >>> r = rate(3, 10)
    >>> r.rate, round(r.ci_low, 4), round(r.ci_high, 4)
    (0.3, 0.1078, 0.6032)
    """
    if n == 0:
        return Rate(k, n, None, None, None)
    lo, hi = wilson_interval(k, n)
    return Rate(k, n, round(k / n, 6), round(lo, 6), round(hi, 6))


@dataclass(frozen=True)
class Comparison:
    """One judged pair: `score` is the first model's outcome (1 win, 0.5 tie, 0 loss);
    `cluster` groups the comparisons that the bootstrap resamples together (the prompt)."""

    a: str
    b: str
    score: float
    cluster: Hashable = None


@dataclass(frozen=True)
class WinRate:
    a: str
    b: str
    n: int
    wins: int
    losses: int
    ties: int
    win_rate: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "model_a": self.a,
            "model_b": self.b,
            "n": self.n,
            "wins_a": self.wins,
            "wins_b": self.losses,
            "ties": self.ties,
            "win_rate_a": self.win_rate,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
        }


def _oriented(c: Comparison, a: str, b: str) -> float | None:
    """The score of `a` against `b` in `c`, whichever order `c` has them in."""
    if (c.a, c.b) == (a, b):
        return c.score
    if (c.a, c.b) == (b, a):
        return 1.0 - c.score
    return None


def _clusters(comparisons: Sequence[Comparison]) -> list[list[int]]:
    groups: dict[Hashable, list[int]] = {}
    for i, c in enumerate(comparisons):
        key = c.cluster if c.cluster is not None else ("#", i)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def _resample(clusters: list[list[int]], rng: np.random.Generator, n_boot: int) -> list[list[int]]:
    """`n_boot` bootstrap samples of comparison indices, drawing whole clusters."""
    out = []
    for _ in range(n_boot):
        picks = rng.integers(0, len(clusters), size=len(clusters))
        out.append([i for p in picks for i in clusters[p]])
    return out


def _percentiles(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = np.percentile(np.asarray(values, dtype=float), [2.5, 97.5])
    return float(lo), float(hi)


def win_rates(
    comparisons: Sequence[Comparison],
    pairs: Sequence[tuple[str, str]],
    *,
    n_boot: int = 1000,
    seed: int = BOOTSTRAP_SEED,
) -> list[WinRate]:
    """Win rate of `a` over `b` for each pair, with a seeded prompt-bootstrap 95% interval.

    >>> cs = [Comparison("x", "y", s, i) for i, s in enumerate([1, 1, 0.5, 0])]
    >>> w = win_rates(cs, [("x", "y")], n_boot=0)[0]
    >>> (w.wins, w.losses, w.ties, w.win_rate)
    (2, 1, 1, 0.625)
    """
    out = []
    for a, b in pairs:
        mine = [c for c in comparisons if _oriented(c, a, b) is not None]
        scores = [s for c in mine if (s := _oriented(c, a, b)) is not None]
        n = len(scores)
        if n == 0:
            out.append(WinRate(a, b, 0, 0, 0, 0, math.nan, math.nan, math.nan))
            continue
        wins = sum(s == 1.0 for s in scores)
        losses = sum(s == 0.0 for s in scores)
        point = sum(scores) / n
        lo = hi = point
        if n_boot > 0:
            rng = np.random.default_rng(seed)
            arr = np.asarray(scores, dtype=float)
            boots = [float(arr[idx].mean()) for idx in _resample(_clusters(mine), rng, n_boot)]
            lo, hi = _percentiles(boots)
        out.append(
            WinRate(
                a,
                b,
                n,
                wins,
                losses,
                n - wins - losses,
                round(point, 6),
                round(lo, 6),
                round(hi, 6),
            )
        )
    return out


def elo_ratings(
    comparisons: Sequence[Comparison],
    models: Sequence[str],
    *,
    anchor: str | None = None,
    pseudo_ties: float = 1.0,
    iterations: int = 10_000,
    tol: float = 1e-10,
) -> dict[str, float]:
    """Bradley–Terry maximum-likelihood ratings on the Elo scale (see the module docstring).

    Fitted with the minorization–maximization updates of Hunter (2004), `p_i ← W_i / Σ_j
    n_ij / (p_i + p_j)` with strengths `p = 10 ** (R / 400)`, which converge to the MLE.

    >>> cs = [Comparison("a", "b", 1.0)] * 3 + [Comparison("a", "b", 0.0)]
    >>> r = elo_ratings(cs, ["a", "b"], anchor="b", pseudo_ties=0)
    >>> round(r["a"], 2)  # 400 * log10(3 / 1)
    190.85
    """
    index = {m: i for i, m in enumerate(models)}
    k = len(models)
    wins = np.zeros((k, k))  # wins[i, j]: games i won against j, ties as halves
    for c in comparisons:
        i, j = index[c.a], index[c.b]
        wins[i, j] += c.score
        wins[j, i] += 1.0 - c.score
    if pseudo_ties > 0:
        wins += (np.ones((k, k)) - np.eye(k)) * pseudo_ties / 2
    games = wins + wins.T
    total_wins = wins.sum(axis=1)
    if k < 2 or not games.any():
        return dict.fromkeys(models, 0.0)
    if np.any((total_wins == 0) & (games.sum(axis=1) > 0)):
        raise ValueError("a model lost every game: its rating is -inf without pseudo_ties > 0")
    strength = np.ones(k)
    for _ in range(iterations):
        denom = (games / (strength[:, None] + strength[None, :])).sum(axis=1)
        played = denom > 0
        new = strength.copy()
        new[played] = total_wins[played] / denom[played]
        new /= np.exp(np.mean(np.log(new)))  # fix the scale: geometric mean 1
        if np.max(np.abs(np.log(new) - np.log(strength))) < tol:
            strength = new
            break
        strength = new
    ratings = ELO_SCALE * np.log10(strength)
    ratings -= ratings[index[anchor]] if anchor is not None else ratings.mean()
    return {m: float(ratings[index[m]]) for m in models}


@dataclass(frozen=True)
class EloResult:
    ratings: dict[str, float]
    ci: dict[str, tuple[float, float]]
    n: int
    n_boot: int
    anchor: str | None
    pseudo_ties: float

    def for_model(self, model: str) -> dict[str, float | None]:
        lo, hi = self.ci.get(model, (math.nan, math.nan))
        return {
            "rating": _finite(self.ratings.get(model)),
            "ci_low": _finite(lo),
            "ci_high": _finite(hi),
        }


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 3)


def bootstrap_elo(
    comparisons: Sequence[Comparison],
    models: Sequence[str],
    *,
    anchor: str | None = None,
    pseudo_ties: float = 1.0,
    n_boot: int = 1000,
    seed: int = BOOTSTRAP_SEED,
) -> EloResult:
    """Elo ratings with prompt-bootstrap 95% intervals (seeded, so reruns give the same numbers)."""
    if not comparisons:
        nan = dict.fromkeys(models, math.nan)
        return EloResult(nan, {m: (math.nan, math.nan) for m in models}, 0, 0, anchor, pseudo_ties)
    point = elo_ratings(comparisons, models, anchor=anchor, pseudo_ties=pseudo_ties)
    samples: dict[str, list[float]] = {m: [] for m in models}
    rng = np.random.default_rng(seed)
    for idx in _resample(_clusters(comparisons), rng, n_boot):
        r = elo_ratings(
            [comparisons[i] for i in idx], models, anchor=anchor, pseudo_ties=pseudo_ties
        )
        for m in models:
            samples[m].append(r[m])
    ci = {m: _percentiles(v) if v else (point[m], point[m]) for m, v in samples.items()}
    return EloResult(point, ci, len(comparisons), n_boot, anchor, pseudo_ties)


def mean_interval(values: Sequence[float]) -> dict[str, float | int | None]:
    """Mean with a normal-approximation 95% interval (`mean ± 1.96 s / sqrt(n)`).

    >>> mean_interval([1.0, 2.0, 3.0])
    {'mean': 2.0, 'ci_low': 0.868414, 'ci_high': 3.131586, 'n': 3}
    """
    n = len(values)
    if n == 0:
        return {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    half = 1.959964 * sd / math.sqrt(n)
    return {
        "mean": round(mean, 6),
        "ci_low": round(mean - half, 6),
        "ci_high": round(mean + half, 6),
        "n": n,
    }


def counts_by(keys: Sequence[str], flags: Sequence[bool]) -> Mapping[str, tuple[int, int]]:
    """`{key: (number flagged, number)}`, keys in first-seen order.

    >>> dict(counts_by(["x", "y", "x"], [True, False, False]))
    {'x': (1, 2), 'y': (0, 1)}
    """
    out: dict[str, tuple[int, int]] = {}
    for key, flag in zip(keys, flags, strict=True):
        k, n = out.get(key, (0, 0))
        out[key] = (k + int(flag), n + 1)
    return out
