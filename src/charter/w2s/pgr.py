"""Performance gap recovered, and its uncertainty over test-set resamples.

`PGR = (student − weak) / (ceiling − weak)`: 0 when the student only matches its weak supervisor,
1 when it does as well as the strong model trained on ground truth. It is undefined when the
ceiling does not beat the weak model; such runs are reported but left out of summaries.

The interval for a set of seeds resamples the test items (one resample shared by every seed,
since all seeds are scored on the same test split), recomputes every seed's three accuracies and
PGR on it, and takes the median across seeds; the interval is the percentile interval of that
median over resamples. Seeds whose gap is not positive on a resample drop out of that
resample's median.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


def performance_gap_recovered(weak: float, student: float, ceiling: float) -> float:
    """`(student − weak) / (ceiling − weak)`.

    >>> performance_gap_recovered(0.5, 0.75, 1.0)
    0.5
    """
    gap = ceiling - weak
    if gap == 0:
        raise ValueError("PGR is undefined when the ceiling equals the weak model's accuracy")
    return (student - weak) / gap


def exclusion_reason(weak: float, ceiling: float) -> str | None:
    """Why a run's PGR is left out of summaries, or None when it counts."""
    if ceiling <= weak:
        return f"ceiling accuracy {ceiling:.4f} <= weak accuracy {weak:.4f}: no gap to recover"
    return None


@dataclass(frozen=True)
class PGRInterval:
    median: float | None
    low: float | None
    high: float | None
    n_seeds: int

    @property
    def width(self) -> float | None:
        if self.low is None or self.high is None:
            return None
        return self.high - self.low


def median_pgr_interval(
    weak_correct: NDArray[np.bool_],
    student_correct: NDArray[np.bool_],
    ceiling_correct: NDArray[np.bool_],
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PGRInterval:
    """Median PGR across seeds with a bootstrap interval over test resamples.

    Each argument is `(seeds, n_test)`: whether each model was right on each test item.
    """
    w = np.atleast_2d(weak_correct).astype(np.float64)
    s = np.atleast_2d(student_correct).astype(np.float64)
    c = np.atleast_2d(ceiling_correct).astype(np.float64)
    n_seeds, n = w.shape
    if n_seeds == 0 or n == 0:
        return PGRInterval(None, None, None, 0)
    point = _pgr_rows(w.mean(1), s.mean(1), c.mean(1))
    kept = point[~np.isnan(point)]
    median = float(np.median(kept)) if kept.size else None
    rng = np.random.default_rng(seed)
    # Multinomial counts are the same resample as drawing n indices with replacement.
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
    pgr = _pgr_rows(counts @ w.T / n, counts @ s.T / n, counts @ c.T / n)  # (n_boot, seeds)
    valid = ~np.isnan(pgr).all(axis=1)
    if not valid.any() or median is None:
        return PGRInterval(median, None, None, int(kept.size))
    medians = np.nanmedian(pgr[valid], axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(medians, [tail, 100.0 - tail])
    return PGRInterval(median, float(low), float(high), int(kept.size))


def _pgr_rows(
    weak: NDArray[np.float64], student: NDArray[np.float64], ceiling: NDArray[np.float64]
) -> NDArray[np.float64]:
    gap = ceiling - weak
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(gap > 0, (student - weak) / np.where(gap > 0, gap, 1.0), np.nan)
    return np.asarray(out, dtype=np.float64)
