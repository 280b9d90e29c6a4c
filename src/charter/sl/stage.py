"""The SL-CAI stage under the stage contract (`charter sl` and `charter run`): in the stage's
folder, `samples.jsonl` (every critique and revision), `sft.jsonl` and `summary.json`; the
algorithm itself is `charter.sl.revise`."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from charter.backends.base import Backend
from charter.constitution.load import dump_constitution
from charter.errors import CharterError
from charter.feedback.stage import ModelRole
from charter.generate import GenerationConfig
from charter.jsonl import read_jsonl
from charter.records import GenerationRecord, Message, PromptRecord, SFTRecord, stable_id
from charter.redact import redact_spec
from charter.runs import JsonlWriter, atomic_write_text
from charter.sl.pairs import PAIRS, preference_pairs
from charter.sl.revise import (
    HELPFUL,
    SAMPLES,
    SFT,
    SUMMARY,
    SLConfig,
    SLRunStats,
    SLSample,
    critique_and_revise,
    sample_id,
    sft_rows,
    summarize,
)
from charter.stage import Stage, StageContext


def _count(result: Any) -> int:
    """Records of an SL or generate stage: written now plus found done."""
    return int(getattr(result, "written", 0) + getattr(result, "skipped", 0))


class SLInputs(BaseModel):
    """What the SL-CAI stage works on: red-team prompts, helpful prompts to mix in, and the
    policy (model and sampling) that answers, critiques and revises."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    prompts: list[PromptRecord]
    helpful: list[PromptRecord] = Field(default_factory=list)
    policy: GenerationConfig
    reviser: ModelRole | None = Field(
        None, description="The model that critiques and revises; None: the policy (the paper)."
    )


class SLResult(BaseModel):
    """The stage's `summary.json`, with its headline numbers typed."""

    n_samples: int
    n_revised: int
    n_sft: int
    acceptance_rate: float
    tokens_per_s: float | None = None
    summary: dict[str, Any]


def run_sl(ctx: StageContext, inputs: SLInputs, cfg: SLConfig) -> SLResult:
    """SL-CAI in `ctx.out`: `samples.jsonl`, then `sft.jsonl` and `summary.json`.

    The constitution is `ctx.constitution` (its `cfg.lang` version is used); `inputs.helpful`
    prompts are answered by the policy and mixed into the SFT set at `cfg.helpful_ratio`.
    """
    # long: the stage's two manifest steps (revisions, helpful answers) share closures over the pool
    # and folder
    from charter.generate import generate_answers, generation_id

    constitution = ctx.need_constitution()
    prompts, helpful = inputs.prompts, inputs.helpful
    backend_spec, backend_options = inputs.policy.model, inputs.policy.model_options
    sampling = inputs.policy.sampling(ctx.seed)
    batch_size, progress = inputs.policy.batch_size, ctx.progress

    class _Lazy:
        def get(self) -> Backend:
            return ctx.pool.get(backend_spec, backend_options)

    backend = _Lazy()
    reviser = inputs.reviser
    reviser_spec = None if reviser is None else reviser.model

    def reviser_backend() -> Backend | None:
        return None if reviser is None else ctx.pool.get(reviser.model, reviser.model_options)

    folder, run = ctx.out, ctx.runfolder
    groups = by_language(prompts, cfg)
    localized = {}
    for lang in groups:
        try:
            localized[lang] = constitution.localized(lang)
        except KeyError as e:
            raise CharterError(
                f"constitution {constitution.name!r} cannot be used with --lang {lang}: {e.args[0]}"
            ) from None
    atomic_write_text(folder / "constitution.yaml", dump_constitution(constitution))

    def options_hash(settings: dict[str, Any]) -> str:
        reviser_part = () if reviser_spec is None else (reviser_spec,)
        dumped = sampling.model_dump(mode="json")
        sha = constitution.compute_sha256()
        return stable_id(sha, backend_spec, settings, dumped, *reviser_part, length=64)

    base = options_hash(cfg.revision_settings())
    # Releases before the helpful mix had its own hash hashed every setting of both steps.
    earlier = (
        ()
        if cfg.contrast_prompts
        else (options_hash(cfg.model_dump(mode="json", exclude={"contrast_prompts"})),)
    )
    stats = SLRunStats()
    samples_path = folder / SAMPLES

    def run_sl() -> SLRunStats:
        writer = JsonlWriter(samples_path, resume=True)
        b = backend.get()
        r = reviser_backend()
        r_spec = r.spec if r is not None else None
        # Samples of prompts no longer asked for go; the others are kept and not redone.
        writer.retain(
            sample_id(p, localized[lang].compute_sha256(), b.spec, lang_cfg, sampling, r_spec)
            for lang, (lang_cfg, group) in groups.items()
            for p in group
        )
        total = SLRunStats()
        for lang, (lang_cfg, group) in groups.items():
            done = critique_and_revise(
                group, b, localized[lang], lang_cfg, sampling, writer, progress=progress, reviser=r
            )
            total += done
        return total

    records = stable_id([p.model_dump(mode="json") for p in prompts], length=64)
    stats = (
        run.run_stage(
            "sl",
            base,
            [ctx.file(SAMPLES)],
            run_sl,
            _count,
            records_hash=records,
            per_record=True,
            earlier_hashes=earlier,
        )
        or stats
    )
    samples = read_jsonl(samples_path, SLSample) if samples_path.exists() else []
    rows = sft_rows(samples)

    n_helpful = round(cfg.helpful_ratio * len(rows))
    helpful_rows: list[SFTRecord] = []
    helpful_refused = 0
    if n_helpful and helpful:
        chosen = list(helpful)[:n_helpful]
        helpful_sampling = sampling.model_copy(
            update={"max_new_tokens": cfg.helpful_max_new_tokens or sampling.max_new_tokens}
        )
        helpful_path = folder / HELPFUL

        def run_helpful() -> Any:
            writer = JsonlWriter(helpful_path, resume=True)
            b = backend.get()
            writer.retain(generation_id(p, b.spec, helpful_sampling) for p in chosen)
            return generate_answers(
                chosen, b, helpful_sampling, writer, batch_size=batch_size, progress=progress
            )

        h_records = stable_id([p.model_dump(mode="json") for p in chosen], length=64)
        run.run_stage(
            "sl/helpful",
            stable_id(backend_spec, helpful_sampling.model_dump(mode="json"), length=64),
            [ctx.file(HELPFUL)],
            run_helpful,
            _count,
            records_hash=h_records,
            per_record=True,
            earlier_hashes=earlier,
        )
        from charter.evaluate.refusal import arabic_share, match_pattern

        sets = {p.id: p.meta.get("set") for p in chosen}
        for g in read_jsonl(helpful_path, GenerationRecord):
            # A refusal of a helpful prompt would teach the evasiveness CAI is meant to remove.
            if cfg.topic_check and match_pattern(g.completion) is not None:
                helpful_refused += 1
            elif g.completion.strip():
                helpful_rows.append(
                    SFTRecord(
                        id=g.id,
                        messages=[
                            *g.messages,
                            Message(role="assistant", content=g.completion.strip()),
                        ],
                        meta={
                            "source": "helpful",
                            "prompt_id": g.prompt_id,
                            "set": sets.get(g.prompt_id),
                            # The mix may hold several languages (`helpful_langs`).
                            "lang": "ar"
                            if arabic_share(g.messages[-1].content) >= 0.5
                            else cfg.lang,
                        },
                    )
                )
    sft = rows + helpful_rows
    atomic_write_text(folder / SFT, "".join(r.model_dump_json() + "\n" for r in sft))
    pairs = preference_pairs(samples, helpful_rows)
    atomic_write_text(
        folder / PAIRS, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in pairs)
    )
    summary = summarize(samples, stats, len(sft), len(helpful_rows))
    previous = folder / SUMMARY
    if not stats.written and previous.exists():
        # Nothing generated this time (already complete): keep the speed measured when it ran.
        old = json.loads(previous.read_text(encoding="utf-8"))
        summary["this_invocation"] = old.get("this_invocation", summary["this_invocation"])
        summary["tokens_per_s"] = old.get("tokens_per_s")
    summary.update(
        lang=cfg.lang,
        langs=list(groups) or cfg.languages(),
        rounds=cfg.rounds,
        constitution=constitution.name,
        constitution_sha256=constitution.compute_sha256(),
        backend=redact_spec(backend_spec),
        reviser=None if reviser_spec is None else redact_spec(reviser_spec),
        helpful_refused=helpful_refused,
        pairs=dict(Counter(str(r["kind"]) for r in pairs)),
        # How many of the mixed-in answers each prompt set gave (helpful, borderline contrast).
        helpful_by_set=dict(Counter(str(r.meta.get("set")) for r in helpful_rows)),
    )
    atomic_write_text(folder / SUMMARY, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return SLResult(
        n_samples=summary["n_samples"],
        n_revised=summary["n_revised"],
        n_sft=summary["n_sft"],
        acceptance_rate=summary["acceptance_rate"],
        tokens_per_s=summary.get("tokens_per_s"),
        summary=summary,
    )


def by_language(
    prompts: list[PromptRecord], cfg: SLConfig
) -> dict[str, tuple[SLConfig, list[PromptRecord]]]:
    """Prompts grouped by the language they are revised in, with that language's settings: a
    prompt's `meta.lang` when it is one of `cfg.languages()`, else the first of them (so a
    one-language run revises every prompt in `cfg.lang`, as before `langs` existed).

    >>> ps = [PromptRecord(id=i, prompt="q", meta={"lang": lang}) for i, lang in
    ...       [("a", "en"), ("b", "ar"), ("c", "fr")]]
    >>> groups = by_language(ps, SLConfig(langs=["en", "ar"]))
    >>> {k: [p.id for p in g] for k, (_, g) in groups.items()}
    {'en': ['a', 'c'], 'ar': ['b']}
    >>> groups["ar"][0].lang, {k: len(g) for k, (_, g) in by_language(ps, SLConfig()).items()}
    ('ar', {'en': 3})
    """
    languages = cfg.languages()
    groups: dict[str, tuple[SLConfig, list[PromptRecord]]] = {}
    for p in prompts:
        lang = p.meta.get("lang")
        lang = lang if lang in languages else languages[0]
        groups.setdefault(lang, (cfg.of_language(lang), []))[1].append(p)
    return groups


SL: Stage[SLInputs, SLConfig, SLResult] = Stage(
    "sl", SLConfig, run_sl, "SL-CAI: critique and revise the policy's answers"
)
