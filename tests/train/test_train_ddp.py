"""Training across processes, for real: `accelerate launch` with two CPU processes (DDP over
gloo) runs `charter train sft` and `charter train dpo` on the tiny model; both processes end with
the same weights, and the per-step losses match one process with the same global batch."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def write_sft(path: Path, n: int) -> Path:
    rows = [
        {"id": f"s{i}", "messages": [
            {"role": "user", "content": f"Question number {i}?"},
            {"role": "assistant", "content": f"A careful answer to question {i}" + "." * i},
        ]}
        for i in range(n)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_prefs(path: Path, n: int) -> Path:
    rows = [
        {"id": f"p{i}", "prompt": [{"role": "user", "content": f"Question {i}?"}],
         "chosen": [{"role": "assistant", "content": f"A careful, kind answer to {i}."}],
         "rejected": [{"role": "assistant", "content": f"Go away {i}!!"}],
         "p_chosen": 0.7 + 0.3 * (i % 4) / 3}
        for i in range(n)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


CONFIG = Path(__file__).resolve().parents[2] / "configs" / "accelerate" / "cpu_ddp.yaml"


def launch(args: list[str], *, processes: int, env_extra: dict[str, str] | None = None) -> None:
    if processes == 1:
        cmd = [sys.executable, "-m", "charter", *args]
    else:
        cmd = [
            sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIG),
            "-m", "charter", *args,
        ]  # fmt: skip
    # One OpenMP thread per process: two spinning torch pools on two cores crawl.
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stderr[-4000:]


def losses(out: Path) -> list[float]:
    with (out / "loss.csv").open() as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sft", "dpo"])
def test_two_cpu_processes_agree_and_match_one(
    kind: str, tmp_path: Path, tiny_model_dir: Path
) -> None:
    data = (write_sft if kind == "sft" else write_prefs)(tmp_path / f"{kind}.jsonl", 8)
    common = [
        "train", kind, "--model", f"hf:{tiny_model_dir}", "--data", str(data),
        "--max-steps", "3", "--learning-rate", "1e-3", "--max-length", "64", "--no-progress",
    ]  # fmt: skip
    launch([*common, "--batch-size", "2", "--out", str(tmp_path / "two")], processes=2)
    launch([*common, "--batch-size", "4", "--out", str(tmp_path / "one")], processes=1)
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert two["processes"] == 2 and one["processes"] == 1
    # Really data-parallel (an evaluate() before train() once left DPO's model unwrapped and the
    # two processes trained apart), and both processes end with the same weights.
    assert two["wrapper"] == "DistributedDataParallel"
    assert two["replicas_agree"], two["replica_checksums"]
    assert two["steps"] == one["steps"] == 3
    # Same global batch (2 per process × 2 = 4): the logged losses are the mean of the two
    # processes' losses, one process averages over the 4 rows at once.
    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), rel=0.05)
    assert (tmp_path / "two" / "adapter" / "adapter_model.safetensors").exists()


@pytest.mark.slow
def test_a_finished_stage_is_refused_by_every_process(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Relaunched on a complete OUT, the processes stop with one message instead of the first
    skipping the stage while the second waits for it forever."""
    data = write_sft(tmp_path / "sft.jsonl", 4)
    args = ["train", "sft", "--model", f"hf:{tiny_model_dir}", "--data", str(data),
            "--max-steps", "1", "--batch-size", "2", "--max-length", "64", "--no-progress",
            "--out", str(tmp_path / "two")]  # fmt: skip
    launch(args, processes=2)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIG),
           "-m", "charter", *args]  # fmt: skip
    r = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert r.returncode != 0
    assert r.stderr.count("already holds a complete train/sft") == 2, r.stderr[-3000:]
