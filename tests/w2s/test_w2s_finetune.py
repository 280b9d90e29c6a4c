"""Finetune mode: LoRA adapters + a classification head, trained with the probe-mode losses."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from charter.errors import ConfigError
from charter.w2s.experiment import W2SConfig, run_experiment
from charter.w2s.finetune import FinetuneConfig, finetune_classifier, is_finetunable, model_dir
from charter.w2s.heads import one_hot
from charter.w2s.tasks import load_task
from conftest import run_cli

FT = FinetuneConfig(epochs=3, lr=3e-3, batch_size=8, max_length=24)


def test_which_models_can_be_finetuned() -> None:
    assert is_finetunable("embedded") and is_finetunable("hf:/m@layer=3")
    assert not is_finetunable("tfidf") and not is_finetunable("minilm")
    with pytest.raises(ConfigError, match="probe-only"):
        model_dir("minilm")
    base = {"task": "synthetic:40", "weak": "tfidf", "mode": "finetune"}
    with pytest.raises(ConfigError, match="must be `embedded` or `hf:PATH`"):
        W2SConfig.model_validate({**base, "strong": "tfidf"}).check()
    with pytest.raises(ConfigError, match="probe mode only"):
        W2SConfig.model_validate(
            {**base, "strong": "embedded", "losses": ["bootstrap"], "intermediate": "minilm"}
        ).check()


def _xent(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)))


def test_training_lowers_the_loss_and_is_reproducible(tiny_model_dir: Path) -> None:
    task = load_task("synthetic:80@seed=2,hard=0")
    rows = task.train_idx[:32]
    texts, y = [task.texts[i] for i in rows], task.labels[rows]
    spec = f"hf:{tiny_model_dir}"
    one = finetune_classifier(spec, texts, one_hot(y), loss="xent", seed=0, config=FT)
    p1 = one.predict_proba(texts)
    # The head starts at zero, i.e. at p = 0.5 and a loss of log 2; training must move below.
    assert _xent(p1, y) < math.log(2) - 0.01
    lora = [n for n, p in one.module.named_parameters() if "lora_B" in n]
    assert lora and any(
        float(p.detach().abs().sum()) > 0 for n, p in one.module.named_parameters() if "lora_B" in n
    ), "LoRA B matrices start at zero and must have been trained"
    two = finetune_classifier(spec, texts, one_hot(y), loss="xent", seed=0, config=FT)
    assert np.allclose(p1, two.predict_proba(texts), atol=1e-6)
    logconf = finetune_classifier(spec, texts, one_hot(y), loss="logconf", seed=0, config=FT)
    assert logconf.predict_proba(texts).shape == (len(texts), 2)


def test_finetune_experiment_end_to_end_and_resumable(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = W2SConfig(
        task="synthetic:120@seed=3,hard=0",
        weak="tfidf@max_features=12",
        strong=f"hf:{tiny_model_dir}",
        seeds=[0],
        mode="finetune",
        finetune=FinetuneConfig(epochs=1, batch_size=16, max_length=24),
    )
    records = run_experiment(config, tmp_path, cache_dir=tmp_path / "cache")
    assert sorted(r["loss"] for r in records) == ["logconf", "xent"]
    for r in records:
        assert r["mode"] == "finetune" and r["finetune"]["max_length"] == 24
        assert 0.0 <= r["weak_acc"] <= 1.0 and 0.0 <= r["student_acc"] <= 1.0
        assert len(r["test_correct"]["student"]) == r["n_test"]
    files = sorted((tmp_path / "runs").glob("*.json"))
    assert len(files) == 2
    again = run_experiment(config, tmp_path, cache_dir=tmp_path / "cache")
    assert [json.dumps(r, sort_keys=True) for r in sorted(again, key=lambda r: r["loss"])] == [
        json.dumps(r, sort_keys=True) for r in sorted(records, key=lambda r: r["loss"])
    ]


@pytest.mark.slow
def test_finetune_the_embedded_model_from_the_cli(embedded_dir: Path, tmp_path: Path) -> None:
    """The real 135M model, LoRA-finetuned as ceiling and student on a small synthetic task."""
    r = run_cli(
        [
            "w2s",
            "run",
            "--task",
            "synthetic:320@seed=3,hard=0",
            "--weak",
            "tfidf@max_features=12",
            "--strong",
            "embedded",
            "--mode",
            "finetune",
            "--loss",
            "xent",
            "--seeds",
            "1",
            "--epochs",
            "2",
            "--strong-opt",
            "max_length=24",
            "--strong-opt",
            "lr=1e-3",
            "--out",
            str(tmp_path / "w2s"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-progress",
        ],
        timeout=900,
    )
    assert r.returncode == 0, r.stderr
    (run,) = [json.loads(p.read_text()) for p in (tmp_path / "w2s" / "runs").glob("*.json")]
    assert run["mode"] == "finetune" and run["strong"] == "embedded"
    # SmolLM2 fine-tuned on ground truth learns the task; the 12-word tf-idf supervisor cannot.
    assert run["ceiling_acc"] >= 0.75, run
    assert run["ceiling_acc"] > run["weak_acc"], run
