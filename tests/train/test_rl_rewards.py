"""The constitutional rewards of online RL, with the fake backend: the judge's arithmetic (both
orders averaged, an always-"A" judge gives 0.5), principles drawn by seed, group vs reference
agreement, per-prompt-set rewards and the reward log."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from charter.backends.fake import FakeBackend
from charter.constitution.load import load_constitution
from charter.errors import ConfigError
from charter.records import OptionQuery
from charter.train.rewards import (
    JudgeReward,
    LengthReward,
    RewardLog,
    RewardSpec,
    build_rewards,
    parse_reward,
)
from charter.train.rl_metrics import guard_rails, rl_curves


def always_a(q: OptionQuery) -> dict[str, float]:
    return {"A": math.log(0.9), "B": math.log(0.1)}


def kind_judge(q: OptionQuery) -> dict[str, float]:
    """Prefers the option that says "kind", wherever it is shown."""
    assert isinstance(q.prompt, str)
    options = q.prompt.rsplit("Options:\n", 1)[1]
    a, b = options.split("\n(B) ", 1)
    score = ("kind" in a) - ("kind" in b.split("\n\n")[0])
    p_a = 1.0 / (1.0 + math.exp(-2.0 * score))
    return {"A": math.log(p_a), "B": math.log(1.0 - p_a)}


def judge(logprobs: Any, tmp: Path | None = None, seed: int = 0, **kw: Any) -> JudgeReward:
    spec = RewardSpec(source="judge:fake", format="raw", few_shot=0, **kw)
    log = RewardLog(tmp / "rewards.jsonl" if tmp else None)
    return JudgeReward(spec, log, FakeBackend(logprobs=logprobs), load_constitution("udhr"), seed)


def batch(texts: list[str], pids: list[str], ref: str = "I can tell you about it.") -> Any:
    prompts = [[{"role": "user", "content": f"Prompt {p}"}] for p in pids]
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    columns = {
        "prompt_id": pids,
        "prompt_set": ["red-team"] * len(pids),
        "category": [""] * len(pids),
        "reference": [ref] * len(pids),
    }
    return prompts, completions, columns


@pytest.mark.parametrize("versus", ["reference", "group"])
def test_a_judge_that_always_says_a_gives_one_half(versus: str) -> None:
    r = judge(always_a, versus=versus)
    prompts, completions, columns = batch(["x", "y", "z", "w"], ["p1", "p1", "p2", "p2"])
    assert r(prompts, completions, **columns) == pytest.approx([0.5] * 4)


def test_reference_reward_is_the_mean_of_both_orders(tmp_path: Path) -> None:
    r = judge(kind_judge, tmp_path, principles=3)
    prompts, completions, columns = batch(["a kind answer", "go away"], ["p1", "p2"])
    values = r(prompts, completions, **columns)
    p = 1.0 / (1.0 + math.exp(-2.0))
    # "kind" vs the reference: p in order AB, 1 − (1 − p) in order BA → p; "go away": a tie.
    assert values == pytest.approx([p, 0.5])
    rows = [json.loads(x) for x in (tmp_path / "rewards.jsonl").read_text().splitlines()]
    assert [row["prompt_id"] for row in rows] == ["p1", "p2"]
    first = rows[0]
    assert len(first["principle_ids"]) == 3 and first["versus"] == "reference"
    # Every principle asked in both orders, each vote's P(A) kept.
    assert sorted((v["principle_id"], v["order"]) for v in first["votes"]) == sorted(
        (pid, o) for pid in first["principle_ids"] for o in ("AB", "BA")
    )
    assert {round(v["p_a"], 6) for v in first["votes"]} == {round(p, 6), round(1 - p, 6)}
    assert first["value"] == pytest.approx(p) and first["phase"] == "train"


def test_group_and_reference_rank_a_hand_made_group_alike() -> None:
    texts = ["a kind answer", "go away", "kind and clear", "no"]
    pids = ["p1"] * 4
    prompts, completions, columns = batch(texts, pids)
    group = judge(kind_judge, versus="group")(prompts, completions, **columns)
    ref = judge(kind_judge, versus="reference")(prompts, completions, **columns)
    p = 1.0 / (1.0 + math.exp(-2.0))
    # Group: each kind answer ties the other (0.5) and beats both others (p): (0.5 + 2p) / 3.
    win, lose = (0.5 + 2 * p) / 3, (0.5 + 2 * (1 - p)) / 3
    assert group == pytest.approx([win, lose, win, lose])
    assert ref == pytest.approx([p, 0.5, p, 0.5])
    order = sorted(range(4), key=lambda i: group[i])  # type: ignore[arg-type,return-value]
    assert order == sorted(range(4), key=lambda i: ref[i])  # type: ignore[arg-type,return-value]


def test_principles_are_drawn_by_seed(tmp_path: Path) -> None:
    def drawn(seed: int, folder: Path) -> list[list[str]]:
        folder.mkdir()
        r = judge(always_a, folder, seed=seed, principles=2)
        prompts, completions, columns = batch(["x", "y", "z"], ["p1", "p2", "p3"])
        r(prompts, completions, **columns)
        rows = (folder / "rewards.jsonl").read_text().splitlines()
        return [json.loads(x)["principle_ids"] for x in rows]

    assert drawn(0, tmp_path / "a") == drawn(0, tmp_path / "b")
    assert drawn(0, tmp_path / "a2") != drawn(1, tmp_path / "c")


def test_tags_narrow_the_principles_and_on_narrows_the_prompts(tmp_path: Path) -> None:
    r = judge(always_a, tmp_path, tags=["helpfulness"], on=["helpful"], principles=5)
    prompts, completions, columns = batch(["x", "y"], ["p1", "p2"])
    columns["prompt_set"] = ["helpful", "red-team"]
    assert r(prompts, completions, **columns) == [pytest.approx(0.5), None]
    row = json.loads((tmp_path / "rewards.jsonl").read_text())
    udhr = {p.id: p.tags for p in load_constitution("udhr").comparison_principles()}
    assert row["principle_ids"] and all("helpfulness" in udhr[p] for p in row["principle_ids"])
    with pytest.raises(ConfigError, match="no comparison principle tagged"):
        judge(always_a, tags=["no-such-tag"])


def test_length_reward_and_the_refusal_monitor(tmp_path: Path) -> None:
    log = RewardLog(tmp_path / "r.jsonl")
    rewards = build_rewards(
        [parse_reward("length:10; weight=0.5")], log, pool=None, constitution=None, seed=0
    )
    assert [r.__name__ for r in rewards] == ["length", "refusal_monitor"]
    length, monitor = rewards
    assert isinstance(length, LengthReward) and monitor.spec.weight == 0.0
    prompts, completions, columns = batch(["I can't help with that.", "Sure: here."], ["a", "b"])
    columns["completion_ids"] = [[1] * 5, [1] * 20]
    assert length(prompts, completions, **columns) == [-0.5, -2.0]
    assert monitor(prompts, completions, **columns) == [1.0, 0.0]


def test_parse_reward_refuses_bad_text() -> None:
    r = parse_reward("judge:hf:/m; weight=2; on=red-team,helpful; versus=group; principles=3")
    assert (r.arg, r.weight, r.on, r.versus, r.principles) == (
        "hf:/m",
        2.0,
        ["red-team", "helpful"],
        "group",
        3,
    )
    assert r.name == "judge@red-team+helpful"
    for bad, match in [
        ("judge", "needs its argument"),
        ("magic:x", "unknown reward"),
        ("length:abc", "positive number"),
        ("judge:embedded; weight", "not key=value"),
        ("judge:embedded; versus=sideways", "versus"),
    ]:
        with pytest.raises(ConfigError, match=match):
            parse_reward(bad)


def test_guard_rails_warn_when_training_reward_rises_but_held_out_does_not() -> None:
    history = [
        {
            "step": s,
            "reward": r,
            "kl": 0.01 * s,
            "completions/mean_length": 40.0,
            "rewards/judge/mean": r,
            "rewards/refusal_monitor/mean": f,
        }
        for s, r, f in [(1, 0.4, 0.0), (2, 0.5, 0.1), (3, 0.7, 0.5)]
    ]
    curves = rl_curves(history, ["judge", "refusal_monitor"])
    assert curves["refusal"] == [0.0, 0.1, 0.5] and curves["rewards/judge"] == [0.4, 0.5, 0.7]
    before = {"rewards": {"judge": 0.5}, "refusal_rate": 0.0}
    flat = guard_rails(curves, before, {"rewards": {"judge": 0.49}, "refusal_rate": 0.5})
    assert any("held-out reward judge did not" in w for w in flat)
    assert any("refusal rate over training rose" in w for w in flat)
    assert any("held-out refusal rate rose" in w for w in flat)
    better = guard_rails(curves, before, {"rewards": {"judge": 0.6}, "refusal_rate": 0.0})
    assert not any("did not" in w for w in better)
