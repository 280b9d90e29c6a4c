"""PGR and its bootstrap interval against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from charter.w2s.pgr import exclusion_reason, median_pgr_interval, performance_gap_recovered


@pytest.mark.parametrize(
    ("weak", "student", "ceiling", "expected"),
    [
        (0.60, 0.70, 0.80, 0.5),
        (0.60, 0.60, 0.80, 0.0),
        (0.60, 0.80, 0.80, 1.0),
        (0.70, 0.65, 0.80, -0.5),
        (0.50, 0.95, 0.90, 1.125),
    ],
)
def test_pgr_by_hand(weak: float, student: float, ceiling: float, expected: float) -> None:
    assert performance_gap_recovered(weak, student, ceiling) == pytest.approx(expected)


def test_pgr_undefined_without_gap() -> None:
    with pytest.raises(ValueError, match="undefined"):
        performance_gap_recovered(0.7, 0.8, 0.7)
    assert exclusion_reason(0.7, 0.7) is not None
    assert exclusion_reason(0.8, 0.7) is not None
    assert exclusion_reason(0.6, 0.7) is None


def _bits(n_right: int, n: int = 10) -> list[bool]:
    return [True] * n_right + [False] * (n - n_right)


def test_median_across_seeds_and_exclusion() -> None:
    # Three seeds on 10 test items: PGRs (6-4)/(8-4) = 0.5, (5-4)/(9-4) = 0.2, (7-5)/(6-5) = 2.0.
    weak = np.array([_bits(4), _bits(4), _bits(5)])
    student = np.array([_bits(6), _bits(5), _bits(7)])
    ceiling = np.array([_bits(8), _bits(9), _bits(6)])
    got = median_pgr_interval(weak, student, ceiling, n_boot=200)
    assert got.median == pytest.approx(0.5)
    assert got.n_seeds == 3
    # A seed with ceiling == weak drops out: median of (0.5, 0.2) = 0.35.
    ceiling[2] = _bits(5)
    got = median_pgr_interval(weak, student, ceiling, n_boot=200)
    assert got.median == pytest.approx(0.35)
    assert got.n_seeds == 2


def test_interval_is_degenerate_when_every_resample_agrees() -> None:
    # Weak always wrong, ceiling always right, student right on every item: PGR is 1 on any
    # resample.
    n = 50
    weak = np.zeros((5, n), dtype=bool)
    ceiling = np.ones((5, n), dtype=bool)
    got = median_pgr_interval(weak, ceiling.copy(), ceiling, n_boot=300)
    assert (got.median, got.low, got.high) == (1.0, 1.0, 1.0)
    assert got.width == 0.0


def test_interval_is_reproducible_and_brackets_the_median() -> None:
    rng = np.random.default_rng(3)
    weak = rng.random((5, 400)) < 0.6
    student = rng.random((5, 400)) < 0.7
    ceiling = rng.random((5, 400)) < 0.85
    a = median_pgr_interval(weak, student, ceiling, n_boot=500, seed=1)
    b = median_pgr_interval(weak, student, ceiling, n_boot=500, seed=1)
    assert a == b
    assert a.low is not None and a.high is not None and a.median is not None
    assert a.low <= a.median <= a.high
