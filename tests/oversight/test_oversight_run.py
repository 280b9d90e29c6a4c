"""Run folders for `charter oversight run`: resumable transcripts, metrics, plots, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from charter.backends.fake import FakeBackend
from charter.errors import RunFolderError
from charter.oversight.protocols import OversightConfig
from charter.oversight.questions import synthetic_questions
from charter.oversight.run import run_oversight
from conftest import run_cli


def speeches(backend: FakeBackend) -> int:
    return sum(len(c.requests) for c in backend.calls if c.method == "generate")


def test_run_writes_everything_and_resumes_without_redoing_work(tmp_path: Path) -> None:
    questions = synthetic_questions(3, seed=1)
    config = OversightConfig(protocols=["blind", "consultancy", "debate", "oracle"], rounds=2)
    judge, debater = FakeBackend(spec="fake-judge"), FakeBackend(spec="fake")
    out = tmp_path / "run"
    metrics = run_oversight(
        questions, config, judge, {"fake": debater}, out, batch_units=5, progress=False
    )
    # 3 questions × 2 orders: blind 6, oracle 6, consultancy 12 (two sides), debate 6.
    lines = (out / "transcripts.jsonl").read_text().splitlines()
    assert len(lines) == 30 and len({json.loads(x)["id"] for x in lines}) == 30
    assert speeches(debater) == 12 * 2 + 6 * 2 * 2
    assert set(metrics["protocols"]) == {"blind", "consultancy", "debate", "oracle"}
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["protocols"]["debate"]["transcripts"] == 6
    assert (out / "accuracy.png").stat().st_size > 0 and (out / "calibration.png").exists()
    assert (
        json.loads((out / "manifest.json").read_text())["stages"]["oversight"]["status"]
        == "complete"
    )

    with pytest.raises(RunFolderError, match="--resume"):
        run_oversight(questions, config, judge, {"fake": debater}, out, progress=False)

    # A crash that lost the last two transcripts (debate units) and left half a line.
    kept = lines[:-2]
    (out / "transcripts.jsonl").write_text("\n".join(kept) + "\n" + lines[-2][:40])
    before = speeches(debater)
    again = run_oversight(
        questions, config, judge, {"fake": debater}, out, resume=True, progress=False
    )
    redone = [json.loads(x) for x in lines[-2:]]
    assert speeches(debater) - before == sum(len(r["turns"]) for r in redone)
    assert again["protocols"] == metrics["protocols"]
    after = (out / "transcripts.jsonl").read_text().splitlines()
    assert len(after) == 30 and after[:-2] == kept


def test_cli_runs_all_protocols_with_the_fake_backend(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["oversight", "run", "--protocol", "all", "--data", "synthetic:2", "--judge", "fake",
            "--debater", "fake", "--rounds", "1", "--order", "sequential", "--out", str(out),
            "--no-progress"]  # fmt: skip
    done = run_cli(args, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "| debate |" in done.stdout and "| consultancy |" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["order"] == "sequential" and metrics["n_questions"] == 2
    again = run_cli([*args, "--resume"], timeout=120)
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--protocol", "debate,vote"], "--protocol"),
        (["--protocol", "debate"], "needs --debater"),
        (["--protocol", "blind", "--judge", "gpt"], "unknown backend"),
        (["--protocol", "blind", "--data", "synthetic:x"], "synthetic"),
    ],
)
def test_cli_errors_are_one_paragraph_and_exit_2(
    tmp_path: Path, extra: list[str], needle: str
) -> None:
    args = [
        "oversight",
        "run",
        "--data",
        "synthetic:2",
        "--judge",
        "fake",
        "--out",
        str(tmp_path / "o"),
    ]
    done = run_cli([*args, *extra], timeout=60)
    assert done.returncode == 2, done.stderr
    assert needle in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()


def test_cli_reports_a_bad_data_line(tmp_path: Path) -> None:
    data = tmp_path / "q.jsonl"
    data.write_text('{"source": "s", "question": "q", "answers": ["a", "b"], "correct": 5}\n')
    done = run_cli(["oversight", "run", "--protocol", "blind", "--data", str(data), "--judge",
                    "fake", "--out", str(tmp_path / "o")], timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert "q.jsonl, line 1: field `correct`" in done.stderr
