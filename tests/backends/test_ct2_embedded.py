"""CTranslate2 against torch on the embedded SmolLM2-135M (issue #17, parity): greedy text in
float32, option log-probs in float32 and int8 on the labeller's own prompts, and a second
process that finds the conversion instead of redoing it."""

from __future__ import annotations

import math
import os
import shutil
import statistics
from pathlib import Path

import pytest

from charter.backends import load_backend
from charter.records import Message, OptionQuery, Sampling
from conftest import run_cli

pytestmark = pytest.mark.slow

PROMPTS = [
    "What is the capital of France?",
    "Give me three tips for sleeping better.",
    "How do I pick a lock?",
    "Explain photosynthesis to a child.",
    "Write a haiku about rain.",
    "What should I do if I feel unsafe at home?",
    "Translate 'good morning' into Spanish.",
    "Is it ever right to lie?",
]


def labeller_queries() -> list[OptionQuery]:
    """The labeller's own prompts: every question `label_pairs` asks about six answer pairs
    (3 principles x both orders, one few-shot example), recorded by the fake backend."""
    from charter.backends.fake import FakeBackend
    from charter.constitution.load import load_constitution
    from charter.feedback.labeler import LabelConfig, Labeler, PairRecord, label_pairs

    const = load_constitution("udhr").localized("en")
    pairs = [
        PairRecord(
            id=f"pair-{i}",
            prompt_id=f"p{i}",
            prompt=[Message(role="user", content=p)],
            responses=("I can't help with that.", f"Sure. Here is a careful answer: {p}"),
            source="policy",
            policy="test",
        )
        for i, p in enumerate(PROMPTS[:6])
    ]
    recorder = FakeBackend(spec="fake")
    cfg = LabelConfig(principles_per_pair=3, few_shot=1, seed=0, format="raw")  # the letters
    labeler = Labeler(backend="fake", model_sha256="-", cot=False, clamp=None, few_shot=0)
    label_pairs(pairs, recorder, const, cfg, labeler)
    return [
        q
        for c in recorder.calls
        if c.method == "option_logprobs"
        for q in c.requests
        if isinstance(q, OptionQuery)
    ]


def test_float32_greedy_text_equals_torch_fp32(embedded_dir: Path) -> None:
    chats = [[Message(role="user", content=p)] for p in PROMPTS]
    greedy = Sampling(max_new_tokens=48, temperature=0.0)
    ct2 = load_backend(f"ct2:{embedded_dir}", compute_type="float32")
    torch = load_backend(f"hf:{embedded_dir}", engine="torch")
    a, b = ct2.generate(chats, greedy), torch.generate(chats, greedy)
    for x, y in zip(a, b, strict=True):
        assert x.text == y.text
        assert (x.prompt_tokens, x.completion_tokens, x.finish_reason) == (
            y.prompt_tokens,
            y.completion_tokens,
            y.finish_reason,
        )


def test_option_logprobs_float32_and_int8_against_torch_fp32(embedded_dir: Path) -> None:
    queries = labeller_queries()
    assert len(queries) >= 30
    reference = load_backend(f"hf:{embedded_dir}", engine="torch").option_logprobs(queries)
    f32 = load_backend(f"ct2:{embedded_dir}", compute_type="float32").option_logprobs(queries)
    i8 = load_backend(f"ct2:{embedded_dir}", compute_type="int8").option_logprobs(queries)
    d32 = [abs(x[o] - r[o]) for x, r in zip(f32, reference, strict=True) for o in r]
    d8 = [abs(x[o] - r[o]) for x, r in zip(i8, reference, strict=True) for o in r]
    assert max(d32) <= 1e-3
    # Issue #17 asks for int8 within 0.15 nats of fp32; NOT met: measured on these 36 queries
    # (72 option log-probs), mean 0.15 and max 0.55 nats (every linear layer is int8, the output
    # projection included). These bounds catch a broken int8 path, not that goal.
    print(f"int8 |diff| nats: mean {statistics.fmean(d8):.3f}, max {max(d8):.3f}")
    # On a CPU without AVX-512 the int8 kernels drift much further: measured on an AVX2-only
    # EPYC (2026-12-08), mean 0.90 and max 1.93 nats; still far from a broken path's.
    import torch

    # The SIMD level bench records name (`machine.cpu_capability`).
    avx512 = torch.backends.cpu.get_cpu_capability().startswith("AVX512")
    mean_bound, max_bound = (0.3, 1.0) if avx512 else (1.2, 2.5)
    assert statistics.fmean(d8) <= mean_bound and max(d8) <= max_bound

    # What a label is made of, P(A) normalised over the two options, moves less.
    def p_a(x: dict[str, float]) -> float:
        return 1 / (1 + math.exp(x["B"] - x["A"]))

    dp = [abs(p_a(x) - p_a(r)) for x, r in zip(i8, reference, strict=True)]
    print(f"int8 |diff| P(A): mean {statistics.fmean(dp):.3f}, max {max(dp):.3f}")
    assert max(dp) <= (0.25 if avx512 else 0.6)  # AVX2-only EPYC: max 0.44


def test_a_second_process_finds_the_conversion(embedded_dir: Path, tmp_path: Path) -> None:
    """A model is converted once: a second command with the same model converts nothing."""
    model = tmp_path / "model"
    shutil.copytree(embedded_dir, model)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "a", "prompt": "Hello?"}\n')
    env = {"CHARTER_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    args = ["generate", "--model", f"ct2:{model}", "--prompts", str(prompts),
            "--max-new-tokens", "4", "--no-progress"]  # fmt: skip
    first = run_cli([*args, "--out", str(tmp_path / "one")], env=env)
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("converting") == 1
    second = run_cli([*args, "--out", str(tmp_path / "two")], env=env)
    assert second.returncode == 0, second.stderr
    assert "converting" not in second.stderr
    assert len(os.listdir(tmp_path / "home" / "ct2")) >= 1
    import json

    stage = json.loads((tmp_path / "two" / "manifest.json").read_text())["stages"]["generate"]
    (engine,) = stage["engines"]
    assert engine["engine"] == "ct2" and engine["compute_type"] == "int8"
