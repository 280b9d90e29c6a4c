"""End to end in probe mode on a synthetic task: procedure, reproducibility, resume, CLI, sweep."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from charter.cli.w2s import w2s
from charter.errors import ConfigError
from charter.w2s.experiment import W2SConfig, run_experiment
from charter.w2s.features import features_for
from charter.w2s.heads import HeadConfig
from charter.w2s.tasks import load_task

TASK = "synthetic:600@seed=3,hard=0"
# Weak: a tf-idf with only 12 words cannot see most adjectives; strong: full tf-idf.
WEAK, STRONG = "tfidf@max_features=12", "tfidf"
HEAD = HeadConfig(epochs=8)
KEYS = ("task", "weak", "strong", "loss", "seed", "weak_acc", "student_acc", "ceiling_acc")


def _config(**kw: object) -> W2SConfig:
    base: dict[str, object] = {
        "task": TASK,
        "weak": WEAK,
        "strong": STRONG,
        "seeds": [0, 1],
        "head": HEAD,
    }
    return W2SConfig.model_validate({**base, **kw})


def test_probe_run_writes_one_json_per_run_and_is_reproducible(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    results = run_experiment(_config(), tmp_path / "a", cache_dir=cache)
    assert len(results) == 4  # 2 losses × 2 seeds
    files = sorted((tmp_path / "a" / "runs").glob("*.json"))
    assert len(files) == 4
    record = json.loads(files[0].read_text())
    for key in (*KEYS, "pgr", "n_test"):
        assert key in record
    assert record["n_test"] == len(record["test_correct"]["weak"])
    assert record["ceiling_acc"] > record["weak_acc"]
    # Same seed, fresh folder → the same numbers.
    again = run_experiment(_config(), tmp_path / "b", cache_dir=cache)
    for r1, r2 in zip(results, again, strict=True):
        assert {k: r1[k] for k in KEYS} == {k: r2[k] for k in KEYS}
        assert r1["test_correct"] == r2["test_correct"]


def test_rerun_skips_finished_runs_and_redoes_changed_ones(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    out = tmp_path / "run"
    first = run_experiment(_config(losses=["xent"]), out, cache_dir=cache)
    path = next((out / "runs").glob("*xent__seed0.json"))
    stamp = path.stat().st_mtime_ns
    second = run_experiment(_config(losses=["xent"]), out, cache_dir=cache)
    assert path.stat().st_mtime_ns == stamp
    assert first == second
    changed = run_experiment(
        _config(losses=["xent"], head=HeadConfig(epochs=3)), out, cache_dir=cache
    )
    assert path.stat().st_mtime_ns != stamp
    assert changed[0]["config_hash"] != first[0]["config_hash"]


def test_bootstrap_through_an_intermediate(tmp_path: Path) -> None:
    config = _config(losses=["bootstrap"], intermediate="tfidf@max_features=40", seeds=[0])
    (record,) = run_experiment(config, tmp_path, cache_dir=tmp_path / "cache")
    assert record["loss"] == "bootstrap" and 0.0 <= record["intermediate_acc"] <= 1.0
    with pytest.raises(ConfigError, match="intermediate"):
        _config(losses=["bootstrap"]).check()


def test_feature_cache_is_reused(tmp_path: Path) -> None:
    task = load_task(TASK)
    a = features_for("tfidf", task, tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1
    b = features_for("tfidf", task, tmp_path)
    assert (a != b).nnz == 0


def test_hidden_state_features_of_a_tiny_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    task = load_task("synthetic:40@seed=1")
    spec = f"hf:{tiny_model_dir}@layer=1,batch_size=16"
    feats = features_for(spec, task, tmp_path)
    assert feats.shape == (len(task), 128)
    assert np.isfinite(feats).all()
    assert np.array_equal(feats, features_for(spec, task, tmp_path))


def test_cli_run_and_sweep(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    args = ["run", "--task", TASK, "--weak", WEAK, "--strong", STRONG, "--seeds", "2"]
    args += ["--epochs", "5", "--out", str(out), "--cache-dir", str(tmp_path / "c")]
    result = runner.invoke(w2s, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "median PGR" in result.output and "logconf" in result.output
    for name in ("summary.json", "summary.md", "w2s.png"):
        assert (out / name).exists()
    bad = runner.invoke(w2s, ["run", "--task", TASK, "--weak", "gpt9", "--strong", STRONG])
    assert isinstance(bad.exception, ConfigError)

    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        "out: swept\ncache_dir: cache\n"
        "tasks: ['synthetic:400@seed=1,hard=0', 'synthetic:400@seed=2,hard=0']\n"
        f"pairs: [{{weak: '{WEAK}', strong: '{STRONG}'}},"
        f" {{weak: '{WEAK}', strong: '{STRONG}', weak_train_limit: 50}}]\n"
        "losses: [xent, logconf]\nseeds: 1\nhead: {epochs: 4}\n"
    )
    result = runner.invoke(w2s, ["sweep", str(sweep), "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "swept" / "summary.json").read_text())
    assert len(summary["rows"]) == 2 * 2 * 2
    assert len(list((tmp_path / "swept" / "runs").glob("*.json"))) == 8
    typo = tmp_path / "typo.yaml"
    typo.write_text("tasks: [synthetic:10]\npairs: [{weak: tfidf, strong: tfidf}]\nsede: 3\n")
    result = runner.invoke(w2s, ["sweep", str(typo)])
    assert "sede" in str(result.exception) and "typo.yaml" in str(result.exception)


def test_cli_module_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, charter.cli.w2s; "
        "heavy = [m for m in ('torch', 'sklearn', 'transformers', 'scipy') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
