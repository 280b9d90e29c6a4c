"""`charter bench generate`: tokens/s of four ways of producing the same number of tokens
from the same weights, all in one process.

(a) charter's `generate` stage on the model's default engine (CTranslate2 int8 on a CPU;
sorting, batching, writing JSONL), (b) the raw transformers fp32 `model.generate` call at the same
batch size and lengths, (b2) the same in bf16, and (c) a naive fp32 loop calling `model.generate`
for one prompt at a time. Every sequence is forced to exactly `max_new_tokens` new tokens
(`min_new_tokens == max_new_tokens`), so all count the same work. Each part reports its peak
resident memory.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from charter.bench.baseline import (
    bench_prompts,
    engine_under_test,
    load_torch_baseline,
    torch_twin,
    warm_up,
)
from charter.bench.machine import machine, peak_rss
from charter.generate import generate_answers
from charter.records import Sampling
from charter.runs import JsonlWriter


def bench_generate(
    backend_spec: str = "embedded",
    *,
    n: int = 32,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    temperature: float = 0.7,
    seed: int = 0,
    backend_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Tokens/s of (a) charter's generate stage on `backend_spec` with its default engine,
    (b) raw transformers fp32 `model.generate` at the same batch size and lengths, (b2) the
    same in bf16, and (c) a naive one-prompt-at-a-time fp32 loop; all in this process."""
    # long: one timed sequence (charter's stage, raw fp32 and bf16 generate, the naive loop) in one
    # process
    import torch

    from charter.backends import load_backend
    from charter.backends.engine import describe

    torch_twin(backend_spec)  # a local model, or a clear error before anything loads
    prompts = bench_prompts(n)
    chats = [p.chat() for p in prompts]
    sampling = Sampling(
        max_new_tokens=max_new_tokens,
        min_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
    )
    memory: dict[str, float] = {}

    # (a) charter's generate stage, records written to a scratch folder as in a real run.
    with peak_rss(memory, "charter"):
        backend = load_backend(
            backend_spec,
            **{**engine_under_test(backend_spec, backend_options), "batch_size": batch_size},
        )
        warm_up(backend, chats, batch_size, max_new_tokens)
        with tempfile.TemporaryDirectory() as tmp:
            writer = JsonlWriter(Path(tmp) / "generations.jsonl")
            t0 = time.perf_counter()
            summary = generate_answers(
                prompts, backend, sampling, writer, batch_size=batch_size, progress=False
            )
            charter_s = time.perf_counter() - t0
    charter_tokens = summary.completion_tokens
    engine = describe(backend)
    del backend

    # (b) raw model.generate over the same batches, in the given order, tokenizer-padded.
    with peak_rss(memory, "raw"):
        baseline = load_torch_baseline(backend_spec, batch_size)
        kwargs = baseline.generation_kwargs(sampling)
        texts = [baseline.render(c) for c in chats]
        _raw_batched_generate(baseline, texts[:batch_size], batch_size, kwargs)  # warm-up
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        raw_tokens = _raw_batched_generate(baseline, texts, batch_size, kwargs)
        raw_s = time.perf_counter() - t0

    # (c) the naive loop: one prompt per model.generate call.
    model, tok = baseline.model, baseline.tokenizer
    naive_tokens = 0
    t0 = time.perf_counter()
    for text in texts:
        enc = tok([text], return_tensors="pt", add_special_tokens=False).to(baseline.device)
        with torch.inference_mode():
            out = model.generate(**enc, **kwargs)
        naive_tokens += _new_tokens(out[:, enc["input_ids"].shape[1] :].tolist(), baseline.eos_ids)
    naive_s = time.perf_counter() - t0

    # (b2) raw model.generate in bf16 (fast on CPUs with bf16 matrix instructions).
    with peak_rss(memory, "raw_bf16"):
        model.to(torch.bfloat16)
        _raw_batched_generate(baseline, texts[:batch_size], batch_size, kwargs)  # warm-up
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        bf16_tokens = _raw_batched_generate(baseline, texts, batch_size, kwargs)
        bf16_s = time.perf_counter() - t0
    machine_info = machine(baseline)
    machine_info["dtype"] = "float32"  # of the fp32 baseline; the bf16 one is named by its key

    a, b, c = charter_tokens / charter_s, raw_tokens / raw_s, naive_tokens / naive_s
    b2 = bf16_tokens / bf16_s
    return {
        "backend": backend_spec,
        "engine": engine.get("engine"),
        "compute_type": engine.get("compute_type") or engine.get("dtype"),
        "engine_details": engine,
        "n": n,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "charter_tokens_per_s": round(a, 2),
        "raw_tokens_per_s": round(b, 2),
        "raw_bf16_tokens_per_s": round(b2, 2),
        "naive_tokens_per_s": round(c, 2),
        "ratio_charter_raw": round(a / b, 3),
        "ratio_charter_raw_bf16": round(a / b2, 3),
        "ratio_charter_naive": round(a / c, 3),
        "tokens": {
            "charter": charter_tokens,
            "raw": raw_tokens,
            "raw_bf16": bf16_tokens,
            "naive": naive_tokens,
        },
        "seconds": {
            "charter": round(charter_s, 3),
            "raw": round(raw_s, 3),
            "raw_bf16": round(bf16_s, 3),
            "naive": round(naive_s, 3),
        },
        "peak_rss_mb": memory,
        "machine": machine_info,
        "backend_options": backend_options or {},
    }


def _raw_batched_generate(
    backend: Any, texts: list[str], batch_size: int, kwargs: dict[str, Any]
) -> int:
    """The baseline: plain `model.generate` over `texts` in order, tokenizer-padded on the left,
    `batch_size` at a time; returns the generated tokens, counted as charter counts them."""
    import torch

    tok = backend.tokenizer
    tok.padding_side = "left"
    tokens = 0
    for start in range(0, len(texts), batch_size):
        enc = tok(
            texts[start : start + batch_size],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        ).to(backend.device)
        with torch.inference_mode():
            out = backend.model.generate(**enc, **kwargs)
        tokens += _new_tokens(out[:, enc["input_ids"].shape[1] :].tolist(), backend.eos_ids)
    return tokens


def _new_tokens(rows: list[list[int]], eos_ids: list[int]) -> int:
    """Generated tokens per row up to and including the first end-of-text (as charter counts)."""
    eos = set(eos_ids)
    total = 0
    for row in rows:
        cut = next((j for j, t in enumerate(row) if t in eos), None)
        total += len(row) if cut is None else cut + 1
    return total
