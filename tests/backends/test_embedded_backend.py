"""The embedded model: conversion from the wheel's GGUF, the lock, and real generation."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from charter.backends import load_backend
from charter.backends.gguf_convert import CONVERTED_MARK, embedded_gguf
from charter.records import Message, OptionQuery, Sampling

pytestmark = pytest.mark.slow


def test_gguf_ships_in_the_wheel() -> None:
    path = embedded_gguf()
    assert path.name.endswith(".gguf") and path.stat().st_size > 50_000_000


def test_two_processes_convert_once(tmp_path: Path) -> None:
    """Both processes get a usable copy; the lock makes exactly one of them convert."""
    code = (
        "from charter.backends.gguf_convert import ensure_embedded_model; "
        "print(ensure_embedded_model())"
    )
    env = {**os.environ, "CHARTER_HOME": str(tmp_path)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1]
    target = Path(outs[0])
    mark = json.loads((target / CONVERTED_MARK).read_text())
    assert mark["pid"] in {p.pid for p in procs}
    assert (target / "model.safetensors").exists() and (target / "tokenizer.json").exists()
    leftovers = [p.name for p in target.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no half-written temp copies


def test_converted_model_is_trainable_and_saveable(embedded_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(embedded_dir)
    assert getattr(model, "hf_quantizer", None) is None
    assert not hasattr(model.config, "quantization_config")
    model.save_pretrained(tmp_path / "copy")  # a quantized GGUF model would refuse this
    assert (tmp_path / "copy" / "model.safetensors").exists()


def test_embedded_generates_and_scores() -> None:
    b = load_backend("embedded", batch_size=4)
    assert b.spec == "embedded"
    chats = [
        [Message(role="user", content="What is the capital of France?")],
        [Message(role="user", content="ما هي عاصمة فرنسا؟")],
    ]
    out = b.generate(chats, Sampling(max_new_tokens=24, temperature=0))
    assert "Paris" in out[0].text
    assert all(c.text.strip() and c.completion_tokens > 0 for c in out)
    q = OptionQuery(
        prompt=[Message(role="user", content="Is fire hot? Answer (A) yes or (B) no.")],
        options=["(A)", "(B)"],
    )
    scores = b.option_logprobs([q])[0]
    assert all(math.isfinite(v) for v in scores.values())
    assert sum(math.exp(v) for v in scores.values()) <= 1.0 + 1e-6
    assert scores["(A)"] > scores["(B)"]
