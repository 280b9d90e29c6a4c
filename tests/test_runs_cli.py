"""What a new user meets first: `charter run` defaults, `--dry-run`, `--resume` of a run that does
not exist, the summary after a resume, and `charter runs list|show`."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from charter.cli import cli
from conftest import FAKE_RUN

FAST = FAKE_RUN


def _sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def invoke(args: list[str]) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, args)
    return r.exit_code, r.stdout, r.stderr


def test_bare_run_is_the_quick_preset_and_dry_run_writes_nothing(tmp_path: Path) -> None:
    code, out, _ = invoke(["run", "--dry-run", "--runs-dir", str(tmp_path)])
    assert code == 0, out
    assert "name: quick" in out and f"run folder: {tmp_path / 'quick'}" in out
    for stage in ("generate", "sl", "label", "train", "evaluate"):
        assert f"  {stage}" in out
    assert not any(tmp_path.iterdir())  # nothing written
    code, out, _ = invoke(
        ["run", "--dry-run", "--json", "--set", "train.enabled=false", "--runs-dir", str(tmp_path)]
    )
    plan = json.loads(out)
    assert plan["stages"]["train"] is False and plan["stages"]["sl"] is True
    assert plan["config"]["train"]["sft"]["max_steps"] == 24  # the quick preset's


def test_resume_of_a_missing_run_lists_the_runs_there(tmp_path: Path) -> None:
    code, out, _ = invoke(["run", *_sets(FAST), "--runs-dir", str(tmp_path), "--no-progress"])
    assert code == 0, out
    r = CliRunner().invoke(cli, ["run", "--resume", "--name", "qiuck", "--runs-dir", str(tmp_path)])
    assert r.exit_code != 0
    assert "there is no run 'qiuck'" in str(r.exception) and "quick" in str(r.exception)
    assert not (tmp_path / "qiuck").exists()


def test_resumed_run_says_skipped_and_runs_list_and_show(tmp_path: Path) -> None:
    args = ["run", *_sets(FAST), "--runs-dir", str(tmp_path), "--no-progress"]
    assert invoke(args)[0] == 0
    code, out, _ = invoke(
        ["run", "--resume", "--name", "quick", "--runs-dir", str(tmp_path), "--no-progress"]
    )
    assert code == 0, out
    for stage in ("generate", "sl", "label", "evaluate"):
        line = next(x for x in out.splitlines() if x.startswith(stage))
        assert "skipped (complete)" in line, line
    code, out, _ = invoke(["runs", "list", "--runs-dir", str(tmp_path), "--json"])
    assert code == 0
    (run,) = json.loads(out)
    assert run["name"] == "quick" and run["status"] == "complete"
    assert run["complete"] == run["stages"] >= 6
    code, out, _ = invoke(["runs", "show", "quick", "--runs-dir", str(tmp_path), "--json"])
    shown = json.loads(out)
    assert {"generate", "sl", "label", "label/pairs", "evaluate"} <= set(shown["stages"])
    assert shown["metrics"]["base"]["harmful_compliance"] is not None
    code, out, _ = invoke(["runs", "show", "quick", "--runs-dir", str(tmp_path)])
    assert code == 0 and "harmful compliance" in out and "label/pairs" in out
    r = CliRunner().invoke(cli, ["runs", "show", "nope", "--runs-dir", str(tmp_path)])
    assert r.exit_code != 0 and "runs there: quick" in str(r.exception)


def test_run_json_is_one_object_on_stdout(tmp_path: Path) -> None:
    code, out, _ = invoke(["run", *_sets(FAST), "--runs-dir", str(tmp_path), "--json"])
    assert code == 0
    result = json.loads(out)
    assert [s["name"] for s in result["stages"]][:3] == ["constitution", "prompts", "generate"]
    assert result["metrics"]["models"]["base"]
