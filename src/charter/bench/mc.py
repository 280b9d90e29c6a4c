"""`charter bench mc`: `charter evaluate mc` on the default engine and on transformers fp32 in
one process, with the seconds and the accuracy of each."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from charter.bench.baseline import engine_under_test, load_torch_baseline, torch_twin
from charter.bench.machine import machine, peak_rss
from charter.errors import CharterError


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
        "machine": machine(None),
        "backend_options": backend_options or {},
    }
