"""`charter evaluate --inspect-log DIR`: Inspect logs written by Inspect's own writer, read back
by Inspect, holding every answer and the figures of metrics.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("inspect_ai", reason="charter[inspect] is not installed")

from click.testing import CliRunner
from inspect_ai.log import read_eval_log

from charter.cli import cli


def test_evaluate_writes_inspect_logs_that_inspect_reads(tmp_path: Path) -> None:
    out, logs = tmp_path / "eval", tmp_path / "logs"
    args = ["evaluate", "--models", "base=fake", "--models", "other=fake", "--judge", "fake",
            "--limit", "2", "--out", str(out), "--inspect-log", str(logs),
            "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    answers = [json.loads(x) for x in (out / "answers.jsonl").read_text().splitlines()]
    for name in ("base", "other"):
        log: Any = read_eval_log(str(logs / f"{name}.eval"))
        assert log.status == "success" and log.eval.model == "charter/fake"
        mine = [a for a in answers if a["model"] == name]
        assert len(log.samples) == len(mine) == 6  # 2 prompts × 3 sets
        by_id = {f"{a['set']}:{a['lang']}:{a['prompt_id']}": a for a in mine}
        for s in log.samples:
            a = by_id[s.id]
            assert s.output.completion == a["answer"]
            assert s.scores["refusal"].value == (1 if a["refusal"] else 0)
        got = {k: v.value for k, v in log.results.scores[0].metrics.items()}
        want = metrics["models"][name]
        assert got["harmful_compliance"] == want["harmful_compliance"]["rate"]
        assert got["over_refusal"] == want["over_refusal"]["rate"]


def test_evaluate_compares_a_model_from_an_inspect_log(tmp_path: Path) -> None:
    """Another model's Inspect log (here `charter/fake` with scripted refusals) joins
    `charter evaluate` as `inspect-log:PATH`: its answers are the log's, refusal-detected and
    judged like any model's."""
    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import get_model

    refusals = ["I'm sorry, but I can't help with that."] * 3
    model = get_model("charter/fake", memoize=False, answers=refusals)
    (log,) = inspect_eval(
        "charter/harmful_compliance", model=model, limit=3, log_dir=str(tmp_path / "ilogs"),
        display="none",
    )  # fmt: skip
    out = tmp_path / "eval"
    args = ["evaluate", "--models", "base=fake", "--models", f"logged=inspect-log:{log.location}",
            "--prompts", "red-team=builtin:red-team", "--judge", "fake", "--limit", "3",
            "--out", str(out), "--no-progress", "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    answers = [json.loads(x) for x in (out / "answers.jsonl").read_text().splitlines()]
    logged = [a for a in answers if a["model"] == "logged"]
    assert [a["answer"] for a in logged] == refusals and all(a["refusal"] for a in logged)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["models"]["logged"]["harmful_compliance"]["rate"] == 0.0
    assert metrics["models"]["base"]["harmful_compliance"]["rate"] == 1.0
    # Asked a prompt its log does not hold, the logged model says which.
    args[args.index("3")] = "4"
    failed = CliRunner().invoke(cli, [*args[:-4], "--out", str(tmp_path / "e2"), "--no-progress"])
    assert failed.exit_code != 0 and "has no answer to" in str(failed.exception)
