"""`charter generate` and `charter run` end to end, as a user runs them (fresh processes)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli


def write_prompts(path: Path, n: int) -> Path:
    lines = [json.dumps({"id": f"p{i}", "prompt": f"Question number {i}?"}) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_generate_with_fake_backend(tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", 5)
    out = tmp_path / "out"
    r = run_cli(
        [
            "generate",
            "--model",
            "fake",
            "--prompts",
            str(prompts),
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert r.returncode == 0, r.stderr
    records = read_records(out / "generations.jsonl")
    assert sorted(str(x["prompt_id"]) for x in records) == [f"p{i}" for i in range(5)]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stages"]["generate"]["status"] == "complete"
    assert manifest["stages"]["generate"]["records"] == 5
    # Running again without --resume refuses; with it, there is nothing to do.
    again = run_cli(["generate", "--model", "fake", "--prompts", str(prompts), "--out", str(out)])
    assert again.returncode == 2 and "--resume" in again.stderr
    resumed = run_cli(
        ["generate", "--model", "fake", "--prompts", str(prompts), "--out", str(out), "--resume"]
    )
    assert resumed.returncode == 0 and "already complete" in resumed.stdout


BAD_INPUTS: list[tuple[str, bytes, str]] = [
    ("bad-json", b'{"prompt": "ok"}\n{"prompt": "no end"\n', "line 2: invalid JSON"),
    (
        "missing-field",
        b'{"prompt": "ok"}\n{"id": "x"}\n',
        "line 2: give exactly one",
    ),
    ("wrong-type", b'{"prompt": ["a"]}\n', "line 1: field `prompt`"),
    (
        "empty-prompt",
        b'{"prompt": "ok"}\n{"prompt": "  "}\n',
        "line 2: `prompt` is empty",
    ),
    (
        "not-utf8",
        b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n',
        "line 2: not valid UTF-8 (byte 0xe9",
    ),
    (
        "unknown-field",
        b'{"prompt": "ok", "promt": "x"}\n',
        "line 1: unknown field `promt`",
    ),
    (
        "duplicate-id",
        b'{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n',
        "line 2: duplicate prompt id",
    ),
    ("not-object", b'["a"]\n', "line 1: expected a JSON object"),
    ("empty-file", b"\n\n", "holds no prompts"),
]


@pytest.mark.parametrize(
    ("name", "content", "expected"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS]
)
def test_bad_input_exits_2_with_location_and_no_output(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    prompts = tmp_path / f"{name}.jsonl"
    prompts.write_bytes(content)
    out = tmp_path / "out"
    r = run_cli(["generate", "--model", "fake", "--prompts", str(prompts), "--out", str(out)])
    assert r.returncode == 2
    assert str(prompts) in r.stderr and expected in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()


def test_unknown_backend_spec(tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", 1)
    r = run_cli(
        ["generate", "--model", "gpt9:x", "--prompts", str(prompts), "--out", str(tmp_path / "o")]
    )
    assert r.returncode == 2 and "unknown backend spec 'gpt9:x'" in r.stderr
    assert not (tmp_path / "o").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_leaves_no_output(tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", 3)
    url = f"http://127.0.0.1:{free_port()}/v1"
    out = tmp_path / "o"
    r = run_cli(
        [
            "generate",
            "--model",
            f"openai:{url}#m",
            "--prompts",
            str(prompts),
            "--out",
            str(out),
            "--model-opt",
            "max_retries=1",
            "--model-opt",
            "backoff=0.01",
            "--no-progress",
        ]
    )
    assert r.returncode == 2, r.stderr
    assert url in r.stderr and "Traceback" not in r.stderr
    assert not (out / "generations.jsonl").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stages"]["generate"]["status"] == "failed"


def test_sigkill_then_resume_answers_every_prompt_exactly_once(tmp_path: Path) -> None:
    n = 24
    prompts = write_prompts(tmp_path / "p.jsonl", n)
    out = tmp_path / "out"
    args = [
        "generate",
        "--model",
        "fake",
        "--prompts",
        str(prompts),
        "--out",
        str(out),
        "--batch-size",
        "2",
        "--model-opt",
        "delay=0.25",
        "--no-progress",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "charter", *args],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    target = out / "generations.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if target.exists() and len(target.read_text().splitlines()) >= 6:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(target.read_text().splitlines())
    assert 6 <= done_before < n, "the kill must land mid-run"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stages"]["generate"]["status"] == "running"  # killed: never marked complete

    r = run_cli([*args[:-3], "--model-opt", "delay=0", "--resume", "--no-progress"])
    assert r.returncode == 0, r.stderr
    records = read_records(target)
    assert len(records) == n
    assert sorted(str(x["prompt_id"]) for x in records) == sorted(f"p{i}" for i in range(n))
    assert len({x["id"] for x in records}) == n
    assert f"({done_before} already done)" in r.stdout


ONLY_GENERATE = ("sl", "label", "train", "evaluate")  # the pipeline's other stages: test_pipeline


def test_run_with_config_and_overrides(tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", 3)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"runs_dir: {tmp_path / 'runs'}\nprompts: {prompts}\ngeneration:\n  backend: fake\n"
        + "".join(f"{stage}:\n  enabled: false\n" for stage in ONLY_GENERATE)
    )
    r = run_cli(["run", "--preset", "quick", "--config", str(cfg), "--name", "t", "--no-progress"])
    assert r.returncode == 0, r.stderr
    assert len(read_records(tmp_path / "runs" / "t" / "generations.jsonl")) == 3
    # A changed sampling setting invalidates the generate stage on resume.
    r2 = run_cli(
        [
            "run",
            "--preset",
            "quick",
            "--config",
            str(cfg),
            "--name",
            "t",
            "--resume",
            "--set",
            "generation.temperature=0.1",
            "--no-progress",
        ]
    )
    # Changed options would discard finished answers: refused, until --redo asks for it.
    assert r2.returncode == 2 and "--redo generate" in r2.stderr, r2.stderr
    assert len(read_records(tmp_path / "runs" / "t" / "generations.jsonl")) == 3
    r2 = run_cli(
        ["run", "--preset", "quick", "--config", str(cfg), "--name", "t", "--resume", "--set",
         "generation.temperature=0.1", "--redo", "generate", "--no-progress"]
    )  # fmt: skip
    assert r2.returncode == 0 and "generate: redone as asked" in r2.stdout, r2.stderr
    records = read_records(tmp_path / "runs" / "t" / "generations.jsonl")
    assert len(records) == 3 and all(x["sampling"]["temperature"] == 0.1 for x in records)  # type: ignore[index]
    bad = run_cli(["run", "--config", str(cfg), "--set", "generation.tempreture=1"])
    assert bad.returncode == 2 and "unknown key `generation.tempreture`" in bad.stderr


@pytest.mark.slow
def test_quick_run_on_the_embedded_model(tmp_path: Path) -> None:
    """What `make run` does, offline: one record per builtin demo prompt."""
    r = run_cli(
        [
            "run",
            "--preset",
            "quick",
            "--resume",
            "--set",
            f"runs_dir={tmp_path}",
            "--set",
            "generation.max_new_tokens=16",
            *[a for stage in ONLY_GENERATE for a in ("--set", f"{stage}.enabled=false")],
            "--no-progress",
        ]
    )
    assert r.returncode == 0, r.stderr
    records = read_records(tmp_path / "quick" / "generations.jsonl")
    from charter.data import load_prompts

    assert sorted(str(x["prompt_id"]) for x in records) == sorted(
        p.key() for p in load_prompts("demo")
    )
    assert all(x["backend"] == "embedded" and str(x["completion"]).strip() for x in records)
