"""Speed benchmarks, always against baselines measured in the same process and run.

`bench_generate` times three ways of producing the same number of tokens from one loaded model:
(a) charter's `generate` stage (sorting, batching, writing JSONL), (b) the raw `model.generate`
call at the same batch size and lengths, and (c) a naive loop calling `model.generate` for one
prompt at a time. Every sequence is forced to exactly `max_new_tokens` new tokens
(`min_new_tokens == max_new_tokens`), so the three count the same work.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charter.data import load_prompts
from charter.errors import CharterError
from charter.generate import generate_answers
from charter.records import PromptRecord, Sampling
from charter.runs import JsonlWriter

if TYPE_CHECKING:
    from charter.backends.hf import HFBackend


def bench_prompts(n: int) -> list[PromptRecord]:
    """`n` prompts cycled from the builtin demo set, each with its own id."""
    base = load_prompts("demo")
    return [base[i % len(base)].model_copy(update={"id": f"bench-{i}"}) for i in range(n)]


def warm_up(backend: HFBackend, chats: list[Any], batch_size: int, max_new_tokens: int) -> None:
    """One untimed full batch at full length: on a GPU the first calls pay for loading kernels
    and choosing matrix-product algorithms for each new shape, which a real run amortizes."""
    if chats:
        batch = [chats[i % len(chats)] for i in range(batch_size)]
        forced = Sampling(max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens)
        backend.generate(batch, forced)
        backend.forget()


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
    import torch

    from charter.backends import check_spec, load_backend
    from charter.backends.hf import HFBackend

    if check_spec(backend_spec)[0] not in ("embedded", "hf"):
        raise CharterError("bench generate needs a transformers backend (embedded or hf:PATH)")
    backend = load_backend(backend_spec, **{**(backend_options or {}), "batch_size": batch_size})
    if not isinstance(backend, HFBackend):
        raise CharterError("bench generate needs a transformers backend (embedded or hf:PATH)")
    prompts = bench_prompts(n)
    chats = [p.chat() for p in prompts]
    sampling = Sampling(
        max_new_tokens=max_new_tokens,
        min_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
    )
    kwargs = backend.generation_kwargs(sampling)
    model, tok = backend.model, backend.tokenizer
    warm_up(backend, chats, batch_size, max_new_tokens)

    # (a) charter's generate stage, records written to a scratch folder as in a real run.
    with tempfile.TemporaryDirectory() as tmp:
        writer = JsonlWriter(Path(tmp) / "generations.jsonl")
        t0 = time.perf_counter()
        summary = generate_answers(
            prompts, backend, sampling, writer, batch_size=batch_size, progress=False
        )
        charter_s = time.perf_counter() - t0
    charter_tokens = summary.completion_tokens

    # (b) raw model.generate over the same batches, in the given order, tokenizer-padded.
    texts = [backend.render(c) for c in chats]
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    raw_tokens = _raw_batched_generate(backend, texts, batch_size, kwargs)
    raw_s = time.perf_counter() - t0

    # (c) the naive loop: one prompt per model.generate call.
    naive_tokens = 0
    t0 = time.perf_counter()
    for text in texts:
        enc = tok([text], return_tensors="pt", add_special_tokens=False).to(backend.device)
        with torch.inference_mode():
            out = model.generate(**enc, **kwargs)
        naive_tokens += _new_tokens(out[:, enc["input_ids"].shape[1] :].tolist(), backend.eos_ids)
    naive_s = time.perf_counter() - t0

    a, b, c = charter_tokens / charter_s, raw_tokens / raw_s, naive_tokens / naive_s
    return {
        "backend": backend.spec,
        "n": n,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "charter_tokens_per_s": round(a, 2),
        "raw_tokens_per_s": round(b, 2),
        "naive_tokens_per_s": round(c, 2),
        "ratio_charter_raw": round(a / b, 3),
        "ratio_charter_naive": round(a / c, 3),
        "tokens": {"charter": charter_tokens, "raw": raw_tokens, "naive": naive_tokens},
        "seconds": {
            "charter": round(charter_s, 3),
            "raw": round(raw_s, 3),
            "naive": round(naive_s, 3),
        },
        "machine": _machine(backend),
        "backend_options": backend_options or {},
    }


def _machine(backend: HFBackend) -> dict[str, Any]:
    """Where a benchmark ran: platform, cores, torch threads, device and the model's dtype."""
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": backend.device,
        "dtype": str(backend.model.dtype).removeprefix("torch."),
        "torch": torch.__version__,
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


class _RecordingBackend:
    """Wraps a backend and keeps every `generate` request, to replay them as a baseline."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.spec: str = inner.spec
        self.calls: list[tuple[list[list[Any]], Sampling]] = []

    def generate(self, requests: Any, params: Sampling) -> Any:
        self.calls.append(([list(r) for r in requests], params))
        return self.inner.generate(requests, params)

    def option_logprobs(self, requests: Any) -> Any:
        return self.inner.option_logprobs(requests)


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
    """Tokens/s of the SL-CAI stage against two baselines, one model load, one process:

    - `raw`: every batch of chats the stage sent, replayed as plain `model.generate` calls
      (tokenizer-padded, no prefix cache) at the same batch size and sampling;
    - `generate`: `bench generate`'s batched figure (charter's generate stage on `n` short demo
      prompts, every row forced to `max_new_tokens`) at the same batch size and length.

    All count generated tokens up to each row's end-of-text. The SL requests are long (few-shot
    examples, the answer and the critique in context); the backend computes each shared prefix
    once (`prefix_cache`), which the raw replay does not. With `repeats` > 1 the stage and the
    `generate` figure are measured alternately that many times and the medians reported (a GPU
    with a small model is latency-bound and varies between identical runs); the raw replay
    runs once.
    """
    import torch

    from charter.backends import check_spec, load_backend
    from charter.backends.hf import HFBackend
    from charter.constitution.load import load_constitution
    from charter.sl.stage import SLConfig, critique_and_revise

    if check_spec(backend_spec)[0] not in ("embedded", "hf"):
        raise CharterError("bench sl needs a transformers backend (embedded or hf:PATH)")
    options = {**(backend_options or {}), "batch_size": batch_size, "prefix_cache": prefix_cache}
    backend = load_backend(backend_spec, **options)
    assert isinstance(backend, HFBackend)
    cfg = SLConfig(rounds=rounds, few_shot=few_shot, lang=lang, chunk_size=n)
    const = load_constitution(constitution).localized(lang)
    items = load_prompts(prompts, lang=lang, split="train")[:n]
    sampling = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    forced = sampling.model_copy(update={"min_new_tokens": max_new_tokens})
    warm_up(backend, [p.chat() for p in items], batch_size, max_new_tokens)
    runs: list[dict[str, Any]] = []
    stage_rates: list[float] = []
    generate_rates: list[float] = []
    recorder = _RecordingBackend(backend)
    for _ in range(repeats):
        backend.forget()
        recorder.calls.clear()
        with tempfile.TemporaryDirectory() as tmp:
            writer = JsonlWriter(Path(tmp) / "samples.jsonl")
            stats = critique_and_revise(
                items, recorder, const, cfg, sampling, writer, progress=False
            )
        # `bench generate`'s batched figure at the same settings: charter's generate stage.
        backend.forget()
        with tempfile.TemporaryDirectory() as tmp:
            writer = JsonlWriter(Path(tmp) / "generations.jsonl")
            t0 = time.perf_counter()
            summary = generate_answers(
                bench_prompts(n), backend, forced, writer, batch_size=batch_size, progress=False
            )
            gen_s = time.perf_counter() - t0
        stage_rates.append(stats.completion_tokens / stats.seconds)
        generate_rates.append(summary.completion_tokens / gen_s)
        runs.append(
            {
                "sl_tokens": stats.completion_tokens,
                "sl_seconds": round(stats.seconds, 3),
                "sl_tokens_per_s": round(stage_rates[-1], 2),
                "generate_tokens": summary.completion_tokens,
                "generate_seconds": round(gen_s, 3),
                "generate_tokens_per_s": round(generate_rates[-1], 2),
            }
        )

    kwargs = backend.generation_kwargs(sampling)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    raw_tokens = sum(
        _raw_batched_generate(backend, [backend.render(c) for c in chats], batch_size, kwargs)
        for chats, _ in recorder.calls
    )
    raw_s = time.perf_counter() - t0

    stage_tps = statistics.median(stage_rates)
    gen_tps = statistics.median(generate_rates)
    raw_tps = raw_tokens / raw_s
    prompt_tokens = [len(backend.encode_chat(c)) for chats, _ in recorder.calls for c in chats]
    return {
        "backend": backend.spec,
        "constitution": constitution,
        "n": n,
        "rounds": rounds,
        "few_shot": few_shot,
        "lang": lang,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "generate_calls": len(recorder.calls),
        "mean_prompt_tokens": round(sum(prompt_tokens) / len(prompt_tokens), 1),
        "sl_tokens_per_s": round(stage_tps, 2),
        "raw_tokens_per_s": round(raw_tps, 2),
        "generate_tokens_per_s": round(gen_tps, 2),
        "ratio_sl_raw": round(stage_tps / raw_tps, 3),
        "ratio_sl_generate": round(stage_tps / gen_tps, 3),
        "prefix_cache": prefix_cache,
        "tokens": {
            "sl": runs[0]["sl_tokens"],
            "raw": raw_tokens,
            "generate": runs[0]["generate_tokens"],
        },
        "seconds": {
            "sl": runs[0]["sl_seconds"],
            "raw": round(raw_s, 3),
            "generate": runs[0]["generate_seconds"],
        },
        "repeats": repeats,
        "runs": runs,
        "machine": _machine(backend),
        "backend_options": backend_options or {},
        "static_cache": backend.static_cache,
    }
