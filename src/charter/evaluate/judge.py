"""Pairwise judging: every pair of models on every prompt of an axis's set, judged by the
RL-CAI labeller (`charter.feedback.labeler.label_pairs`) under the axis's principles
(`comparisons.jsonl`, resumable)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from charter.backends.base import Backend
from charter.backends.pool import BackendPool
from charter.constitution.schema import Constitution
from charter.evaluate.answers import AnswerRecord, Timings, progress_bar
from charter.evaluate.options import AXES, COMPARISONS, JUDGE_KEY, Axis, EvalOptions, Inputs
from charter.feedback.labeler import (
    LabelConfig,
    Labeler,
    PairRecord,
    Vote,
    label_pairs,
    model_fingerprint,
)
from charter.jsonl import read_jsonl
from charter.records import Record, stable_id
from charter.runs import JsonlWriter


class ComparisonRecord(Record):
    """The judge's verdict on two models' answers to one prompt. `p_a`: the probability that
    `model_a`'s answer is better (the labeller's soft label, both orders averaged)."""

    id: str
    axis: Axis
    set: str
    lang: str
    prompt_id: str
    category: str | None = None
    model_a: str
    model_b: str
    answer_a: str
    answer_b: str
    p_a: float = Field(ge=0.0, le=1.0)
    outcome: Literal["a", "b", "tie"]
    votes: list[Vote]
    principle_ids: list[str]
    judge: str

    def score(self) -> float:
        return {"a": 1.0, "b": 0.0, "tie": 0.5}[self.outcome]


@dataclass
class _PairPlan:
    id: str
    axis: Axis
    a: AnswerRecord
    b: AnswerRecord


def plan_comparisons(
    opts: EvalOptions, inputs: Inputs, answers: Sequence[AnswerRecord]
) -> list[_PairPlan]:
    """Every pair of models on every prompt of each axis's set, in a deterministic order."""
    if opts.judge is None:
        return []
    index = {(a.model, a.set, a.lang, a.prompt_id): a for a in answers}
    label_cfg = _label_config(opts, "en").model_dump(mode="json", exclude={"lang", "chunk_size"})
    plans = []
    for axis, set_name in AXES.items():
        prompts = [p for p in inputs.prompts if p.set == set_name]
        for ma, mb in itertools.combinations(opts.models, 2):
            for p in prompts:
                a = index.get((ma, p.set, p.lang, p.record.key()))
                b = index.get((mb, p.set, p.lang, p.record.key()))
                if a is None or b is None:
                    continue
                judge = inputs.judges[(axis, p.lang)]
                cid = stable_id(
                    axis,
                    a.id,
                    b.id,
                    opts.judge,
                    opts.options_for(JUDGE_KEY),
                    label_cfg,
                    judge.compute_sha256(),
                )
                plans.append(_PairPlan(cid, axis, a, b))
    return plans


def _label_config(opts: EvalOptions, lang: str) -> LabelConfig:
    return LabelConfig(
        principles_per_pair=opts.principles_per_pair,
        principle_pool=opts.principle_pool,
        few_shot=opts.few_shot,
        format=opts.judge_format,
        lang=lang,
        seed=opts.seed,
    )


def judge_pairs(
    opts: EvalOptions,
    inputs: Inputs,
    plans: Sequence[_PairPlan],
    out: Path,
    pool: BackendPool,
    *,
    resume: bool,
    progress: bool,
    timings: Timings,
) -> list[ComparisonRecord]:
    """Judge every planned pair with the multiple-choice labeller (resumable)."""
    writer = JsonlWriter(out / COMPARISONS, resume=resume or (out / COMPARISONS).exists())
    todo = [p for p in plans if p.id not in writer.done]
    chunk = 16
    with progress_bar(len(plans), "evaluate: judge", progress) as bar:
        bar.update(len(plans) - len(todo))
        backend: Backend | None = None
        labeler: Labeler | None = None
        groups = itertools.groupby(todo, key=lambda p: (p.axis, p.a.lang))
        for (axis, lang), group in groups:
            items = list(group)
            constitution = inputs.judges[(axis, lang)]
            cfg = _label_config(opts, lang)
            for start in range(0, len(items), chunk):
                part = items[start : start + chunk]
                same = [p for p in part if p.a.answer.strip() == p.b.answer.strip()]
                asked = [p for p in part if p not in same]
                records = [_tie(p, opts) for p in same]
                if asked:
                    if backend is None or labeler is None:
                        assert opts.judge is not None  # no plans without a judge
                        backend = pool.get(opts.judge, opts.options_for(JUDGE_KEY), JUDGE_KEY)
                        labeler = Labeler(
                            backend=backend.spec,
                            model_sha256=model_fingerprint(backend),
                            cot=False,
                            clamp=None,
                            few_shot=opts.few_shot,
                            format=opts.judge_format,
                        )
                    t0 = time.perf_counter()
                    verdicts = judge_answers(
                        [_pair_record(p) for p in asked], backend, constitution, cfg, labeler
                    )
                    timings.judge_s += time.perf_counter() - t0
                    timings.comparisons += len(asked)
                    for p, (p_a, votes, principle_ids) in zip(asked, verdicts, strict=True):
                        records.append(_comparison(p, opts, p_a, votes, principle_ids))
                writer.write(records)
                bar.update(len(part))
    wanted = {p.id: p for p in plans}
    by_id = (
        {c.id: c for c in read_jsonl(out / COMPARISONS, ComparisonRecord) if c.id in wanted}
        if (out / COMPARISONS).exists()
        else {}
    )
    return [by_id[p.id] for p in plans if p.id in by_id]


def judge_answers(
    pairs: Sequence[PairRecord],
    backend: Backend,
    constitution: Constitution,
    cfg: LabelConfig,
    labeler: Labeler,
) -> list[tuple[float, list[Vote], list[str]]]:
    """For each pair of answers `(a, b)`: the judge's probability that `a` is the better one
    (the labeller's soft label, both orders averaged), its votes and the principles asked."""
    out = []
    for pair, pref in zip(
        pairs, label_pairs(pairs, backend, constitution, cfg, labeler), strict=True
    ):
        first_chosen = pref.chosen[0].content == pair.responses[0]
        p_a = pref.p_chosen if first_chosen else 1.0 - pref.p_chosen
        out.append((p_a, pref.votes, pref.principle_ids))
    return out


def _pair_record(p: _PairPlan) -> PairRecord:
    return PairRecord(
        id=p.id,
        prompt_id=p.a.prompt_id,
        prompt=p.a.messages,
        responses=(p.a.answer, p.b.answer),
        source="policy",
        category=p.a.category or None,
    )


def outcome_of(p_a: float) -> Literal["a", "b", "tie"]:
    """The hard outcome of a soft label: a tie only when the judge is exactly undecided.

    >>> outcome_of(0.7), outcome_of(0.5), outcome_of(0.2)
    ('a', 'tie', 'b')
    """
    if abs(p_a - 0.5) < 1e-9:
        return "tie"
    return "a" if p_a > 0.5 else "b"


def _comparison(
    p: _PairPlan, opts: EvalOptions, p_a: float, votes: list[Vote], principle_ids: list[str]
) -> ComparisonRecord:
    assert opts.judge is not None  # no plans without a judge
    return ComparisonRecord(
        id=p.id,
        axis=p.axis,
        set=p.a.set,
        lang=p.a.lang,
        prompt_id=p.a.prompt_id,
        category=p.a.category,
        model_a=p.a.model,
        model_b=p.b.model,
        answer_a=p.a.id,
        answer_b=p.b.id,
        p_a=round(min(max(p_a, 0.0), 1.0), 6),
        outcome=outcome_of(p_a),
        votes=votes,
        principle_ids=principle_ids,
        judge=opts.judge,
    )


def _tie(p: _PairPlan, opts: EvalOptions) -> ComparisonRecord:
    """Identical answers tie without asking the judge."""
    return _comparison(p, opts, 0.5, [], [])
