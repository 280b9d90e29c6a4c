"""`bench label`: the labeller's scoring speed against a naive loop, in one process and run.

Pairs are sampled first (not timed). Then (a) the stage's path, `label_pairs`, sends every
(pair × principle × order) question of the pairs to `option_logprobs` in one call, which batches
them and computes shared prefixes once; (b) the naive loop sends the very same prompts one query
per call. Both count the same queries; the largest difference between their probabilities is
reported as a check that the fast path computes the same numbers.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

from charter.errors import CharterError
from charter.feedback.labeler import LabelConfig, Labeler, LabelTimings, PairRecord, label_pairs
from charter.feedback.pairs import pair_id
from charter.feedback.prompts import LETTERS, few_shot_block, mc_prompt
from charter.records import OptionQuery, Sampling


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
    from charter.backends import check_spec, load_backend
    from charter.backends.base import normalized_option_probs
    from charter.constitution.load import load_constitution
    from charter.data import load_prompts

    check_spec(feedback)
    backend = load_backend(feedback, defaults={"batch_size": batch_size})
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
    # Warm-up (first-call allocations), on a pair not in the timed set's cache.
    label_pairs(pairs[:1], backend, const, cfg, labeler)

    timings = LabelTimings()
    records = label_pairs(pairs, backend, const, cfg, labeler, timings)

    # The naive loop: the same prompts, one query per `option_logprobs` call.
    examples = [e for e in const.few_shot.labeling if e.lang == "en"][:few_shot]
    block = few_shot_block(examples)
    by_pair = {p.id: p for p in pairs}
    texts: list[str] = []
    expected: list[float] = []
    for r in records:
        pair = by_pair[r.pair_id]
        for v in r.votes:
            principle = const.principle(v.principle_id)
            assert principle.comparison is not None
            chosen, rejected = r.chosen[0].content, r.rejected[0].content
            a, b = (chosen, rejected) if v.order == "AB" else (rejected, chosen)
            texts.append(mc_prompt(block, pair.prompt, principle.comparison, a, b))
            expected.append(v.p_a)
    t0 = time.perf_counter()
    naive = []
    for t in texts:
        lp = backend.option_logprobs([OptionQuery(prompt=t, options=list(LETTERS))])[0]
        naive.append(normalized_option_probs(lp)["A"])
    naive_s = time.perf_counter() - t0
    stage_qps = timings.queries_per_s
    naive_qps = len(texts) / naive_s
    import torch

    return {
        "feedback": backend.spec,
        "pairs": len(pairs),
        "principles_per_pair": principles_per_pair,
        "few_shot": few_shot,
        "queries": timings.queries,
        "batch_size": batch_size,
        "mean_prompt_chars": round(sum(len(t) for t in texts) / len(texts), 1),
        "stage_queries_per_s": round(stage_qps, 3),
        "naive_queries_per_s": round(naive_qps, 3),
        "ratio": round(stage_qps / naive_qps, 3),
        "seconds": {"stage": round(timings.scoring_s, 3), "naive": round(naive_s, 3)},
        "max_abs_diff_p_a": max(abs(x - y) for x, y in zip(naive, expected, strict=True)),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": getattr(backend, "device", None),
            "torch": torch.__version__,
        },
    }
