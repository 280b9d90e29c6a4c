"""Win rates, Elo and intervals against values computed by hand."""

from __future__ import annotations

import math

import pytest

from charter.evaluate.stats import (
    Comparison,
    bootstrap_elo,
    elo_ratings,
    rate,
    win_rates,
)


def games(a: str, b: str, wins: int, losses: int, ties: int = 0) -> list[Comparison]:
    scores = [1.0] * wins + [0.0] * losses + [0.5] * ties
    return [Comparison(a, b, s, f"{a}{b}{i}") for i, s in enumerate(scores)]


def test_wilson_rate_against_hand_values() -> None:
    # 0 of 10: the upper bound is z^2 / (n + z^2) = 3.8415 / 13.8415.
    r = rate(0, 10)
    assert r.rate == 0.0 and r.ci_low == 0.0
    assert r.ci_high == pytest.approx(1.959964**2 / (10 + 1.959964**2), abs=1e-6)
    # 5 of 10 is symmetric around 0.5.
    h = rate(5, 10)
    assert h.ci_low is not None and h.ci_high is not None
    assert h.ci_low + h.ci_high == pytest.approx(1.0)
    assert rate(0, 0).rate is None


def test_win_rate_counts_ties_as_half_and_orients_pairs() -> None:
    cs = [*games("x", "y", 3, 1, 2), Comparison("y", "x", 1.0, "r")]  # y beat x once more
    (w,) = win_rates(cs, [("x", "y")], n_boot=0)
    assert (w.n, w.wins, w.losses, w.ties) == (7, 3, 2, 2)
    assert w.win_rate == pytest.approx((3 + 0.5 * 2) / 7)
    (flipped,) = win_rates(cs, [("y", "x")], n_boot=0)
    assert flipped.win_rate == pytest.approx(1 - w.win_rate)


def test_elo_two_models_is_the_log_odds_on_the_400_scale() -> None:
    cs = games("a", "b", 3, 1)
    exact = elo_ratings(cs, ["a", "b"], anchor="b", pseudo_ties=0)
    assert exact["b"] == 0.0
    assert exact["a"] == pytest.approx(400 * math.log10(3), abs=1e-4)  # 190.85
    # One virtual tie: a scores 3.5 of 5 games.
    prior = elo_ratings(cs, ["a", "b"], anchor="b", pseudo_ties=1)
    assert prior["a"] == pytest.approx(400 * math.log10(3.5 / 1.5), abs=1e-4)  # 147.19
    # Without an anchor the ratings are centred.
    centred = elo_ratings(cs, ["a", "b"], pseudo_ties=0)
    assert centred["a"] == pytest.approx(-centred["b"]) == pytest.approx(200 * math.log10(3))


def test_elo_three_models_recovers_consistent_ratings() -> None:
    # Outcomes that match Bradley-Terry exactly for R_a = 0, R_b = 400 log10 3, R_c = 800 log10 3:
    # b beats a 3:1, c beats b 3:1 and c beats a 9:1, so the MLE is those ratings.
    cs = games("b", "a", 3, 1) + games("c", "b", 3, 1) + games("c", "a", 9, 1)
    r = elo_ratings(cs, ["a", "b", "c"], anchor="a", pseudo_ties=0)
    assert r["a"] == 0.0
    assert r["b"] == pytest.approx(400 * math.log10(3), abs=1e-3)
    assert r["c"] == pytest.approx(800 * math.log10(3), abs=1e-3)


def test_elo_prior_keeps_a_clean_sweep_finite() -> None:
    cs = games("a", "b", 5, 0)
    with pytest.raises(ValueError, match="lost every game"):
        elo_ratings(cs, ["a", "b"], pseudo_ties=0)
    r = elo_ratings(cs, ["a", "b"], anchor="b")
    assert r["a"] == pytest.approx(400 * math.log10(5.5 / 0.5), abs=1e-4)  # 416.6


def test_elo_of_an_uncompared_model_is_pulled_to_its_pseudo_ties() -> None:
    r = elo_ratings(games("a", "b", 2, 2), ["a", "b", "c"], anchor="a")
    assert r == pytest.approx({"a": 0.0, "b": 0.0, "c": 0.0}, abs=1e-6)


def test_bootstrap_is_reproducible_with_a_seed_and_contains_the_estimate() -> None:
    cs = games("a", "b", 12, 6, 2) + games("c", "a", 4, 8)
    one = bootstrap_elo(cs, ["a", "b", "c"], anchor="a", n_boot=300, seed=7)
    two = bootstrap_elo(cs, ["a", "b", "c"], anchor="a", n_boot=300, seed=7)
    other = bootstrap_elo(cs, ["a", "b", "c"], anchor="a", n_boot=300, seed=8)
    assert one.ci == two.ci and one.ratings == two.ratings
    assert one.ci != other.ci
    assert one.ci["a"] == (0.0, 0.0)  # the anchor is 0 in every resample
    for m in ("b", "c"):
        lo, hi = one.ci[m]
        assert lo < one.ratings[m] < hi
    w1 = win_rates(cs, [("a", "b")], n_boot=300, seed=7)[0]
    w2 = win_rates(cs, [("a", "b")], n_boot=300, seed=7)[0]
    assert (w1.ci_low, w1.ci_high) == (w2.ci_low, w2.ci_high)
    assert w1.ci_low < w1.win_rate < w1.ci_high


def test_bootstrap_resamples_whole_prompts() -> None:
    # All comparisons share one prompt: every resample is the original, so the interval is a
    # point. Resampled one by one, the same data would give a wide interval.
    same_prompt = [Comparison(c.a, c.b, c.score, "p") for c in games("a", "b", 3, 3)]
    (w,) = win_rates(same_prompt, [("a", "b")], n_boot=200)
    assert (w.ci_low, w.ci_high) == (0.5, 0.5)
    (free,) = win_rates(games("a", "b", 3, 3), [("a", "b")], n_boot=200)
    assert free.ci_high - free.ci_low > 0.3
    result = bootstrap_elo(same_prompt, ["a", "b"], anchor="a", n_boot=50)
    assert result.ci["b"] == pytest.approx((0.0, 0.0), abs=1e-6)


def test_no_comparisons_gives_no_ratings() -> None:
    result = bootstrap_elo([], ["a", "b"], anchor="a")
    assert result.for_model("b") == {"rating": None, "ci_low": None, "ci_high": None}
