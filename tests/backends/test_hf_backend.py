"""The transformers backend, on a tiny random model (fast) and the embedded model (slow)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from charter.backends import load_backend
from charter.backends.hf import HFBackend
from charter.errors import BackendError
from charter.records import Message, OptionQuery, Sampling


def chats(*texts: str) -> list[list[Message]]:
    return [[Message(role="user", content=t)] for t in texts]


def reference_logprob(backend: HFBackend, context: list[int], continuation: list[int]) -> float:
    """Independent computation: one unpadded forward pass, summing the continuation's log-probs."""
    ids = torch.tensor([context + continuation])
    with torch.no_grad():
        logp = torch.log_softmax(backend.model(ids).logits[0].float(), dim=-1)
    return sum(float(logp[len(context) - 1 + j, t]) for j, t in enumerate(continuation))


def test_generate_batches_sorts_and_keeps_order(tiny_model_dir: Path) -> None:
    b = load_backend(f"hf:{tiny_model_dir}", engine="torch", batch_size=2)
    assert isinstance(b, HFBackend) and b.device == "cpu"
    prompts = chats("a", "a much longer prompt than the others", "mid length", "b")
    greedy = Sampling(max_new_tokens=5, temperature=0)
    batched = b.generate(prompts, greedy)
    # Greedy answers must not depend on batching or padding: compare with one-by-one.
    single = [b.generate([p], greedy)[0] for p in prompts]
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.prompt_tokens for c in batched] == [len(b.encode_chat(p)) for p in prompts]
    assert all(c.completion_tokens <= 5 for c in batched)


def test_seeded_sampling_is_reproducible(tiny_model_dir: Path) -> None:
    b = load_backend(f"hf:{tiny_model_dir}", engine="torch", batch_size=4)
    prompts = chats("x", "y", "z")
    s1 = b.generate(prompts, Sampling(max_new_tokens=8, temperature=1.0, seed=1))
    s1b = b.generate(prompts, Sampling(max_new_tokens=8, temperature=1.0, seed=1))
    s2 = b.generate(prompts, Sampling(max_new_tokens=8, temperature=1.0, seed=2))
    assert [c.text for c in s1] == [c.text for c in s1b]
    assert [c.text for c in s1] != [c.text for c in s2]


def test_min_new_tokens_forces_length(tiny_model_dir: Path) -> None:
    b = load_backend(f"hf:{tiny_model_dir}", engine="torch")
    out = b.generate(chats("q"), Sampling(max_new_tokens=6, min_new_tokens=6, temperature=0.7))
    assert out[0].completion_tokens == 6 and out[0].finish_reason == "length"


def test_option_logprobs_match_an_unpadded_forward_pass(tiny_model_dir: Path) -> None:
    b = load_backend(f"hf:{tiny_model_dir}", engine="torch", batch_size=3)
    assert isinstance(b, HFBackend)
    queries = [
        OptionQuery(prompt="Answer: ", options=["A", "B", "a longer option"]),
        OptionQuery(prompt=[Message(role="user", content="pick one")], options=["(A)", "(B)"]),
    ]
    got = b.option_logprobs(queries)
    # "Answer: " + "A" is scored as "Answer:" + " A" (the space moves to the option).
    ctx = b.encode("Answer:", rendered_chat=False)
    for option in queries[0].options:
        cont = b.tokenizer(" " + option, add_special_tokens=False)["input_ids"]
        assert got[0][option] == pytest.approx(reference_logprob(b, ctx, cont), abs=1e-4)
    chat_ctx = b.encode_chat([Message(role="user", content="pick one")])
    for option in queries[1].options:
        cont = b.tokenizer(option, add_special_tokens=False)["input_ids"]
        assert got[1][option] == pytest.approx(reference_logprob(b, chat_ctx, cont), abs=1e-4)
    for scores in got:
        assert all(math.isfinite(v) and v < 0 for v in scores.values())


def test_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="not found"):
        load_backend(f"hf:{tmp_path / 'nope'}")
    with pytest.raises(BackendError, match="could not load model"):
        load_backend("hf:some-org/not-a-cached-model")


@pytest.mark.slow
def test_hf_spec_on_the_real_embedded_model(embedded_dir: Path) -> None:
    b = load_backend(f"hf:{embedded_dir}", engine="torch", batch_size=4)
    out = b.generate(
        chats("What is the capital of France?"), Sampling(max_new_tokens=16, temperature=0)
    )
    assert "Paris" in out[0].text
    scores = b.option_logprobs(
        [OptionQuery(prompt="The capital of France is", options=[" Paris", " London", " banana"])]
    )[0]
    assert all(math.isfinite(v) for v in scores.values())
    assert scores[" Paris"] > scores[" London"] > scores[" banana"]
    # Mutually exclusive single-token continuations: their probabilities sum to at most one.
    assert sum(math.exp(v) for v in scores.values()) <= 1.0 + 1e-6


def test_a_bfloat16_model_runs_in_float32_on_a_cpu_without_native_bf16(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from charter.backends import hf

    monkeypatch.setattr(hf, "cpu_has_native_bf16", lambda: False)
    assert hf.run_dtype("bfloat16", "cpu") == "float32"
    assert hf.run_dtype("float16", "cpu") == "float16"
    monkeypatch.setattr(hf, "cpu_has_native_bf16", lambda: True)
    assert hf.run_dtype("bfloat16", "cpu") == "bfloat16"


def test_native_bf16_detection_agrees_with_the_cpu_flags() -> None:
    from charter.backends.hf import cpu_has_native_bf16

    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo to read the CPU's flags from (not Linux)")
    flags = next(
        (
            line.split(":", 1)[1].split()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith(("flags", "Features"))
        ),
        [],
    )
    if not any(f.startswith(("avx512", "amx")) for f in flags):
        # Without AVX-512 or AMX, oneDNN has no bf16 kernels: torch emulates them.
        assert cpu_has_native_bf16() is False
    else:
        assert isinstance(cpu_has_native_bf16(), bool)
