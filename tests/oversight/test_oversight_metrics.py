"""Oversight numbers against hand computations: Elo, Wilson, calibration, cross-play."""

from __future__ import annotations

import math
import re

import pytest

from charter.backends.fake import FakeBackend
from charter.oversight.metrics import (
    bootstrap_interval,
    calibration,
    elo_from_wins,
    wilson_interval,
)
from charter.oversight.protocols import OversightConfig, plan_units, run_units
from charter.oversight.questions import synthetic_questions
from charter.oversight.run import summarize
from charter.records import OptionQuery


def test_elo_two_players_three_to_one() -> None:
    # Bradley–Terry: p(A beats B) = 3/4 ⇒ strength ratio 3 ⇒ 400·log10(3) = 190.85 Elo apart.
    a, b = elo_from_wins([[0, 3], [1, 0]])
    assert a - b == pytest.approx(400 * math.log10(3), abs=1e-6)
    assert (a + b) / 2 == pytest.approx(1000)


def test_elo_three_players_from_a_consistent_table() -> None:
    # Strengths 1 : 2 : 4 and game counts whose win shares match them exactly, so the maximum
    # likelihood ratings are 400·log10 of the strengths: 0, 120.41, 240.82 (centred on 1000).
    wins = [
        [0, 1, 1],  # A: 1 of 3 against B, 1 of 5 against C
        [2, 0, 2],  # B: 2 of 3 against A, 2 of 6 against C
        [4, 4, 0],  # C: 4 of 5 against A, 4 of 6 against B
    ]
    got = elo_from_wins(wins)
    step = 400 * math.log10(2)
    assert got == pytest.approx([1000 - step, 1000, 1000 + step], abs=1e-6)


def test_elo_refuses_a_perfect_record_without_a_prior() -> None:
    with pytest.raises(ValueError, match="prior"):
        elo_from_wins([[0, 4], [0, 0]])
    a, b = elo_from_wins([[0, 4], [0, 0]], prior=1.0)  # 4.5 : 0.5
    assert a - b == pytest.approx(400 * math.log10(9), abs=1e-6)


@pytest.mark.parametrize(("k", "n"), [(45, 100), (0, 20), (19, 20), (300, 540)])
def test_wilson_interval_matches_scipy(k: int, n: int) -> None:
    from scipy.stats import binomtest  # type: ignore[import-untyped]

    want = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    got = wilson_interval(k, n)
    assert got.value == k / n
    assert (got.low, got.high) == pytest.approx((want.low, want.high), abs=1e-6)


def test_bootstrap_interval_brackets_the_mean() -> None:
    got = bootstrap_interval([0.0, 1.0] * 50, seed=3)
    assert got.value == 0.5 and got.low < 0.5 < got.high and got.n == 100
    assert got.high - got.low == pytest.approx(2 * 1.96 * 0.05, abs=0.03)


def test_calibration_of_a_perfectly_calibrated_judge() -> None:
    # 80% confident, right 4 times in 5 (one correct answer scored 0.2 counts as a miss).
    c = calibration([0.8, 0.8, 0.8, 0.8, 0.2])
    assert c.ece == pytest.approx(0.0)
    assert c.brier == pytest.approx((4 * 0.04 + 0.64) / 5)


def test_cross_play_win_table_and_elo_from_judge_approval() -> None:
    strong = FakeBackend(answers=lambda chat: "STRONG argument", spec="fake-strong")
    weak = FakeBackend(answers=lambda chat: "weak argument", spec="fake-weak")

    def judge_lp(q: OptionQuery) -> dict[str, float]:
        assert isinstance(q.prompt, list)
        m = re.search(r"Debater ([AB]) \(round 1\): STRONG", q.prompt[-1].content)
        both = len(re.findall(r"STRONG", q.prompt[-1].content)) == 2
        if both or not m:
            return {"A": math.log(0.5), "B": math.log(0.5)}
        pick = m.group(1)
        return {
            "A": math.log(0.75 if pick == "A" else 0.25),
            "B": math.log(0.25 if pick == "A" else 0.75),
        }

    judge = FakeBackend(logprobs=judge_lp, spec="fake-judge")
    config = OversightConfig(protocols=["debate"], rounds=1)
    debaters = {"fake-strong": strong, "fake-weak": weak}
    questions = synthetic_questions(2, seed=5)
    units = plan_units(questions, config, sorted(debaters))
    # 2 questions × 2 orders × 4 ordered pairs (self-play included).
    assert len(units) == 16
    got = run_units(units, judge, debaters, config)
    row = summarize(got)["debate"]["cross_play"]
    assert row["debaters"] == ["fake-strong", "fake-weak"]
    # 8 strong-vs-weak debates, each won by the strong debater with judge approval 0.75.
    assert row["wins"] == [[0.0, 6.0], [2.0, 0.0]]
    # One virtual draw per pair: 6.5 : 2.5.
    diff = row["elo"]["fake-strong"] - row["elo"]["fake-weak"]
    assert diff == pytest.approx(400 * math.log10(6.5 / 2.5), abs=0.2)
