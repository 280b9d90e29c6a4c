"""`--executor ray` on a real local Ray: the same records as the local executor (ids, principle
draws, texts) for generate, sl and label; greedy answers of the embedded model identical; a
killed driver resumes with every record once; clear errors for a bad address or resources."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import run_cli

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'charter[ray]'")


@pytest.fixture(scope="module", autouse=True)
def _one_local_ray() -> Iterator[None]:
    """The in-process commands below share one local Ray (started by the first)."""
    yield
    ray.shutdown()


def invoke(args: list[str]) -> None:
    from charter.cli import cli

    r = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def both(tmp: Path, args: list[str], file: str) -> tuple[list[dict[str, Any]], ...]:
    """Run a command with the local executor and with Ray (2 actors); its records, by id."""
    out = []
    for executor in ("local", "ray"):
        folder = tmp / executor
        invoke([*args, "--out", str(folder), "--executor", executor, "--no-progress"])
        out.append(sorted(rows(folder / file), key=lambda r: r["id"]))
    return tuple(out)


def test_generate_sl_and_label_records_equal_the_local_executors(tmp_path: Path) -> None:
    local, remote = both(
        tmp_path / "gen",
        ["generate", "--model", "fake", "--prompts", "demo", "--limit", "5"],
        "generations.jsonl",
    )
    assert [r["id"] for r in local] == [r["id"] for r in remote] and len(local) == 5
    assert local == remote
    local, remote = both(
        tmp_path / "sl",
        ["sl", "--model", "fake", "--prompts", "builtin:red-team", "--limit", "3",
         "--rounds", "2"],
        "samples.jsonl",
    )  # fmt: skip
    assert local == remote and len(local) == 3
    # The principles drawn per round are the local run's (they are in the records).
    assert [[x["principle_id"] for x in r["rounds"]] for r in remote] == [
        [x["principle_id"] for x in r["rounds"]] for r in local
    ]
    local, remote = both(
        tmp_path / "label",
        ["label", "--policy", "fake", "--feedback", "fake", "--prompts", "builtin:red-team",
         "--limit", "4", "--principles-per-pair", "2"],
        "prefs.jsonl",
    )  # fmt: skip
    assert [r["principle_ids"] for r in local] == [r["principle_ids"] for r in remote]
    assert local == remote and len(local) == 4
    manifest = json.loads((tmp_path / "label" / "ray" / "manifest.json").read_text())
    engines = [e for s in manifest["stages"].values() for e in s.get("engines") or []]
    assert engines and all(e["executor"] == "ray" and e["actors"] == 2 for e in engines)


def test_a_fake_run_on_ray_completes_and_its_manifest_names_the_executor(
    tmp_path: Path,
) -> None:
    """`charter run --executor ray`: every stage, the evaluation releasing each model's actors
    after its answers, and the manifest still describing them."""
    from conftest import FAKE_RUN

    sets = [a for item in FAKE_RUN for a in ("--set", item)]
    invoke(["run", "--preset", "quick", "--runs-dir", str(tmp_path), "--no-progress",
            "--executor", "ray", "--concurrency", "2", *sets])  # fmt: skip
    root = tmp_path / "quick"
    manifest = json.loads((root / "manifest.json").read_text())
    assert all(s["status"] == "complete" for s in manifest["stages"].values())
    evaluate = manifest["stages"]["evaluate"]["engines"]
    assert evaluate and all(e["executor"] == "ray" for e in evaluate)
    assert (root / "report.html").exists()
    config = (root / "config.yaml").read_text()
    assert "kind: ray" in config


@pytest.mark.slow
def test_greedy_answers_of_the_embedded_model_are_identical(tmp_path: Path) -> None:
    local, remote = both(
        tmp_path,
        ["generate", "--model", "embedded", "--prompts", "demo", "--limit", "4",
         "--temperature", "0", "--max-new-tokens", "24"],
        "generations.jsonl",
    )  # fmt: skip
    assert [r["completion"] for r in local] == [r["completion"] for r in remote]
    assert local == remote


@pytest.mark.slow
def test_embedded_sl_and_label_keep_ids_and_principle_draws(tmp_path: Path) -> None:
    """The embedded model samples (SL-CAI's answers, the label stage's pairs): texts may differ
    from the local run, since each actor seeds its own shard, but ids and draws may not."""
    local, remote = both(
        tmp_path / "sl",
        ["sl", "--model", "embedded", "--prompts", "builtin:red-team", "--limit", "4",
         "--rounds", "1", "--max-new-tokens", "24"],
        "samples.jsonl",
    )  # fmt: skip
    assert [r["id"] for r in local] == [r["id"] for r in remote] and len(local) == 4
    assert [[x["principle_id"] for x in r["rounds"]] for r in local] == [
        [x["principle_id"] for x in r["rounds"]] for r in remote
    ]
    local, remote = both(
        tmp_path / "label",
        ["label", "--policy", "embedded", "--feedback", "embedded", "--prompts",
         "builtin:red-team", "--limit", "3", "--principles-per-pair", "2",
         "--max-new-tokens", "16"],
        "pairs.jsonl",
    )  # fmt: skip
    assert [r["id"] for r in local] == [r["id"] for r in remote] and len(local) == 3


def test_a_killed_driver_resumes_with_every_record_once(tmp_path: Path) -> None:
    out = tmp_path / "sl"
    args = ["sl", "--model", "fake", "--model-opt", "delay=0.3", "--prompts", "builtin:red-team",
            "--limit", "6", "--chunk-size", "1", "--executor", "ray", "--out", str(out),
            "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "charter", *args],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its local Ray goes with it when the group is killed
    )
    samples = out / "samples.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if samples.exists() and 1 <= len(samples.read_text().splitlines()) < 6:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(samples.read_text().splitlines())
    assert 1 <= done < 6
    r = run_cli([*args, "--resume"], timeout=600)
    assert r.returncode == 0, r.stderr
    ids = [row["id"] for row in rows(samples)]
    assert len(ids) == len(set(ids)) == 6


def test_unreachable_cluster_and_missing_resources_are_one_paragraph(tmp_path: Path) -> None:
    r = run_cli(["generate", "--model", "fake", "--prompts", "demo", "--limit", "1",
                 "--executor", "ray", "--ray-address", "ray://127.0.0.1:9", "--out",
                 str(tmp_path / "a")], timeout=300)  # fmt: skip
    assert r.returncode == 2 and "cannot start or reach the Ray cluster" in r.stderr, r.stderr
    r = run_cli(["generate", "--model", "fake", "--prompts", "demo", "--limit", "1",
                 "--executor", "ray", "--num-gpus", "1", "--out", str(tmp_path / "b")],
                timeout=300)  # fmt: skip
    assert r.returncode == 2 and "GPUs" in r.stderr and "--concurrency" in r.stderr, r.stderr


def test_without_ray_installed_the_error_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from charter.backends.executor import ExecutorConfig, connect
    from charter.errors import ConfigError

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"pip install 'charter\[ray\]'"):
        connect(ExecutorConfig(kind="ray"))
