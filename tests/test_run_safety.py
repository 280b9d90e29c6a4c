"""Run folders never lose data to a typo (#18 items 1 and 2): run names are plain names, only a
folder holding a charter manifest is ever deleted, and one process at a time writes a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from charter.errors import RunFolderError
from charter.runs import RunFolder, check_run_name
from conftest import run_cli
from test_cli_generate import write_prompts

ONLY_GENERATE = ("sl", "label", "train", "evaluate")


def only_generate_config(tmp_path: Path, runs: Path) -> Path:
    prompts = write_prompts(tmp_path / "p.jsonl", 2)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"runs_dir: {runs}\nprompts: {prompts}\ngeneration:\n  backend: fake\n"
        + "".join(f"{stage}:\n  enabled: false\n" for stage in ONLY_GENERATE)
    )
    return cfg


def snapshot(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "/abs", "a/b", "-x", "a b", "x" * 129])
def test_run_name_must_be_a_plain_folder_name(name: str) -> None:
    with pytest.raises(RunFolderError, match="not a plain folder name"):
        check_run_name(name)


@pytest.mark.parametrize(
    "args",
    [
        ["--name", "..", "--overwrite"],
        ["--name", ".", "--overwrite"],
        ["--set", "name=", "--overwrite"],
        ["--name", "../outside", "--overwrite"],
        ["--name", "ABS", "--overwrite"],
    ],
)
def test_run_never_deletes_or_writes_outside_the_runs_folder(
    tmp_path: Path, args: list[str]
) -> None:
    """Each of these deleted the working directory, every other run, or wrote outside them."""
    work = tmp_path / "work"
    runs = work / "runs"
    (runs / "other-run").mkdir(parents=True)
    (runs / "other-run" / "manifest.json").write_text("{}")
    (work / "thesis.tex").write_text("two years of work")
    cfg = only_generate_config(tmp_path, runs)
    args = [str(tmp_path / "abs") if a == "ABS" else a for a in args]
    before = snapshot(tmp_path)
    r = run_cli(
        ["run", "--preset", "quick", "--config", str(cfg), *args, "--no-progress"], cwd=work
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert "not a plain folder name" in r.stderr
    assert snapshot(tmp_path) == before
    assert (work / "thesis.tex").read_text() == "two years of work"


def test_overwrite_deletes_only_a_folder_that_holds_a_run(tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", 2)
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("keep me")
    gen = ["generate", "--model", "fake", "--prompts", str(prompts), "--no-progress"]
    r = run_cli([*gen, "--out", str(thesis), "--overwrite"])
    assert r.returncode == 2 and str(thesis) in r.stderr and "not a charter run" in r.stderr, (
        r.stderr
    )
    assert snapshot(thesis) == ["chapter1.tex"]
    # A real run folder is replaced by --overwrite, as asked.
    out = tmp_path / "out"
    assert run_cli([*gen, "--out", str(out)]).returncode == 0
    (out / "generations.jsonl").write_text("")
    r = run_cli([*gen, "--out", str(out), "--overwrite"])
    assert r.returncode == 0, r.stderr
    assert len((out / "generations.jsonl").read_text().splitlines()) == 2


HOLDER = textwrap.dedent(
    """
    import sys, time
    from charter.runs import RunFolder
    folder = RunFolder.open(sys.argv[1], {"x": 1})
    print("locked", flush=True)
    time.sleep(120)
    """
)


def test_a_second_process_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    """Two processes resuming one run wrote 400 lines for 200 ids; now the second one stops."""
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderError, match=f"PID {holder.pid}"):
            RunFolder.open(out, {"x": 1}, resume=True)
        prompts = write_prompts(tmp_path / "p.jsonl", 2)
        r = run_cli(
            ["generate", "--model", "fake", "--prompts", str(prompts), "--out", str(out),
             "--resume", "--no-progress"]
        )  # fmt: skip
        assert r.returncode == 2 and str(holder.pid) in r.stderr, r.stderr
    finally:
        holder.kill()
        holder.wait()
    # The kernel releases the lock with the process, however it ended: the folder opens again.
    with RunFolder.open(out, {"x": 1}, resume=True) as folder:
        assert folder.path == out
    assert "stages" in json.loads((out / "manifest.json").read_text())
    assert os.path.exists(out / ".charter.lock")
