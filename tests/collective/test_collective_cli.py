"""`charter collective ingest|analyze|draft` and `charter bench collective`, as a user runs them."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from polis_data import needs_polis_data, open_data

from charter.cli.bench import bench_collective_cmd
from charter.cli.collective import collective
from charter.errors import CharterError


def charter(args: list[str]) -> tuple[int, str]:
    """Run the commands the way `charter.cli.main` does: user errors → one line, exit 2."""
    group = click.Group("charter", commands={"collective": collective})
    runner = CliRunner()
    result = runner.invoke(group, args, catch_exceptions=True)
    if isinstance(result.exception, CharterError):
        return result.exception.exit_code, f"charter: error: {result.exception}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


TOPICS = [
    "The AI should be honest about what it does not know.",
    "Children deserve special protection online.",
    "Weather forecasts are useful for farmers.",
    *(f"Policy proposal number {j} about taxes should pass." for j in range(3, 12)),
]


def small_export(folder: Path) -> Path:
    folder.mkdir()
    with (folder / "comments.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["comment-id", "moderated", "comment-body"])
        for j, text in enumerate(TOPICS):
            w.writerow([j, 1, text])
    with (folder / "votes.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "comment-id", "voter-id", "vote"])
        for p in range(60):
            for j in range(12):
                side = 1 if (p < 30) == (j % 2 == 0) else -1
                if j == 3 + p % 9:
                    side = 0  # everyone passes on one statement: no two people vote alike
                w.writerow([p * 100 + j, j, p, 1 if j < 3 else side])  # 0..2: everyone agrees
    return folder


def test_ingest_analyze_draft(tmp_path: Path) -> None:
    src = small_export(tmp_path / "export")
    work = tmp_path / "work"
    code, out = charter(["collective", "ingest", str(src), "--out", str(work)])
    assert code == 0, out
    assert "12 statements, 60 participants, 720 votes" in out
    code, out = charter(["collective", "analyze", str(work), "--seed", "0"])
    assert code == 0, out
    assert "2 groups" in out
    for name in ("analysis.json", "statements.csv", "participants.csv", "opinion_map.png"):
        assert (work / name).is_file()
    code, out = charter(
        ["collective", "draft", str(work), "--out", str(tmp_path / "c.yaml"), "--min-gic", "0.8"]
    )
    assert code == 0, out
    assert "drafted 3 principles from 3 statements" in out
    assert (work / "constitution.yaml").read_text() == (tmp_path / "c.yaml").read_text()


def test_user_errors_exit_2_naming_file_line_and_column(tmp_path: Path) -> None:
    src = small_export(tmp_path / "export")
    with (src / "votes.csv").open("a", newline="", encoding="utf-8") as f:
        csv.writer(f).writerow([1, 0, 5, "yes"])
    code, out = charter(["collective", "ingest", str(src), "--out", str(tmp_path / "w")])
    assert code == 2
    assert f"{src / 'votes.csv'}, line 722: column `vote`" in out
    code, out = charter(
        ["collective", "ingest", str(src), "--out", str(tmp_path / "w"), "--lenient"]
    )
    assert code == 0 and "--lenient dropped 1 rows: unknown vote value" in out
    code, out = charter(["collective", "analyze", str(src)])
    assert code == 2 and "pass --out" in out
    code, out = charter(["collective", "draft", str(tmp_path)])
    assert code == 2 and "analysis.json" in out
    code, out = charter(
        ["collective", "draft", str(tmp_path), "--min-gic", "0.5", "--min-group-agree", "0.5"]
    )
    assert code == 2 and "not both" in out


@needs_polis_data
def test_groups_from_export_file(tmp_path: Path) -> None:
    src = open_data("brexit-consensus")
    code, out = charter(["collective", "ingest", str(src), "--out", str(tmp_path)])
    assert code == 0, out
    code, out = charter(
        ["collective", "analyze", str(tmp_path), "--no-figures", "--groups-from-export",
         str(src / "participants-votes.csv")]
    )  # fmt: skip
    assert code == 0, out
    assert "197 of 204 participants grouped, 2 groups from export (0: 106, 1: 91)" in out
    assert not (tmp_path / "report.html").exists()
    # Bare flag: the group ids kept at ingest.
    code, out = charter(["collective", "analyze", str(tmp_path), "--groups-from-export"])
    assert code == 0, out
    assert "2 groups from export (0: 106, 1: 91)" in out
    assert (tmp_path / "report.html").is_file()


def test_bench_collective_json_and_text() -> None:
    runner = CliRunner()
    args = ["--participants", "400", "--statements", "60", "--density", "0.2"]
    result = runner.invoke(bench_collective_cmd, [*args, "--json"], catch_exceptions=False)
    data = json.loads(result.stdout)
    assert data["input"]["participants"] == 400
    assert data["charter_seconds"] > 0
    assert data["reddwarf_seconds"] is not None and data["reddwarf_seconds"] > 0
    assert 0.5 <= data["ari_charter_reddwarf"] <= 1.0
    result = runner.invoke(bench_collective_cmd, [*args, "--no-reddwarf"], catch_exceptions=False)
    assert "charter analyze" in result.output and "not run" in result.output


def test_cli_modules_import_nothing_heavy() -> None:
    code = (
        "import sys, charter.cli.collective, charter.cli.bench\n"
        "heavy = [m for m in ('numpy', 'scipy', 'sklearn', 'torch', 'matplotlib', 'pandas',"
        " 'sentence_transformers', 'reddwarf') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("flag", ["--help"])
def test_help(flag: str) -> None:
    result = CliRunner().invoke(collective, [flag])
    assert result.exit_code == 0
    assert "ingest" in result.output and "analyze" in result.output and "draft" in result.output
