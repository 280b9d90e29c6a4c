"""`charter bench label`: the labeller's scoring speed on the default engine against torch fp32.

Pairs are sampled first (not timed). Then the stage's path, `label_pairs`, sends every
(pair × principle × order) question of the pairs to `option_logprobs` in one call, which batches
them and computes shared prefixes once: (a) on CTranslate2 (the engine the benchmarks measure;
int8 on a CPU), (b) on transformers fp32, the engine charter used before, in the same process.
Both answer the same queries; the largest difference between their probabilities of (A) is
reported beside the speeds (int8 is not exact: it shows what the speed costs in precision).
"""

from __future__ import annotations

from typing import Any

from charter.bench.baseline import engine_under_test, load_torch_baseline, torch_twin
from charter.bench.machine import machine, peak_rss
from charter.errors import CharterError
from charter.feedback.labeler import LabelConfig, Labeler, LabelTimings, PairRecord, label_pairs
from charter.feedback.pairs import pair_id
from charter.records import Sampling


def bench_label(
    feedback: str = "embedded",
    *,
    policy: str | None = None,
    constitution: str = "udhr",
    prompts: str = "builtin:red-team",
    n: int = 16,
    principles_per_pair: int = 2,
    few_shot: int = 2,
    max_new_tokens: int = 48,
    batch_size: int = 16,
    seed: int = 0,
) -> dict[str, Any]:
    # long: one timed sequence (charter's stage and the torch baseline on the same pairs) in one
    # process
    from charter.backends import check_spec, load_backend
    from charter.constitution.load import load_constitution
    from charter.data import load_prompts

    check_spec(feedback)
    torch_twin(feedback)
    memory: dict[str, float] = {}
    with peak_rss(memory, "load"):
        backend = load_backend(
            feedback, defaults={"batch_size": batch_size}, **engine_under_test(feedback, None)
        )
        baseline = load_torch_baseline(feedback, batch_size)
    policy_backend = backend if policy in (None, feedback) else load_backend(policy)
    const = load_constitution(constitution).localized("en")
    items = load_prompts(prompts, split="train")[:n]
    if not items:
        raise CharterError(f"no prompts in {prompts}")
    sampling = Sampling(max_new_tokens=max_new_tokens, temperature=0.7, seed=seed)
    chats = [p.chat() for p in items]
    ones = policy_backend.generate(chats, sampling)
    twos = policy_backend.generate(chats, sampling.model_copy(update={"seed": seed + 1}))
    pairs = [
        PairRecord(
            id=pair_id(p, policy_backend.spec, sampling),
            prompt_id=p.key(),
            prompt=c,
            responses=(a.text.strip(), b.text.strip()),
            source="policy",
            policy=policy_backend.spec,
        )
        for p, c, a, b in zip(items, chats, ones, twos, strict=True)
    ]
    cfg = LabelConfig(principles_per_pair=principles_per_pair, few_shot=few_shot, seed=seed)
    labeler = Labeler(backend=backend.spec, model_sha256="-", cot=False, clamp=None, few_shot=0)
    timings: dict[str, LabelTimings] = {}
    records: dict[str, list[Any]] = {}
    for name, b in (("stage", backend), ("torch", baseline)):
        with peak_rss(memory, name):
            label_pairs(pairs[:1], b, const, cfg, labeler)  # warm-up: first-call allocations
            timings[name] = LabelTimings()
            records[name] = label_pairs(pairs, b, const, cfg, labeler, timings[name])
    p_a = {
        name: [v.p_a for r in rs for v in sorted(r.votes, key=lambda v: (v.principle_id, v.order))]
        for name, rs in records.items()
    }
    stage_qps = timings["stage"].queries_per_s
    torch_qps = timings["torch"].queries_per_s
    from charter.backends.engine import describe

    engine = describe(backend)
    return {
        "feedback": backend.spec,
        "engine": engine.get("engine"),
        "compute_type": engine.get("compute_type") or engine.get("dtype"),
        "engine_details": engine,
        "pairs": len(pairs),
        "principles_per_pair": principles_per_pair,
        "few_shot": few_shot,
        "queries": timings["stage"].queries,
        "batch_size": batch_size,
        "stage_queries_per_s": round(stage_qps, 3),
        "torch_queries_per_s": round(torch_qps, 3),
        "ratio": round(stage_qps / torch_qps, 3),
        "seconds": {
            "stage": round(timings["stage"].scoring_s, 3),
            "torch": round(timings["torch"].scoring_s, 3),
        },
        "max_abs_diff_p_a": max(
            abs(x - y) for x, y in zip(p_a["stage"], p_a["torch"], strict=True)
        ),
        "mean_abs_diff_p_a": sum(
            abs(x - y) for x, y in zip(p_a["stage"], p_a["torch"], strict=True)
        )
        / len(p_a["stage"]),
        "peak_rss_mb": memory,
        "machine": machine(baseline),
    }
