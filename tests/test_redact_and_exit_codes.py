"""Credentials in backend URLs never reach a file or a message (#18.8), and the exit codes of
docs/reliability.md (#18.7): 2 for input errors, 1 for a failed check, 130 on interrupt."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from charter.redact import redact_spec
from charter.runs import RunFolder
from conftest import run_cli
from test_cli_generate import write_prompts

SPEC = "openai:http://alice:hunter2pass@127.0.0.1:9/v1?api-key=sk-SECRETKEY123#m"
SECRETS = ("hunter2pass", "sk-SECRETKEY123")


def test_redact_spec_masks_password_and_key_and_keeps_the_rest() -> None:
    out = redact_spec(SPEC)
    assert not any(s in out for s in SECRETS)
    assert out == "openai:http://alice:***@127.0.0.1:9/v1?api-key=***#m"


def test_run_folder_files_never_hold_the_credentials(tmp_path: Path) -> None:
    folder = tmp_path / "run"

    def fails() -> None:
        raise RuntimeError(f"could not connect to {SPEC.removeprefix('openai:')}")

    config = {"generation": {"backend": SPEC}, "judge": SPEC}
    with RunFolder.open(folder, config) as run, pytest.raises(RuntimeError):
        run.run_stage("generate", "h", ["generations.jsonl"], fails)
    assert json.loads((folder / "manifest.json").read_text())["stages"]["generate"]["error"]
    for path in folder.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            assert not any(s in text for s in SECRETS), path


def test_an_unreachable_server_error_does_not_print_the_credentials(tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", 1)
    r = run_cli(["generate", "--model", SPEC, "--prompts", str(prompts),
                 "--out", str(tmp_path / "out"), "--model-opt", "max_retries=0",
                 "--no-progress"])  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "127.0.0.1:9" in r.stderr and not any(s in r.stderr + r.stdout for s in SECRETS)


def test_exit_codes_input_error_2_failed_check_1(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("name: t\nprinciples: []\n")
    assert run_cli(["constitution", "validate", str(bad)]).returncode == 1
    missing = run_cli(["generate", "--model", "fake", "--prompts", str(tmp_path / "nope.jsonl"),
                       "--out", str(tmp_path / "o")])  # fmt: skip
    assert missing.returncode == 2 and not (tmp_path / "o").exists()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_exits_130_and_says_how_to_resume(tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", 50)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "charter", "generate", "--model", "fake", "--prompts",
         str(prompts), "--out", str(out), "--batch-size", "1", "--model-opt", "delay=0.2",
         "--no-progress"],
        env=os.environ.copy(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        # A shell without job control starts background jobs with SIGINT ignored, and the
        # child would inherit that (`nohup make test &`): give it the terminal's default.
        preexec_fn=_default_sigint,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out / "generations.jsonl").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    assert json.loads((out / "manifest.json").read_text())["stages"]
