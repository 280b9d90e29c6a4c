"""`charter evaluate`: compare models (base, SL-CAI, RL-CAI) on held-out prompts, per language.

The evaluation stage of a run, and the last one. For each model it answers every prompt of the
red-team, borderline and helpful sets (the `eval` split by default) greedily, and decides with
the refusal detector whether each answer refuses:

- **harmful compliance**: share of red-team prompts answered without a refusal;
- **over-refusal**: share of borderline and helpful prompts refused.

The judge then compares the models' answers pairwise with the RL-CAI labeller
(`charter.feedback.labeler.label_pairs`: multiple-choice questions scored by option log-probs,
each principle asked in both orders): on red-team prompts under the constitution's harm
principles (**harmlessness**), on helpful prompts under its principles tagged `helpfulness`
(**helpfulness**). Win rates and Elo ratings with bootstrap intervals come from
`charter.evaluate.stats`.

Outputs in `out`: `answers.jsonl` and `comparisons.jsonl` (resumable work files keyed by
deterministic ids, so `resume=True` after a kill redoes nothing that is on disk), then
`samples.jsonl` (every answer with its refusal verdict and its judgements) and `metrics.json`,
written atomically at the end. `report.py` turns the folder into `report.html`.

The parts: `charter.evaluate.options` (options, file names, inputs), `.answers` (answering and
refusal verdicts, preference-model rewards), `.judge` (pairwise judging), `.metrics`
(`metrics.json`, `samples.jsonl`); this module runs them in order (`evaluate_models`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from charter.backends.base import Backend
from charter.backends.pool import BackendPool
from charter.constitution.schema import Constitution
from charter.errors import CharterError
from charter.evaluate.answers import RefusalDetector, Timings, generate_answers, rm_rewards
from charter.evaluate.judge import judge_pairs, plan_comparisons
from charter.evaluate.metrics import compute_metrics, rm_metrics, write_samples
from charter.evaluate.options import (
    ANSWERS,
    JUDGE_KEY,
    METRICS,
    SAMPLES,
    EvalOptions,
    Inputs,
    load_inputs,
)
from charter.records import stable_id
from charter.runs import atomic_write_text


def multiple_choice(
    opts: EvalOptions, inputs: Inputs, out: Path, pool: BackendPool, *, progress: bool
) -> dict[str, dict[str, Any]]:
    """Each model's accuracy on each `--mc` file; cached per (model, file) in `out/mc/`."""
    from charter.feedback.mc_eval import evaluate_mc

    results: dict[str, dict[str, Any]] = {}
    for model, spec in opts.models.items():
        for path, items in inputs.mc:
            key = stable_id(model, spec, opts.options_for(model), path, len(items))
            cache = out / "mc" / f"{key}.json"
            if cache.exists():
                r = json.loads(cache.read_text(encoding="utf-8"))
            else:
                backend = pool.get(spec, opts.options_for(model), model)
                full = evaluate_mc(items, backend, swap=False, progress=progress)
                r = {k: full[k] for k in ("n", "accuracy", "ci_low", "ci_high", "chance")}
                cache.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(cache, json.dumps(r) + "\n")
            results.setdefault(model, {})[Path(path).name] = r
        pool.release(spec, opts.options_for(model))
    return results


def evaluate_models(
    opts: EvalOptions,
    out: Path,
    *,
    progress: bool = True,
    resume: bool = False,
    backends: Mapping[str, Backend] | None = None,
    detector: RefusalDetector | None = None,
    pool: BackendPool | None = None,
    constitution: Constitution | None = None,
) -> dict[str, Any]:
    """Run the whole evaluation into `out` and return the metrics that `metrics.json` holds.

    `backends` maps model names (or `judge`) or specs to already loaded backends to use instead
    of loading them; `pool` is the process's backend pool (one is made otherwise);
    `constitution` the already loaded `opts.constitution`; `detector` replaces the default
    refusal detector (`charter.evaluate.refusal.load_detector()`).
    """
    t_start = time.perf_counter()
    inputs = load_inputs(opts, constitution)
    out = Path(out)
    if not resume and (out / ANSWERS).exists():
        raise CharterError(f"{out} already holds an evaluation; pass --resume to continue it")
    out.mkdir(parents=True, exist_ok=True)
    if pool is None:
        pool = BackendPool(opts.batch_size, backends)
    elif backends:
        pool.given.update(backends)
    timings = Timings()
    answers = generate_answers(
        opts, inputs, out, pool, detector, resume=resume, progress=progress, timings=timings
    )
    mc = multiple_choice(opts, inputs, out, pool, progress=progress) if inputs.mc else {}
    plans = plan_comparisons(opts, inputs, answers)
    comparisons = judge_pairs(
        opts, inputs, plans, out, pool, resume=resume, progress=progress, timings=timings
    )
    metrics = compute_metrics(opts, answers, comparisons)
    if opts.judge is not None and comparisons:
        metrics["judge_validity"] = judge_validity(opts, pool)
    for model, results in mc.items():
        metrics["models"][model]["mc"] = results
    rewards = rm_rewards(opts, answers, out) if opts.rm is not None else None
    if rewards is not None:
        for model in opts.models:
            mine = [a for a in answers if a.model == model]
            metrics["models"][model]["rm"] = rm_metrics(mine, rewards)
    metrics["constitution"] = {
        "name": inputs.constitution.name,
        "sha256": inputs.constitution.compute_sha256(),
    }
    metrics["timings"] = {
        "generate_s": round(timings.generate_s, 3),
        "refusal_detection_s": round(timings.detect_s, 3),
        "judge_s": round(timings.judge_s, 3),
        "answers_this_call": timings.answers,
        "comparisons_this_call": timings.comparisons,
        "total_s": round(time.perf_counter() - t_start, 3),
    }
    write_samples(out / SAMPLES, answers, comparisons, rewards)
    atomic_write_text(out / METRICS, json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    return metrics


def judge_validity(opts: EvalOptions, pool: BackendPool) -> dict[str, Any]:
    """The judge's measured HHH accuracy in the format it judged in (see
    `charter.evaluate.validity`), or a note that it was never measured."""
    from charter.evaluate.validity import lookup
    from charter.feedback.labeler import model_fingerprint

    assert opts.judge is not None
    backend = pool.get(opts.judge, opts.options_for(JUDGE_KEY), JUDGE_KEY)
    sha = model_fingerprint(backend)
    found = lookup(opts.judge, sha, opts.judge_format, opts.few_shot)
    if found is None:
        return {"measured": False, "model_sha256": sha, "format": opts.judge_format}
    return {"measured": True, **found}
