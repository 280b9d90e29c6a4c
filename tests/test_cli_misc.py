"""Start-up cost, `charter models`, and the generate benchmark."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli


def test_help_is_fast_and_imports_no_torch() -> None:
    code = (
        "import sys; from charter.cli import cli; "
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    assert subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    ).stdout.split() == [
        "False",
        "False",
    ]
    best = min(_timed(["--help"]) for _ in range(3))
    assert best < 1.0, f"charter --help took {best:.2f} s"


def _timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    r = run_cli(args)
    assert r.returncode == 0
    return time.perf_counter() - t0


def test_models_list_and_tiny_random(tmp_path: Path) -> None:
    r = run_cli(["models", "list"])
    assert r.returncode == 0 and "smollm2-135m-instruct" in r.stdout and "sha256: " in r.stdout
    r = run_cli(["models", "backends"])
    assert r.returncode == 0 and "openai:<base_url>#<model>" in r.stdout
    r = run_cli(["models", "pull", "--tiny-random", str(tmp_path / "tiny")])
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "tiny" / "model.safetensors").exists()
    r = run_cli(["models", "pull"])
    assert r.returncode == 2 and "name a model" in r.stderr


def test_bench_generate_reports_three_figures(tiny_model_dir: Path) -> None:
    r = run_cli(
        [
            "bench",
            "generate",
            "--model",
            f"hf:{tiny_model_dir}",
            "--n",
            "6",
            "--batch-size",
            "3",
            "--max-new-tokens",
            "8",
            "--json",
        ]
    )
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    for key in (
        "charter_tokens_per_s",
        "raw_tokens_per_s",
        "raw_bf16_tokens_per_s",
        "naive_tokens_per_s",
    ):
        assert result[key] > 0
    # The measured path runs on the CPU default engine; the baselines on transformers.
    assert result["engine"] == "ct2" and result["compute_type"] == "int8"
    assert set(result["peak_rss_mb"]) == {"charter", "raw", "raw_bf16"}
    # Forced lengths: every path produces exactly n * max_new_tokens tokens.
    assert result["tokens"] == {"charter": 48, "raw": 48, "raw_bf16": 48, "naive": 48}
    text = run_cli(
        [
            "bench",
            "generate",
            "--model",
            f"hf:{tiny_model_dir}",
            "--n",
            "2",
            "--max-new-tokens",
            "2",
        ]
    )
    assert "(a)  charter generate" in text.stdout and "a/b2 =" in text.stdout


def test_bench_rejects_non_transformers_backend() -> None:
    r = run_cli(["bench", "generate", "--model", "fake", "--n", "2"])
    assert r.returncode == 2 and "needs a local model" in r.stderr


def test_bench_sl_reports_both_engines(tiny_model_dir: Path) -> None:
    r = run_cli(
        [
            "bench",
            "sl",
            "--model",
            f"hf:{tiny_model_dir}",
            "--n",
            "3",
            "--rounds",
            "1",
            "--few-shot",
            "0",
            "--max-new-tokens",
            "4",
            "--model-opt",
            "compute_type=float32",
            "--repeats",
            "2",
            "--json",
        ]
    )
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["engine"] == "ct2" and result["compute_type"] == "float32"
    assert result["repeats"] == 2 and len(result["runs"]) == 2
    assert result["runs"][0]["generate_tokens"] == result["runs"][1]["generate_tokens"] == 12
    assert result["backend_options"] == {"compute_type": "float32"}
    assert result["machine"]["dtype"] == "float32"  # the torch baseline's
    assert result["generate_calls"] == 3  # answer, critique, revision: one batched call each
    assert result["sl_tokens_per_s"] > 0 and result["torch_sl_tokens_per_s"] > 0
    assert 0 < result["tokens"]["torch_sl"] <= 3 * 3 * 4
    # bench generate's batched figure, same run: 3 demo prompts forced to 4 tokens each.
    assert result["tokens"]["generate"] == 3 * 4 and result["generate_tokens_per_s"] > 0
    assert result["ratio_sl_generate"] == pytest.approx(
        result["sl_tokens_per_s"] / result["generate_tokens_per_s"], rel=0.01
    )
    assert result["ratio_sl_torch"] == pytest.approx(
        result["sl_tokens_per_s"] / result["torch_sl_tokens_per_s"], rel=0.01
    )
    assert result["prefix_cache"] is True
    assert {"load", "stage", "torch_stage"} <= set(result["peak_rss_mb"])


def test_warm_up_leaves_nothing_for_the_timed_call(tiny_model_dir: Path) -> None:
    """The untimed warm-up batch must not hand its keys and values to the timed call (which
    would then skip its prefill)."""
    from charter.backends import load_backend
    from charter.backends.hf import HFBackend
    from charter.bench.baseline import warm_up
    from charter.records import Message, Sampling

    b = load_backend(f"hf:{tiny_model_dir}", engine="torch", batch_size=2)
    assert isinstance(b, HFBackend)
    chat = [Message(role="user", content="A prompt that the timed call will send again.")]
    warm_up(b, [chat], 2, 4)
    assert b._kv_store == []
    b.generate([chat], Sampling(max_new_tokens=4))
    assert b._kv_store
