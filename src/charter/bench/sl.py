"""`charter bench sl`: tokens/s of the SL-CAI stage on the default engine against the same
stage on transformers fp32, and against `bench generate`'s batched figure, in one process."""

from __future__ import annotations

import statistics
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
from charter.data import load_prompts
from charter.generate import generate_answers
from charter.records import Sampling
from charter.runs import JsonlWriter


def bench_sl(
    backend_spec: str = "embedded",
    *,
    constitution: str = "udhr",
    prompts: str = "builtin:red-team",
    n: int = 16,
    rounds: int = 2,
    few_shot: int = 1,
    lang: str = "en",
    max_new_tokens: int = 64,
    batch_size: int = 16,
    temperature: float = 0.7,
    seed: int = 0,
    prefix_cache: bool = True,
    backend_options: dict[str, Any] | None = None,
    repeats: int = 1,
) -> dict[str, Any]:
    """Tokens/s of the SL-CAI stage on `backend_spec`'s default engine against two baselines
    measured in the same process:

    - `torch`: the same stage on transformers fp32 (the engine charter used before CTranslate2);
    - `generate`: `bench generate`'s batched figure (charter's generate stage on `n` short demo
      prompts, every row forced to `max_new_tokens`) on the default engine.

    All count generated tokens up to each row's end-of-text; the requests are the same for both
    engines (few-shot examples, the answer and the critique in context). With `repeats` > 1 the
    three are measured in turn that many times and the medians reported.
    """
    # long: one timed sequence (the stage and its torch baseline alternate per repeat); split, it
    # would hide what is timed
    from charter.backends import load_backend
    from charter.backends.engine import describe
    from charter.constitution.load import load_constitution
    from charter.sl.revise import SLConfig, critique_and_revise

    torch_twin(backend_spec)
    cfg = SLConfig(rounds=rounds, few_shot=few_shot, lang=lang, chunk_size=n)
    const = load_constitution(constitution).localized(lang)
    items = load_prompts(prompts, lang=lang, split="train")[:n]
    sampling = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    forced = sampling.model_copy(update={"min_new_tokens": max_new_tokens})
    memory: dict[str, float] = {}
    options = {
        **engine_under_test(backend_spec, backend_options),
        "batch_size": batch_size,
        "prefix_cache": prefix_cache,
    }
    with peak_rss(memory, "load"):
        backend = load_backend(backend_spec, **options)
        baseline = load_torch_baseline(backend_spec, batch_size, prefix_cache=prefix_cache)
    for b in (backend, baseline):
        warm_up(b, [p.chat() for p in items], batch_size, max_new_tokens)

    def stage(b: Any) -> tuple[int, float, int]:
        forget = getattr(b, "forget", None)
        if callable(forget):
            forget()
        calls = _CountingBackend(b)
        with tempfile.TemporaryDirectory() as tmp:
            writer = JsonlWriter(Path(tmp) / "samples.jsonl")
            stats = critique_and_revise(items, calls, const, cfg, sampling, writer, progress=False)
        return stats.completion_tokens, stats.seconds, calls.calls

    runs: list[dict[str, Any]] = []
    for _ in range(repeats):
        with peak_rss(memory, "stage"):
            tokens, seconds, calls = stage(backend)
        with peak_rss(memory, "torch_stage"):
            torch_tokens, torch_seconds, _ = stage(baseline)
        with tempfile.TemporaryDirectory() as tmp:
            writer = JsonlWriter(Path(tmp) / "generations.jsonl")
            t0 = time.perf_counter()
            summary = generate_answers(
                bench_prompts(n), backend, forced, writer, batch_size=batch_size, progress=False
            )
            gen_s = time.perf_counter() - t0
        runs.append(
            {
                "sl_tokens": tokens,
                "sl_seconds": round(seconds, 3),
                "sl_tokens_per_s": round(tokens / seconds, 2),
                "torch_sl_tokens": torch_tokens,
                "torch_sl_seconds": round(torch_seconds, 3),
                "torch_sl_tokens_per_s": round(torch_tokens / torch_seconds, 2),
                "generate_tokens": summary.completion_tokens,
                "generate_seconds": round(gen_s, 3),
                "generate_tokens_per_s": round(summary.completion_tokens / gen_s, 2),
            }
        )

    stage_tps = statistics.median(r["sl_tokens_per_s"] for r in runs)
    torch_tps = statistics.median(r["torch_sl_tokens_per_s"] for r in runs)
    gen_tps = statistics.median(r["generate_tokens_per_s"] for r in runs)
    engine = describe(backend)
    return {
        "backend": backend_spec,
        "engine": engine.get("engine"),
        "compute_type": engine.get("compute_type") or engine.get("dtype"),
        "engine_details": engine,
        "constitution": constitution,
        "n": n,
        "rounds": rounds,
        "few_shot": few_shot,
        "lang": lang,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "generate_calls": calls,
        "sl_tokens_per_s": stage_tps,
        "torch_sl_tokens_per_s": torch_tps,
        "generate_tokens_per_s": gen_tps,
        "ratio_sl_torch": round(stage_tps / torch_tps, 3),
        "ratio_sl_generate": round(stage_tps / gen_tps, 3),
        "prefix_cache": prefix_cache,
        "tokens": {
            "sl": runs[0]["sl_tokens"],
            "torch_sl": runs[0]["torch_sl_tokens"],
            "generate": runs[0]["generate_tokens"],
        },
        "seconds": {
            "sl": runs[0]["sl_seconds"],
            "torch_sl": runs[0]["torch_sl_seconds"],
            "generate": runs[0]["generate_seconds"],
        },
        "repeats": repeats,
        "runs": runs,
        "peak_rss_mb": memory,
        "machine": machine(baseline),
        "backend_options": backend_options or {},
    }


class _CountingBackend:
    """Wraps a backend and counts its `generate` calls (the stage's batched calls)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.spec: str = inner.spec
        self.calls = 0

    def generate(self, requests: Any, params: Sampling) -> Any:
        self.calls += 1
        return self.inner.generate(requests, params)

    def option_logprobs(self, requests: Any) -> Any:
        return self.inner.option_logprobs(requests)
