"""The RL-CAI multiple-choice labeller: soft, order-debiased, principle-ensembled preferences.

For a pair of answers, K comparison principles are drawn (seeded per pair). Each principle is
asked twice, once with the first answer as (A) and once as (B); every question is scored with
`option_logprobs` and normalized, `p_A = exp(lA) / (exp(lA) + exp(lB))`. A vote is the probability
that one answer is better under one principle and one order; the pair's soft label is the mean of
its 2K votes, which cancels a constant preference for a letter (a labeller that always says "A"
gives exactly 0.5). The chosen answer is the one the labeller prefers, so `p_chosen >= 0.5`.

With chain of thought, the feedback model first writes its reasoning and the letter is scored
after it; such probabilities are nearly always 0 or 1, so each vote is clamped to a band (0.4 to
0.6 by default, the band the CAI paper found best) before averaging.

All queries of a batch of pairs go to the backend in one call, so it can batch them and share
their common prefixes (few-shot examples, the conversation).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from charter.backends.base import Backend, normalized_option_probs
from charter.constitution.schema import (
    Constitution,
    LabelExample,
    Principle,
    PrinciplePool,
    select_principles,
)
from charter.feedback import prompts as P
from charter.records import (
    AddedFields,
    Message,
    OptionQuery,
    Record,
    Sampling,
    Strict,
    stable_id,
)

Order = Literal["AB", "BA"]


class LabelConfig(AddedFields):
    """How pairs are labelled."""

    ADDED: ClassVar[tuple[str, ...]] = ("principle_pool",)

    principles_per_pair: int = Field(
        4, ge=1, description="K comparison principles drawn per pair (at most all of them)."
    )
    few_shot: int = Field(
        2, ge=0, description="Labelling examples of the constitution prepended to every prompt."
    )
    # chat with worked examples was the best format measured on the HHH comparisons
    # (docs/results.md, "The judge's prompt formats"); raw is the CAI paper's own.
    format: Literal["raw", "chat", "pointwise"] = Field(
        "chat",
        description="raw: the question as plain text ending with 'The answer is: ('; chat: as a "
        "user turn of the model's chat template, the examples as earlier turns; pointwise: each "
        "answer judged alone (yes/no) under the principle, the two judgements compared.",
    )
    cot: bool = Field(False, description="Chain of thought: reasoning first, then the letter.")
    clamp: tuple[float, float] = Field(
        (0.4, 0.6), description="Band each chain-of-thought vote is clamped to."
    )
    cot_max_new_tokens: int = Field(
        128, ge=1, description="Most tokens of chain-of-thought reasoning."
    )
    lang: str = Field("en", description="Language of the constitution's questions (en, ar).")
    seed: int = Field(0, description="Seed of the principles drawn per pair and of sampling.")
    principle_pool: PrinciplePool = Field(
        "all",
        description="Where each pair's comparison principles are drawn from: all (the paper's "
        "uniform draw), harm (none tagged helpfulness) or matched (those tagged with the "
        "prompt's harm category, else harm): a fraud request judged by freedom of religion "
        "is a question the answers do not speak to.",
    )
    chunk_size: int = Field(32, ge=1, description="Pairs scored in one backend call and written.")

    @model_validator(mode="after")
    def _band(self) -> LabelConfig:
        lo, hi = self.clamp
        # Symmetric around 0.5, so that clamping does not depend on which answer came first.
        if not (0.0 <= lo <= 0.5 <= hi <= 1.0 and math.isclose(lo + hi, 1.0, abs_tol=1e-9)):
            raise ValueError("clamp must be a band (lo, hi) around 0.5 with lo = 1 - hi")
        return self


class Vote(Strict):
    """One question to the labeller. `order` "AB": the chosen answer was shown as (A) and the
    rejected one as (B); "BA" the reverse. `p` is this vote's probability that the chosen answer
    is better (clamped with chain of thought); `p_a` the normalized probability of the letter A
    as scored, before order debiasing and clamping."""

    principle_id: str
    order: Order
    p: float
    p_a: float
    reasoning: str | None = None


class Labeler(Strict):
    backend: str
    model_sha256: str
    cot: bool
    clamp: tuple[float, float] | None
    few_shot: int
    format: str = "raw"


class PairRecord(Record):
    """Two answers to one prompt, before labelling (`label/pairs.jsonl`)."""

    id: str
    prompt_id: str
    prompt: list[Message]
    responses: tuple[str, str]
    source: Literal["policy", "file"]
    policy: str | None = None
    category: str | None = Field(None, description="The prompt's harm category, if it has one.")


class PreferenceRecord(Record):
    """One labelled pair in TRL's conversational preference format, plus the soft label."""

    id: str
    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]
    p_chosen: float = Field(ge=0.5, le=1.0)
    votes: list[Vote]
    labeler: Labeler
    seed: int
    principle_ids: list[str]
    pair_id: str
    prompt_id: str
    source: Literal["policy", "file"]
    # Only for pairs read with --pairs-from: whether the file's `chosen` is ours too.
    agrees_with_file: bool | None = None


def letter_probability(logprobs: dict[str, float]) -> float:
    """`p_A = exp(lA) / (exp(lA) + exp(lB))`.

    >>> import math
    >>> round(letter_probability({"A": math.log(0.3), "B": math.log(0.1)}), 6)
    0.75
    """
    return normalized_option_probs({k: logprobs[k] for k in P.LETTERS})["A"]


def clamp(p: float, band: tuple[float, float] | None) -> float:
    """`p` clamped to `band` (unchanged when there is no band).

    >>> clamp(0.99, (0.4, 0.6)), clamp(0.5, (0.4, 0.6)), clamp(0.1, None)
    (0.6, 0.5, 0.1)
    """
    if band is None:
        return p
    return min(max(p, band[0]), band[1])


def draw_principles(
    principles: Sequence[Principle], pair_id: str, seed: int, k: int
) -> list[Principle]:
    """K distinct comparison principles for one pair, seeded by the pair (all when K >= n)."""
    rng = random.Random(int(stable_id(seed, pair_id, "principles"), 16))
    return rng.sample(list(principles), min(k, len(principles)))


@dataclass
class PairVotes:
    """The raw votes of one pair: for each (principle, order), the probability of letter A."""

    pair: PairRecord
    principles: list[Principle]
    p_a: dict[tuple[str, Order], float] = field(default_factory=dict)
    reasoning: dict[tuple[str, Order], str] = field(default_factory=dict)


def first_is_better(p_a: float, order: Order) -> float:
    """P(first answer better) from one vote: in order "AB" the first answer was (A)."""
    return p_a if order == "AB" else 1.0 - p_a


def soft_label(
    votes: dict[tuple[str, Order], float], band: tuple[float, float] | None
) -> tuple[float, dict[tuple[str, Order], float]]:
    """The pair's P(first answer better), the mean over principles and orders, and each vote's
    own P(first better) after clamping.

    >>> soft_label({("p", "AB"): 1.0, ("p", "BA"): 1.0}, None)[0]  # always says "A"
    0.5
    """
    per_vote = {key: clamp(first_is_better(p, key[1]), band) for key, p in votes.items()}
    return sum(per_vote.values()) / len(per_vote), per_vote


def to_record(
    pv: PairVotes, labeler: Labeler, cfg: LabelConfig, constitution_sha: str
) -> PreferenceRecord:
    band = cfg.clamp if cfg.cot else None
    p_first, per_vote = soft_label(pv.p_a, band)
    first_chosen = p_first >= 0.5  # a tie keeps the pair's order
    answers = pv.pair.responses
    chosen, rejected = answers if first_chosen else (answers[1], answers[0])
    votes = []
    for (pid, order), p in per_vote.items():
        # Orders are renamed from the pair's (first/second) to the row's (chosen/rejected).
        row_order: Order = order if first_chosen else ("BA" if order == "AB" else "AB")
        votes.append(
            Vote(
                principle_id=pid,
                order=row_order,
                p=p if first_chosen else 1.0 - p,
                p_a=pv.p_a[(pid, order)],
                reasoning=pv.reasoning.get((pid, order)),
            )
        )
    return PreferenceRecord(
        id=preference_id(pv.pair.id, labeler, cfg, constitution_sha),
        prompt=pv.pair.prompt,
        chosen=[Message(role="assistant", content=chosen)],
        rejected=[Message(role="assistant", content=rejected)],
        p_chosen=max(p_first, 1.0 - p_first),
        votes=votes,
        labeler=labeler,
        seed=cfg.seed,
        principle_ids=[p.id for p in pv.principles],
        pair_id=pv.pair.id,
        prompt_id=pv.pair.prompt_id,
        source=pv.pair.source,
        agrees_with_file=first_chosen if pv.pair.source == "file" else None,
    )


def preference_id(pair_id: str, labeler: Labeler, cfg: LabelConfig, constitution_sha: str) -> str:
    # The raw format leaves the ids of records written before formats existed unchanged.
    raw = {"format"} if cfg.format == "raw" else set()
    return stable_id(
        pair_id,
        labeler.model_dump(mode="json", exclude=raw),
        cfg.model_dump(mode="json", exclude={"chunk_size", *raw}),
        constitution_sha,
    )


@dataclass
class LabelTimings:
    queries: int = 0
    scoring_s: float = 0.0
    reasoning_s: float = 0.0
    reasoning_tokens: int = 0

    @property
    def queries_per_s(self) -> float:
        return self.queries / self.scoring_s if self.scoring_s > 0 else 0.0


@dataclass
class _Query:
    pair: int
    principle: Principle
    order: Order
    a: str
    b: str


def label_pairs(
    pairs: Sequence[PairRecord],
    backend: Backend,
    constitution: Constitution,
    cfg: LabelConfig,
    labeler: Labeler,
    timings: LabelTimings | None = None,
) -> list[PreferenceRecord]:
    """Label `pairs` with `backend` under the (already localized) `constitution`.

    Every (pair × principle × order) question goes to the backend in one `option_logprobs`
    call (and, with chain of thought, one `generate` call first).
    """
    plans = vote_pairs(pairs, backend, constitution, cfg, timings)
    sha = constitution.compute_sha256()
    return [to_record(pv, labeler, cfg, sha) for pv in plans]


def vote_pairs(
    pairs: Sequence[PairRecord],
    backend: Backend,
    constitution: Constitution,
    cfg: LabelConfig,
    timings: LabelTimings | None = None,
    principles: Sequence[Principle] | None = None,
) -> list[PairVotes]:
    """The raw votes of `pairs` (what `label_pairs` turns into records; `soft_label` of a
    pair's `p_a` is its P(first answer better)). `principles` narrows the comparison
    principles drawn from (default: all of the constitution's)."""
    timings = timings if timings is not None else LabelTimings()
    if principles is None:
        principles = constitution.comparison_principles()
    examples = [e for e in constitution.few_shot.labeling if e.lang == cfg.lang][: cfg.few_shot]
    few_shot = P.few_shot_block(examples, cot=cfg.cot)
    plans = [
        PairVotes(
            pair,
            draw_principles(
                select_principles(principles, pair.category, cfg.principle_pool),
                pair.id,
                cfg.seed,
                cfg.principles_per_pair,
            ),
        )
        for pair in pairs
    ]
    queries: list[_Query] = []
    for i, pv in enumerate(plans):
        first, second = pv.pair.responses
        for principle in pv.principles:
            queries.append(_Query(i, principle, "AB", first, second))
            queries.append(_Query(i, principle, "BA", second, first))

    def question(q: _Query) -> str:
        assert q.principle.comparison is not None  # comparison_principles() only
        return q.principle.comparison

    if cfg.cot:
        chats = [
            P.cot_request(few_shot, plans[q.pair].pair.prompt, question(q), q.a, q.b)
            for q in queries
        ]
        greedy = Sampling(max_new_tokens=cfg.cot_max_new_tokens, temperature=0.0, seed=cfg.seed)
        t0 = time.perf_counter()
        completions = backend.generate(chats, greedy) if chats else []
        timings.reasoning_s += time.perf_counter() - t0
        timings.reasoning_tokens += sum(c.completion_tokens for c in completions)
        reasonings = [c.text.strip() for c in completions]
        texts = [
            P.cot_prompt(few_shot, plans[q.pair].pair.prompt, question(q), q.a, q.b, r)
            for q, r in zip(queries, reasonings, strict=True)
        ]
        for q, r in zip(queries, reasonings, strict=True):
            plans[q.pair].reasoning[(q.principle.id, q.order)] = r
        asked = [OptionQuery(prompt=t, options=list(P.LETTERS)) for t in texts]
    else:
        asked = format_queries(
            cfg.format, queries, [pv.pair.prompt for pv in plans], question, examples, few_shot
        )
    t0 = time.perf_counter()
    scored = backend.option_logprobs(asked) if asked else []
    if cfg.format == "chat" and not cfg.cot:  # "(A)"/"(B)" → the letters
        scored = [
            dict(zip(P.LETTERS, (lp[o] for o in P.CHAT_OPTIONS), strict=True)) for lp in scored
        ]
    elif cfg.format == "pointwise" and not cfg.cot:
        scored = pointwise_letters(queries, scored)
    timings.scoring_s += time.perf_counter() - t0
    timings.queries += len(asked)
    for q, lp in zip(queries, scored, strict=True):
        plans[q.pair].p_a[(q.principle.id, q.order)] = letter_probability(lp)
    return plans


def format_queries(
    fmt: str,
    queries: Sequence[_Query],
    conversations: Sequence[Sequence[Message]],
    question: Callable[[_Query], str],
    examples: Sequence[LabelExample],
    few_shot: str,
) -> list[OptionQuery]:
    """The scored queries of `queries` in format `fmt` (see `LabelConfig.format`)."""
    if fmt == "pointwise":
        # Each answer judged alone, once per principle; both orders follow from the same two
        # judgements (the letters are never shown), so each (pair, principle) costs 2 queries.
        ab = [q for q in queries if q.order == "AB"]
        return [
            OptionQuery(
                prompt=P.pointwise_chat(conversations[q.pair], question(q), answer),
                options=list(P.YES_NO),
            )
            for side in ("a", "b")
            for q in ab
            for answer in [q.a if side == "a" else q.b]
        ]
    if fmt == "chat":
        return [
            OptionQuery(
                prompt=P.mc_chat(examples, conversations[q.pair], question(q), q.a, q.b),
                options=list(P.CHAT_OPTIONS),
            )
            for q in queries
        ]
    return [
        OptionQuery(
            prompt=P.mc_prompt(few_shot, conversations[q.pair], question(q), q.a, q.b),
            options=list(P.LETTERS),
        )
        for q in queries
    ]


def pointwise_letters(
    queries: Sequence[_Query], scored: Sequence[dict[str, float]]
) -> list[dict[str, float]]:
    """The pointwise judgements (first all AB queries' (A) answers, then their (B) answers) as
    letter log-probs per query: log P(yes | A) and log P(yes | B), each P(yes) normalized over
    yes/no, so that `letter_probability` gives P(yes | A) / (P(yes | A) + P(yes | B))."""
    half = len(scored) // 2
    yes = [math.log(normalized_option_probs(lp)[P.YES_NO[0]]) for lp in scored]
    by_question: dict[tuple[int, str], tuple[float, float]] = {}
    ab = [q for q in queries if q.order == "AB"]
    for i, q in enumerate(ab):
        by_question[(q.pair, q.principle.id)] = (yes[i], yes[half + i])
    out = []
    for q in queries:
        first, second = by_question[(q.pair, q.principle.id)]
        a, b = (first, second) if q.order == "AB" else (second, first)
        out.append({"A": a, "B": b})
    return out


def model_fingerprint(backend: Backend) -> str:
    """A hash that names the feedback model's weights, for the `labeler` provenance.

    For transformers backends: sha256 over `config.json` and, per safetensors file, its name,
    size and first 16 MiB (hashing whole files costs seconds per GB). For others, the spec.
    """
    remote = getattr(backend, "fingerprint", None)
    if callable(remote):  # a backend served elsewhere (Ray actors) fingerprints its own copy
        return str(remote())
    model = getattr(backend, "model", None)
    folder = Path(str(getattr(model, "name_or_path", "") or ""))
    if model is None or not folder.is_dir():
        return hashlib.sha256(backend.spec.encode("utf-8")).hexdigest()
    h = hashlib.sha256()
    config = folder / "config.json"
    if config.exists():
        h.update(config.read_bytes())
    for weights in sorted(folder.glob("*.safetensors")):
        h.update(f"{weights.name}:{weights.stat().st_size}".encode())
        with weights.open("rb") as f:
            h.update(f.read(16 * 2**20))
    return h.hexdigest()


def summarize_labels(records: Sequence[PreferenceRecord]) -> dict[str, Any]:
    """Label distribution, letter bias before debiasing, and agreement between the two orders."""
    n = len(records)
    edges = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    hist = {f"{lo:.1f}-{hi:.1f}": 0 for lo, hi in itertools.pairwise(edges)}
    for r in records:
        i = min(int((r.p_chosen - 0.5) / 0.1 + 1e-9), 4)
        hist[list(hist)[i]] += 1
    p_a = [v.p_a for r in records for v in r.votes]
    agree = total = 0
    for r in records:
        by_principle: dict[str, dict[str, float]] = {}
        for v in r.votes:
            # P(chosen better) as this order alone saw it, before clamping.
            by_principle.setdefault(v.principle_id, {})[v.order] = (
                v.p_a if v.order == "AB" else 1.0 - v.p_a
            )
        for orders in by_principle.values():
            if len(orders) == 2:
                total += 1
                agree += (orders["AB"] > 0.5) == (orders["BA"] > 0.5)
    from_file = [r.agrees_with_file for r in records if r.agrees_with_file is not None]
    return {
        "n_pairs": n,
        "n_votes": len(p_a),
        "p_chosen_mean": round(sum(r.p_chosen for r in records) / n, 4) if n else None,
        "p_chosen_histogram": hist,
        "identical_pairs": sum(r.chosen[0].content == r.rejected[0].content for r in records),
        "letter_bias": round(sum(p_a) / len(p_a) - 0.5, 4) if p_a else None,
        "mean_p_a": round(sum(p_a) / len(p_a), 4) if p_a else None,
        "order_agreement": round(agree / total, 4) if total else None,
        "agreement_with_file": round(sum(from_file) / len(from_file), 4) if from_file else None,
    }
