"""The SL-CAI stage: an initial answer, then rounds of critique → revision under sampled principles.

For each prompt the policy answers; then, for each of N rounds, a principle is drawn at random
with replacement (seeded per prompt, so the sequence does not depend on batching or resuming),
the model critiques its current answer under that principle's critique request and rewrites it
under the revision request, with worked examples from the constitution as earlier turns. Every
prompt of a chunk goes to the backend together at each step, so the stage costs about
`1 + 2 × rounds` batched generations per chunk, not prompts × rounds calls. Failed revisions are
flagged (see `checks`); the final answer is the last accepted one. Samples are written per
chunk, so a killed stage loses at most the chunk in flight.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field

from charter.backends.base import Backend
from charter.constitution.schema import (
    Constitution,
    CritiqueRevisionExample,
    Principle,
    PrinciplePool,
    select_principles,
)
from charter.evaluate.options import BENIGN_SETS
from charter.records import (
    AddedFields,
    Message,
    PromptRecord,
    Record,
    Sampling,
    SFTRecord,
    Strict,
    stable_id,
)
from charter.runs import JsonlWriter
from charter.sl.checks import check_revision

SAMPLES = "samples.jsonl"
SFT = "sft.jsonl"
SUMMARY = "summary.json"
HELPFUL = "helpful.jsonl"

# SLConfig fields that only shape the helpful answers mixed into sft.jsonl.
HELPFUL_MIX_FIELDS = (
    "helpful_ratio",
    "helpful_prompts",
    "contrast_prompts",
    "helpful_max_new_tokens",
    "helpful_langs",
)


class SLConfig(AddedFields):
    """Settings of the SL-CAI stage (the `sl` section of a run config)."""

    # Left out of the hashed dumps at their defaults: run folders made before them resume.
    ADDED: ClassVar[tuple[str, ...]] = ("retry_rejected",)

    rounds: int = Field(2, ge=1, description="Critique → revision rounds per prompt.")
    few_shot: int = Field(1, ge=0, description="Worked examples prepended to each critique.")
    lang: Literal["en", "ar"] = Field("en", description="Language of prompts and constitution.")
    langs: list[Literal["en", "ar"]] = Field(
        default_factory=list,
        description="Languages revised, each prompt under the constitution in its own language "
        "(its meta.lang; others: the first); `charter run` takes the prompts of each in turn. "
        "Empty: lang.",
    )
    chunk_size: int = Field(32, ge=1, description="Prompts taken through all rounds together.")
    max_growth: float = Field(4.0, gt=1.0, description="Reject revisions this many times longer.")
    helpful_ratio: float = Field(
        0.0, ge=0.0, description="Helpful answers mixed into sft.jsonl per revised sample."
    )
    helpful_prompts: str = Field(
        "builtin:helpful", description="Helpful prompts the policy answers for the mix."
    )
    contrast_prompts: str | None = Field(
        None,
        description="Benign prompts that look harmful (builtin:borderline), answered by the "
        "policy and mixed in with the helpful prompts, taken in turn, so that the model learns "
        "where declining stops; empty: none.",
    )
    helpful_max_new_tokens: int | None = Field(
        None,
        ge=1,
        description="Longest helpful answer mixed in; empty: the policy's max_new_tokens "
        "(answers cut short there teach the trained model shorter answers).",
    )
    helpful_langs: list[Literal["en", "ar"]] = Field(
        default_factory=list,
        description="Languages of the helpful prompts mixed in, taken in turn; empty: lang.",
    )
    topic_check: bool = Field(
        True,
        description="Reject revisions that refuse a benign request or no longer address it.",
    )
    decline_check: bool = Field(
        False,
        description="Reject revisions of a harmful (not benign-marked) request that do not "
        "decline it, by the refusal detector's patterns.",
    )
    retry_rejected: bool = Field(
        False,
        description="Rounds after the first go only to prompts none of whose revisions was "
        "accepted: each is another attempt at the initial answer (its own principle draw and "
        "seed), and a prompt stops at its first accepted revision. Off: every round revises the "
        "current answer again, as in the paper.",
    )
    principle_pool: PrinciplePool = Field(
        "all",
        description="Principles drawn for a prompt's critiques: all (the paper's uniform draw), "
        "harm (none tagged helpfulness) or matched (tagged with the prompt's harm category, "
        "else harm).",
    )

    def languages(self) -> list[str]:
        """The languages revised: `langs`, else `[lang]`."""
        return list(self.langs) or [self.lang]

    def revision_settings(self) -> dict[str, Any]:
        """The settings the revisions depend on (not the helpful mix's, which has its own
        manifest step): a changed mix does not redo an hour of revisions."""
        return self.model_dump(mode="json", exclude=set(HELPFUL_MIX_FIELDS))

    def helpful_sources(self) -> list[str]:
        """The prompt sources of the helpful mix: `helpful_prompts`, then `contrast_prompts`."""
        return [self.helpful_prompts, *([self.contrast_prompts] if self.contrast_prompts else [])]

    def of_language(self, lang: str) -> SLConfig:
        """These settings for one language's prompts (the sample ids a one-language run has)."""
        return self.model_copy(update={"lang": lang, "langs": []})


class SLRound(Strict):
    principle_id: str
    critique_request: str
    critique: str
    revision_request: str
    revision: str
    accepted: bool
    reason: str | None = None
    note: str | None = None


class SLSample(Record):
    id: str
    prompt_id: str
    messages: list[Message]
    initial: str
    rounds: list[SLRound]
    final: str
    revised: bool
    lang: str
    constitution: str
    constitution_sha256: str
    backend: str
    seed: int
    completion_tokens: int
    meta: dict[str, Any] = Field(default_factory=dict)
    reviser: str | None = Field(
        None, description="The critiquing and revising model, if not the policy."
    )


@dataclass
class SLRunStats:
    written: int = 0
    skipped: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def __add__(self, other: SLRunStats) -> SLRunStats:
        """Both runs' counts together (the languages of one stage)."""
        return SLRunStats(
            self.written + other.written,
            self.skipped + other.skipped,
            self.completion_tokens + other.completion_tokens,
            self.seconds + other.seconds,
        )


def sample_id(
    prompt: PromptRecord,
    constitution_sha: str,
    backend: str,
    cfg: SLConfig,
    sampling: Sampling,
    reviser: str | None = None,
) -> str:
    # Without a reviser, a principle selection or a changed check the id is what it was before
    # they existed (resumable old runs); the checks decide which revision a later round revises.
    extra = (
        *(() if reviser is None else (reviser,)),
        *(() if cfg.principle_pool == "all" else (cfg.principle_pool,)),
        *(() if cfg.topic_check else ("no-topic-check",)),
        *(("decline-check",) if cfg.decline_check else ()),
        *(("retry-rejected",) if cfg.retry_rejected else ()),
    )
    return stable_id(
        prompt.key(),
        constitution_sha,
        backend,
        cfg.rounds,
        cfg.few_shot,
        cfg.lang,
        sampling.model_dump(mode="json"),
        *extra,
    )


def draw_principles(
    principles: Sequence[Principle], prompt_key: str, seed: int, rounds: int
) -> list[Principle]:
    """The principle of each round for one prompt: uniform, with replacement, seeded per prompt."""
    rng = random.Random(int(stable_id(seed, prompt_key), 16))
    return [rng.choice(list(principles)) for _ in range(rounds)]


def draw_examples(
    examples: Sequence[CritiqueRevisionExample], prompt_key: str, seed: int, k: int
) -> list[CritiqueRevisionExample]:
    if k <= 0 or not examples:
        return []
    rng = random.Random(int(stable_id(seed, prompt_key, "few-shot"), 16))
    return rng.sample(list(examples), min(k, len(examples)))


def example_turns(examples: Sequence[CritiqueRevisionExample]) -> list[Message]:
    """Worked examples as earlier turns of the same conversation."""
    turns: list[Message] = []
    for e in examples:
        turns += [
            *e.messages,
            Message(role="user", content=e.critique_request),
            Message(role="assistant", content=e.critique),
            Message(role="user", content=e.revision_request),
            Message(role="assistant", content=e.revision),
        ]
    return turns


@dataclass
class _Work:
    """One prompt in flight through the rounds."""

    rid: str
    prompt: PromptRecord
    principles: list[Principle]
    prefix: list[Message]
    current: str = ""
    initial: str = ""
    tokens: int = 0
    rounds: list[SLRound] | None = None


def critique_and_revise(
    prompts: Sequence[PromptRecord],
    backend: Backend,
    constitution: Constitution,
    cfg: SLConfig,
    sampling: Sampling,
    writer: JsonlWriter,
    *,
    progress: bool = True,
    reviser: Backend | None = None,
) -> SLRunStats:
    """Run SL-CAI for every prompt not yet in `writer`; `constitution` must be in `cfg.lang`.

    `backend` (the policy) answers; `reviser`, when given, writes the critiques and revisions
    (the paper has the policy do both: the default)."""
    from tqdm.auto import tqdm

    principles = constitution.critique_principles()
    if not principles:
        from charter.errors import CharterError

        raise CharterError(
            f"constitution {constitution.name!r} has no critique/revision principles"
        )
    sha = constitution.compute_sha256()
    examples = constitution.few_shot.critique_revision
    reviser_spec = reviser.spec if reviser is not None else None
    work = []
    for p in prompts:
        rid = sample_id(p, sha, backend.spec, cfg, sampling, reviser_spec)
        if rid in writer.done:
            continue
        key = p.key()
        shots = draw_examples(examples, key, sampling.seed, cfg.few_shot)
        work.append(
            _Work(
                rid,
                p,
                draw_principles(
                    select_principles(principles, p.meta.get("category"), cfg.principle_pool),
                    key,
                    sampling.seed,
                    cfg.rounds,
                ),
                example_turns(shots),
            )
        )
    stats = SLRunStats(skipped=len(prompts) - len(work))
    started = time.perf_counter()
    steps = 1 + 2 * cfg.rounds
    with tqdm(
        total=len(prompts), initial=stats.skipped, unit="prompt", desc="sl", disable=not progress
    ) as bar:
        for start in range(0, len(work), cfg.chunk_size):
            chunk = work[start : start + cfg.chunk_size]
            for step in range(steps):
                bar.set_description_str(
                    f"sl {'answer' if step == 0 else ('critique' if step % 2 else 'revise')}"
                    f"{'' if step == 0 else f' r{(step + 1) // 2}'}"
                )
                _step(chunk, step, backend if step == 0 else reviser or backend, sampling, cfg)
                elapsed = time.perf_counter() - started
                done_tokens = sum(w.tokens for w in work)
                bar.set_postfix_str(f"{done_tokens / elapsed:.1f} tok/s", refresh=True)
            stats.written += writer.write(
                [_sample(w, constitution, sha, backend, sampling, cfg, reviser) for w in chunk]
            )
            bar.update(len(chunk))
    stats.completion_tokens = sum(w.tokens for w in work)
    stats.seconds = time.perf_counter() - started
    return stats


def _step(
    chunk: list[_Work], step: int, backend: Backend, sampling: Sampling, cfg: SLConfig
) -> None:
    """Step 0 answers; odd steps critique the current answer; even steps revise it. With
    `cfg.retry_rejected`, rounds after the first take only the prompts still unrevised, with a
    seed of their own (a retry under the same principle would otherwise repeat itself)."""
    if step >= 3 and cfg.retry_rejected:
        r = (step - 1) // 2
        if step % 2:  # critique: the prompts no round revised yet
            chunk = [w for w in chunk if not any(x.accepted for x in w.rounds or [])]
        else:  # revision: those critiqued in this round
            chunk = [w for w in chunk if len(w.rounds or []) == r + 1]
        sampling = sampling.model_copy(update={"seed": sampling.seed + r})
        if not chunk:
            return
    if step == 0:
        chats = [w.prompt.chat() for w in chunk]
    else:
        r = (step - 1) // 2
        chats = []
        for w in chunk:
            p = w.principles[r]
            assert p.critique is not None and p.revision is not None  # critique principles only
            chat = [
                *w.prefix,
                *w.prompt.chat(),
                Message(role="assistant", content=w.current),
                Message(role="user", content=p.critique),
            ]
            if step % 2 == 0:
                assert w.rounds is not None
                chat += [
                    Message(role="assistant", content=w.rounds[-1].critique),
                    Message(role="user", content=p.revision),
                ]
            chats.append(chat)
    completions = backend.generate(chats, sampling)
    for w, c in zip(chunk, completions, strict=True):
        w.tokens += c.completion_tokens
        if step == 0:
            w.initial = w.current = c.text.strip()
            w.rounds = []
            continue
        assert w.rounds is not None
        p = w.principles[(step - 1) // 2]
        if step % 2 == 1:
            w.rounds.append(
                SLRound(
                    principle_id=p.id,
                    critique_request=p.critique or "",
                    critique=c.text.strip(),
                    revision_request=p.revision or "",
                    revision="",
                    accepted=False,
                )
            )
        else:
            rnd = w.rounds[-1]
            check = check_revision(
                w.current,
                c.text,
                [rnd.critique_request, rnd.revision_request],
                max_growth=cfg.max_growth,
                examples=[m.content for m in w.prefix if m.role == "assistant"],
                request=w.prompt.chat()[-1].content if cfg.topic_check else None,
                # Only a prompt marked benign (a borderline or helpful set) may not be refused.
                harmful=w.prompt.meta.get("set") not in BENIGN_SETS,
                decline=cfg.decline_check,
            )
            rnd.revision, rnd.accepted, rnd.reason, rnd.note = (
                check.text,
                check.accepted,
                check.reason,
                check.note,
            )
            if check.accepted:
                w.current = check.text


def _sample(
    w: _Work,
    c: Constitution,
    sha: str,
    backend: Backend,
    sampling: Sampling,
    cfg: SLConfig,
    reviser: Backend | None,
) -> SLSample:
    rounds = w.rounds or []
    return SLSample(
        id=w.rid,
        prompt_id=w.prompt.key(),
        messages=w.prompt.chat(),
        initial=w.initial,
        rounds=rounds,
        final=w.current,
        revised=any(r.accepted for r in rounds),
        lang=cfg.lang,
        constitution=c.name,
        constitution_sha256=sha,
        backend=backend.spec,
        seed=sampling.seed,
        completion_tokens=w.tokens,
        meta=w.prompt.meta,
        reviser=reviser.spec if reviser is not None else None,
    )


def sft_rows(samples: Sequence[SLSample]) -> list[SFTRecord]:
    """prompt → final answer, for every sample with at least one accepted revision."""
    return [
        SFTRecord(
            id=s.id,
            messages=[*s.messages, Message(role="assistant", content=s.final)],
            meta={
                "source": "sl-cai",
                "prompt_id": s.prompt_id,
                "lang": s.lang,
                "principle_ids": [r.principle_id for r in s.rounds if r.accepted],
            },
        )
        for s in samples
        if s.revised
    ]


def summarize(
    samples: Sequence[SLSample], stats: SLRunStats, n_sft: int, n_helpful: int
) -> dict[str, Any]:
    """Counts and acceptance rates (overall, per principle, per round), reasons and speed."""
    per_principle: dict[str, Counter[str]] = defaultdict(Counter)
    per_round: dict[int, Counter[str]] = defaultdict(Counter)
    reasons: Counter[str] = Counter()
    for s in samples:
        for i, r in enumerate(s.rounds):
            for bucket in (per_principle[r.principle_id], per_round[i + 1]):
                bucket["rounds"] += 1
                bucket["accepted"] += int(r.accepted)
            if r.reason:
                reasons[r.reason] += 1

    def rate(c: Counter[str]) -> dict[str, float | int]:
        return {
            "rounds": c["rounds"],
            "accepted": c["accepted"],
            "acceptance_rate": round(c["accepted"] / c["rounds"], 4) if c["rounds"] else 0.0,
        }

    total = Counter[str]()
    for c in per_round.values():
        total.update(c)
    return {
        "n_samples": len(samples),
        "n_revised": sum(s.revised for s in samples),
        "acceptance_rate": rate(total)["acceptance_rate"],
        "rounds_total": total["rounds"],
        "rounds_accepted": total["accepted"],
        "per_principle": {k: rate(v) for k, v in sorted(per_principle.items())},
        "per_round": {str(k): rate(v) for k, v in sorted(per_round.items())},
        "rejection_reasons": dict(reasons.most_common()),
        "n_sft": n_sft,
        "n_helpful": n_helpful,
        "this_invocation": {
            "samples_written": stats.written,
            "samples_skipped": stats.skipped,
            "completion_tokens": stats.completion_tokens,
            "seconds": round(stats.seconds, 3),
        },
        "tokens_per_s": round(stats.completion_tokens / stats.seconds, 2)
        if stats.seconds > 0
        else None,
    }
