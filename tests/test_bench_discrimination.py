"""The discrimination bench: probe and first-token AUCs, on synthetic features and a real model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from charter.bench.discrimination import main, probe_auc, render_discrimination
from charter.data import load_prompts


def test_the_probe_reads_a_direction_that_separates_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    y_train, y_eval = rng.integers(0, 2, 200), rng.integers(0, 2, 100)
    x_train, x_eval = rng.normal(size=(200, 16)), rng.normal(size=(100, 16))
    shift = np.zeros(16)
    shift[3] = 4.0
    separable = probe_auc(
        x_train + np.outer(y_train, shift), y_train, x_eval + np.outer(y_eval, shift), y_eval
    )
    assert separable > 0.97
    noise = probe_auc(x_train, y_train, x_eval, y_eval)
    assert 0.25 < noise < 0.75


def test_a_real_model_is_measured_on_the_eval_split(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "discrimination.json"
    main(["--model", f"hf:{tiny_model_dir}", "--lang", "en", "--out", str(out)])
    record = json.loads(out.read_text("utf-8"))
    assert record["kind"] == "discrimination" and len(record["rows"]) == 1
    row = record["rows"][0]
    harmful = len(load_prompts("red-team", lang="en", split="eval"))
    benign = sum(len(load_prompts(s, lang="en", split="eval")) for s in ("borderline", "helpful"))
    assert (row["n_harmful"], row["n_benign"]) == (harmful, benign)
    for key in ("probe_auc_mid", "probe_auc_last", "first_token_auc"):
        assert 0.0 <= row[key] <= 1.0
    assert 0.0 < row["mean_p_refusal_harmful"] < 1.0
    assert any(f"hf:{tiny_model_dir}" in line for line in render_discrimination(record))
