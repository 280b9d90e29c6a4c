"""The `label` stage inside a run folder: pairs, then AI-feedback preference labels.

Writes `pairs.jsonl` (two answers per prompt, or the pairs of `--pairs-from`), `prefs.jsonl`
(one TRL preference row per pair, written per chunk of pairs) and `summary.json` into the stage's
folder (`--out`, or `label/` inside `charter run`). Both JSONL files are keyed by deterministic
ids, so `--resume` after a crash skips every pair and label already on disk; the manifest
records each sub-stage (`label/pairs`, `label`).
"""

from __future__ import annotations

import json
import time
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from charter.errors import CharterError
from charter.feedback.labeler import (
    LabelConfig,
    Labeler,
    LabelTimings,
    PairRecord,
    PreferenceRecord,
    label_pairs,
    model_fingerprint,
    preference_id,
    summarize_labels,
)
from charter.feedback.pairs import pair_id, sample_pairs
from charter.generate import MODEL_RENAMES, GenerationConfig, renamed_keys
from charter.jsonl import read_jsonl
from charter.records import PromptRecord, Strict, stable_id
from charter.redact import redact_spec
from charter.runs import JsonlWriter, atomic_write_text
from charter.stage import Stage, StageContext

PAIRS = "pairs.jsonl"
PREFS = "prefs.jsonl"
SUMMARY = "summary.json"
T = TypeVar("T")


class ModelRole(Strict):
    """A model in a role (the feedback model, the judge): a backend spec and its options."""

    model: str = Field("embedded", description="Backend spec of the model.")
    model_options: dict[str, Any] = Field(default_factory=dict, description="Backend options.")

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        return renamed_keys(data, MODEL_RENAMES)


class LabelInputs(BaseModel):
    """What the label stage works on: `prompts` whose answer pairs the `policy` samples, or
    ready-made `pairs` (then no policy is needed); `feedback` labels them."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    prompts: list[PromptRecord] = Field(default_factory=list)
    pairs: list[PairRecord] | None = None
    policy: GenerationConfig | None = None
    # `charter run`'s SFT model: its name in pair ids and the options hash instead of its spec
    # (which holds the run folder's path: a moved folder keeps its pairs), and its training's
    # hash in the ids and records hash (a retrained model samples new pairs).
    policy_name: str | None = None
    policy_hash: str | None = None
    feedback: ModelRole


class LabelResult(BaseModel):
    """The stage's `summary.json`, with its headline numbers typed."""

    n_pairs: int
    p_chosen_mean: float | None = None
    queries_per_s: float | None = None
    summary: dict[str, Any]


def run_label(ctx: StageContext, inputs: LabelInputs, cfg: LabelConfig) -> LabelResult:
    """RL-CAI labelling in `ctx.out`: sample pairs from the policy (or take `inputs.pairs`),
    label them with the feedback model under `ctx.constitution`; the summary is also written."""
    # long: the stage's two manifest steps (pairs, then labels) share closures over the pool, folder
    # and timings
    constitution = ctx.need_constitution()
    run, progress, pool = ctx.runfolder, ctx.progress, ctx.pool
    prompts, pairs = inputs.prompts, inputs.pairs
    feedback, fb_opts = inputs.feedback.model, dict(inputs.feedback.model_options)
    policy = inputs.policy.model if inputs.policy is not None else None
    folder = ctx.out
    try:
        localized = constitution.localized(cfg.lang)
    except KeyError as e:
        raise CharterError(f"constitution {constitution.name!r}: {e.args[0]}") from None
    if not localized.comparison_principles():
        raise CharterError(
            f"constitution {constitution.name!r} has no `comparison` questions to label with"
        )
    pairs_path = folder / PAIRS
    timings: dict[str, float] = {}
    if pairs is None:
        if inputs.policy is None:
            raise CharterError("label needs a policy (with its sampling) or pairs from a file")
        policy_spec, opts = inputs.policy.model, dict(inputs.policy.model_options)
        smp = inputs.policy.sampling(cfg.seed)

        def run_pairs() -> int:
            writer = JsonlWriter(pairs_path, resume=True)
            b = pool.get(policy_spec, opts)
            name = inputs.policy_name or b.spec
            key = f"{name}@{inputs.policy_hash}" if inputs.policy_hash else name
            # Pairs of prompts no longer asked for go; the others are kept, not redone.
            writer.retain(pair_id(p, key, smp) for p in prompts)
            t0 = time.perf_counter()
            _, tokens = sample_pairs(
                prompts, b, smp, writer, chunk_size=cfg.chunk_size, policy_key=key
            )
            timings["pairs_s"] = round(time.perf_counter() - t0, 3)
            timings["pairs_tokens"] = tokens
            return len(writer.done)

        run.run_stage(
            "label/pairs",
            stable_id(inputs.policy_name or policy_spec, smp.model_dump(mode="json")),
            [ctx.file(PAIRS)],
            run_pairs,
            records_hash=stable_id(
                [p.model_dump(mode="json") for p in prompts],
                *([inputs.policy_hash] if inputs.policy_hash else []),
            ),
            per_record=True,
        )
        pair_rows = read_jsonl(pairs_path, PairRecord) if pairs_path.exists() else []
        # Pairs sampled before pairs kept their prompt's category get it here.
        categories = {p.key(): p.meta.get("category") for p in prompts}
        pair_rows = [
            r.model_copy(update={"category": categories.get(r.prompt_id)})
            if r.category is None and categories.get(r.prompt_id)
            else r
            for r in pair_rows
        ]
    else:
        pair_rows = list(pairs)
        atomic_write_text(pairs_path, "".join(p.model_dump_json() + "\n" for p in pair_rows))

    prefs_path = folder / PREFS
    lt = LabelTimings()

    def run_labels() -> int:
        backend = pool.get(feedback, fb_opts)
        labeler = Labeler(
            backend=backend.spec,
            model_sha256=model_fingerprint(backend),
            cot=cfg.cot,
            clamp=cfg.clamp if cfg.cot else None,
            few_shot=cfg.few_shot,
            format=cfg.format,
        )
        writer = JsonlWriter(prefs_path, resume=True)
        sha = localized.compute_sha256()  # label_pairs ids rows by the constitution it gets
        writer.retain(preference_id(p.id, labeler, cfg, sha) for p in pair_rows)
        todo = [p for p in pair_rows if preference_id(p.id, labeler, cfg, sha) not in writer.done]
        with _progress(len(pair_rows), len(pair_rows) - len(todo), progress) as bar:
            for start in range(0, len(todo), cfg.chunk_size):
                chunk = todo[start : start + cfg.chunk_size]
                writer.write(label_pairs(chunk, backend, localized, cfg, labeler, lt))
                if lt.scoring_s:
                    bar.set_postfix_str(f"{lt.queries_per_s:.1f} queries/s", refresh=False)
                bar.update(len(chunk))
        return len(writer.done)

    l_hash = stable_id(
        feedback,
        fb_opts,
        cfg.model_dump(mode="json", exclude={"chunk_size"}),
        constitution.compute_sha256(),
    )
    run.run_stage(
        "label",
        l_hash,
        [ctx.file(PREFS)],
        run_labels,
        records_hash=stable_id([p.id for p in pair_rows]),
        per_record=True,
    )
    records = read_jsonl(prefs_path, PreferenceRecord) if prefs_path.exists() else []
    wanted = {p.id for p in pair_rows}
    records = [r for r in records if r.pair_id in wanted]
    summary = summarize_labels(records)
    this_run: dict[str, Any] = dict(timings)
    if lt.queries:
        this_run.update(
            queries=lt.queries,
            scoring_s=round(lt.scoring_s, 3),
            queries_per_s=round(lt.queries_per_s, 2),
        )
        if cfg.cot:
            this_run.update(
                reasoning_s=round(lt.reasoning_s, 3), reasoning_tokens=lt.reasoning_tokens
            )
    previous = folder / SUMMARY
    if not lt.queries and previous.exists():
        # Nothing labelled this time (already complete): keep the speed measured when it ran.
        this_run = json.loads(previous.read_text(encoding="utf-8")).get("timings", this_run)
    summary.update(
        timings=this_run,
        queries_per_s=this_run.get("queries_per_s"),
        feedback=redact_spec(feedback),
        policy=None if policy is None else redact_spec(policy),
        labeler=records[0].labeler.model_dump(mode="json") if records else None,
        config=cfg.model_dump(mode="json"),
        constitution=constitution.name,
        constitution_sha256=constitution.compute_sha256(),
    )
    if records:
        from charter.evaluate.validity import lookup

        # The labeller's measured HHH accuracy in this format, for the report's warning.
        sha = records[0].labeler.model_sha256
        summary["validity"] = lookup(feedback, sha, cfg.format, cfg.few_shot)
    atomic_write_text(folder / SUMMARY, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return LabelResult(
        n_pairs=summary["n_pairs"],
        p_chosen_mean=summary.get("p_chosen_mean"),
        queries_per_s=summary.get("queries_per_s"),
        summary=summary,
    )


LABEL: Stage[LabelInputs, LabelConfig, LabelResult] = Stage(
    "label", LabelConfig, run_label, "RL-CAI: AI-feedback soft labels of answer pairs"
)


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="pair",
        desc="label",
        disable=not enabled,
        dynamic_ncols=True,
    )
