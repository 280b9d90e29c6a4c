"""Speed benchmarks, always against baselines measured in the same process and run.

`bench_generate` times four ways of producing the same number of tokens from the same weights:
(a) charter's `generate` stage on the model's default engine (CTranslate2 int8 on a CPU;
sorting, batching, writing JSONL), (b) the raw transformers fp32 `model.generate` call at the same
batch size and lengths, (b2) the same in bf16, and (c) a naive fp32 loop calling `model.generate`
for one prompt at a time. Every sequence is forced to exactly `max_new_tokens` new tokens
(`min_new_tokens == max_new_tokens`), so all count the same work. `bench_sl` and `bench_mc` (and
`charter.feedback.bench`) time a whole stage on the default engine against the same stage on
transformers fp32. Each part reports its peak resident memory.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
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


def warm_up(backend: Any, chats: list[Any], batch_size: int, max_new_tokens: int) -> None:
    """One untimed full batch at full length: on a GPU the first calls pay for loading kernels
    and choosing matrix-product algorithms for each new shape, which a real run amortizes."""
    if chats:
        batch = [chats[i % len(chats)] for i in range(batch_size)]
        forced = Sampling(max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens)
        backend.generate(batch, forced)
        forget = getattr(backend, "forget", None)
        if callable(forget):
            forget()


def torch_twin(backend_spec: str) -> str:
    """The spec of the same weights on the torch engine: the baseline of every engine bench.

    >>> torch_twin("ct2:embedded"), torch_twin("ct2:/m"), torch_twin("hf:/m")
    ('embedded', 'hf:/m', 'hf:/m')
    """
    from charter.backends import check_spec

    name, arg = check_spec(backend_spec)
    if name == "ct2":
        return "embedded" if arg == "embedded" else f"hf:{arg}"
    if name not in ("embedded", "hf"):
        raise CharterError(
            f"this benchmark needs a local model (embedded, hf:PATH or ct2:PATH), not "
            f"{backend_spec!r}: its baseline is transformers on the same weights"
        )
    return backend_spec


def engine_under_test(backend_spec: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """The options the benchmarks measure charter with: CTranslate2 for the embedded model and
    local `hf:` folders unless the user names an engine (it is not the default engine yet, see
    `charter.backends.engine`; the benchmarks measure it against torch fp32)."""
    options = dict(options or {})
    local = backend_spec == "embedded" or (
        backend_spec.startswith("hf:") and Path(backend_spec[3:]).expanduser().is_dir()
    )
    if local and "engine" not in options:
        options["engine"] = "ct2"
    return options


def load_torch_baseline(backend_spec: str, batch_size: int, **options: Any) -> HFBackend:
    """The transformers fp32 backend on the same weights as `backend_spec`."""
    from charter.backends import load_backend
    from charter.backends.hf import HFBackend

    backend = load_backend(
        torch_twin(backend_spec),
        engine="torch",
        dtype="float32",
        batch_size=batch_size,
        **options,
    )
    assert isinstance(backend, HFBackend)
    return backend


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
    machine = _machine(baseline)
    machine["dtype"] = "float32"  # of the fp32 baseline; the bf16 one is named by its key

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
        "machine": machine,
        "backend_options": backend_options or {},
    }


@contextmanager
def peak_rss(into: dict[str, float], name: str) -> Iterator[None]:
    """Record the process's peak resident memory (MB) while the block runs as `into[name]`.

    On Linux the peak is reset first (`/proc/self/clear_refs`), so each part of a benchmark
    gets its own figure; elsewhere it is the process's peak so far.
    """
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    try:
        yield
    finally:
        into[name] = round(_peak_rss_mb(), 1)


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _machine(backend: Any) -> dict[str, Any]:
    """Where and when a benchmark ran: platform, cores, torch threads, device, the model's dtype
    and the date (UTC)."""
    import torch

    from charter.backends.threads import physical_cores

    model = getattr(backend, "model", None)
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "physical_cores": physical_cores(),
        "torch_threads": torch.get_num_threads(),
        "device": getattr(backend, "device", None),
        "dtype": str(model.dtype).removeprefix("torch.") if model is not None else None,
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
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
    from charter.backends import load_backend
    from charter.backends.engine import describe
    from charter.constitution.load import load_constitution
    from charter.sl.stage import SLConfig, critique_and_revise

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
        "machine": _machine(baseline),
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


def bench_mc(
    data: str | Path,
    backend_spec: str = "embedded",
    *,
    swap: bool = True,
    limit: int | None = None,
    batch_size: int = 16,
    backend_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`charter evaluate mc` on `data` with the default engine and with transformers fp32, in
    this process: seconds and accuracy of each, and their largest difference in P(correct)."""
    from charter.backends import load_backend
    from charter.backends.engine import describe
    from charter.feedback.mc_eval import evaluate_mc, read_mc

    torch_twin(backend_spec)
    loaded = read_mc(data)[:limit]
    if not loaded:
        raise CharterError(f"{data}: no multiple-choice items")
    memory: dict[str, float] = {}
    results: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    for name in ("charter", "torch"):
        with peak_rss(memory, name):
            if name == "charter":
                backend: Any = load_backend(
                    backend_spec,
                    **{
                        **engine_under_test(backend_spec, backend_options),
                        "batch_size": batch_size,
                    },
                )
                engine = describe(backend)
            else:
                backend = load_torch_baseline(backend_spec, batch_size)
            evaluate_mc(loaded[:1], backend)  # warm-up: first-call allocations
            t0 = time.perf_counter()
            results[name] = evaluate_mc(loaded, backend, swap=swap)
            seconds[name] = time.perf_counter() - t0
        del backend
    charter, torch_r = results["charter"], results["torch"]
    return {
        "data": str(data),
        "backend": backend_spec,
        "engine": engine.get("engine"),
        "compute_type": engine.get("compute_type") or engine.get("dtype"),
        "engine_details": engine,
        "n": charter["n"],
        "swap": swap,
        "charter_seconds": round(seconds["charter"], 3),
        "torch_seconds": round(seconds["torch"], 3),
        "ratio_torch_charter": round(seconds["torch"] / seconds["charter"], 3),
        "charter_accuracy": charter["accuracy"],
        "torch_accuracy": torch_r["accuracy"],
        "charter_result": charter,
        "torch_result": torch_r,
        "peak_rss_mb": memory,
        "machine": _machine(None),
        "backend_options": backend_options or {},
    }
