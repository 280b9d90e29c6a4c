"""Constitutional rewards for online RL, as plain callables TRL's GRPO and RLOO trainers accept.

TRL calls each reward function once per generation batch as
`f(prompts=..., completions=..., completion_ids=..., **columns)`, where `columns` are the
dataset's other columns (here `prompt_id`, `prompt_set` and `reference`) repeated per
completion, and expects one float per completion (None: this reward does not apply). The
trainer sums the rewards with their weights.

- `judge:SPEC`: the feedback model with the constitution, asked exactly as the RL-CAI labeller
  asks it (`charter.feedback.labeler.vote_pairs`): for each completion, K principles drawn by a
  seeded hash of (prompt, completion), each asked in both option orders. `versus="reference"`
  compares the completion with a reference answer (the starting model's own greedy answer to
  the prompt, written once before training): the reward is the debiased P(completion better).
  `versus="group"` compares every pair of completions of the same prompt (a GRPO group), all
  pairs of a batch in one backend call: the reward is the mean P(better) against the group's
  others. A judge that always says "A" gives every completion exactly 0.5 either way.
- `pm:DIR`: the preference model of `charter train rm` (its scalar score of the chat).
- `length:N`: −(completion tokens) / N.
- `refusal`: 1 when the refusal detector calls the completion a refusal, else 0. With weight 0
  (always added, as `refusal_monitor`) it only logs the refusal rate over training.

Every reward call is appended to a JSONL log (`rewards.jsonl`): per completion, the reward's
value and, for the judge, the principle ids, both orders' P(A) and the compared answer, so a
reward can be traced back to the constitution.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from charter.errors import ConfigError
from charter.records import Message, Strict, stable_id

KINDS = ("judge", "pm", "length", "refusal")


class RewardSpec(Strict):
    """One reward of an RL run: where it comes from, its weight and the prompts it applies to."""

    source: str = Field(description="judge:SPEC, pm:DIR, length:N or refusal.")
    weight: float = Field(1.0, description="Weight in the summed reward.")
    on: list[str] = Field(
        default_factory=list,
        description="Prompt sets or categories it applies to (e.g. red-team); empty: all.",
    )
    tags: list[str] = Field(
        default_factory=list,
        description="judge: only principles with one of these tags (e.g. helpfulness).",
    )
    principles: int = Field(2, ge=1, description="judge: principles drawn per comparison (K).")
    versus: Literal["reference", "group"] = Field(
        "reference",
        description="judge: against the starting model's answer, or the group's other samples.",
    )
    few_shot: int = Field(1, ge=0, description="judge: worked examples in each question.")
    format: Literal["raw", "chat", "pointwise"] = Field("chat", description="judge: prompt format.")
    model_options: dict[str, Any] = Field(
        default_factory=dict, description="judge: backend options of its model."
    )

    @field_validator("source")
    @classmethod
    def _known(cls, v: str) -> str:
        kind, _, arg = v.partition(":")
        if kind not in KINDS:
            raise ValueError(
                f"unknown reward {v!r}: expected one of judge:SPEC, pm:DIR, length:N, refusal"
            )
        if kind in ("judge", "pm") and not arg:
            raise ValueError(f"reward {v!r} needs its argument ({kind}:...)")
        if kind == "length" and not (arg.isdigit() and int(arg) > 0):
            raise ValueError(f"reward {v!r}: length:N needs a positive number of tokens")
        return v

    @property
    def kind(self) -> str:
        return self.source.partition(":")[0]

    @property
    def arg(self) -> str:
        return self.source.partition(":")[2]

    @property
    def name(self) -> str:
        """The reward's name in TRL's logs (`rewards/NAME/mean`)."""
        where = f"@{'+'.join(self.on)}" if self.on else ""
        tags = f"[{'+'.join(self.tags)}]" if self.tags else ""
        return f"{self.kind}{tags}{where}"


def parse_reward(text: str) -> RewardSpec:
    """A reward from its command-line form: the source, then `; key=value` options.

    >>> r = parse_reward("judge:embedded; weight=0.5; on=red-team,borderline; versus=group")
    >>> (r.kind, r.arg, r.weight, r.on, r.versus)
    ('judge', 'embedded', 0.5, ['red-team', 'borderline'], 'group')
    """
    source, *options = [part.strip() for part in text.split(";")]
    data: dict[str, Any] = {"source": source}
    for option in options:
        key, eq, value = option.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"reward {text!r}: option {option!r} is not key=value")
        key = key.strip()
        if key in ("on", "tags"):
            data[key] = [v.strip() for v in value.split(",") if v.strip()]
        else:
            data[key] = value.strip()
    try:
        return RewardSpec.model_validate(data)
    except ValueError as e:
        raise ConfigError(f"reward {text!r}: {e}") from None


class RewardLog:
    """Appends one JSON line per scored completion to a file (thread-safe; TRL may call async
    rewards from its own thread)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.step = 0
        # "train", or "held-out-before"/"held-out-after" while the held-out prompts are scored.
        self.phase = "train"
        # Seconds spent scoring since the last `take_seconds()` (for the step's time split).
        self.seconds = 0.0

    def take_seconds(self) -> float:
        with self._lock:
            s, self.seconds = self.seconds, 0.0
        return s

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        if self.path is None or not rows:
            return
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(text)


def _applies(
    spec: RewardSpec, sets: Sequence[str | None], cats: Sequence[str | None]
) -> list[bool]:
    if not spec.on:
        return [True] * len(sets)
    return [s in spec.on or c in spec.on for s, c in zip(sets, cats, strict=True)]


def _text(completion: Any) -> str:
    """A TRL completion (conversational: a list with one assistant message; or a string)."""
    if isinstance(completion, str):
        return completion
    return "".join(str(m.get("content", "")) for m in completion)


def _chat(prompt: Any) -> list[Message]:
    if isinstance(prompt, str):
        return [Message(role="user", content=prompt)]
    return [Message.model_validate(m) for m in prompt]


class Reward:
    """Base of the reward callables: the name TRL logs, the prompts it applies to, the log."""

    def __init__(self, spec: RewardSpec, log: RewardLog) -> None:
        self.spec = spec
        self.log = log
        self.__name__ = spec.name

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any
    ) -> list[float | None]:
        n = len(completions)
        applies = _applies(
            self.spec,
            columns.get("prompt_set") or [None] * n,
            columns.get("category") or [None] * n,
        )
        state = columns.get("trainer_state")
        step = int(getattr(state, "global_step", self.log.step) or 0)
        ids = columns.get("prompt_id") or [str(i) for i in range(n)]
        idx = [i for i in range(n) if applies[i]]
        t0 = time.perf_counter()
        values, details = self.score(
            [prompts[i] for i in idx], [completions[i] for i in idx], columns, idx
        )
        with self.log._lock:
            self.log.seconds += time.perf_counter() - t0
        out: list[float | None] = [None] * n
        rows = []
        for j, i in enumerate(idx):
            out[i] = values[j]
            rows.append(
                {
                    "step": step,
                    "phase": self.log.phase,
                    "reward": self.__name__,
                    "prompt_id": ids[i],
                    "completion": i,
                    "value": values[j],
                    **details[j],
                }
            )
        self.log.write(rows)
        return out

    def score(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        columns: dict[str, Any],
        idx: Sequence[int],
    ) -> tuple[list[float], list[dict[str, Any]]]:
        raise NotImplementedError


class LengthReward(Reward):
    """−(completion tokens) / N."""

    def score(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        columns: dict[str, Any],
        idx: Sequence[int],
    ) -> tuple[list[float], list[dict[str, Any]]]:
        n = int(self.spec.arg)
        ids = columns.get("completion_ids")
        lengths = (
            [len(ids[i]) for i in idx] if ids else [len(_text(c).split()) for c in completions]
        )
        return [-length / n for length in lengths], [{"tokens": x} for x in lengths]


class RefusalReward(Reward):
    """1 for a refusal (charter's refusal detector), else 0."""

    def score(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        columns: dict[str, Any],
        idx: Sequence[int],
    ) -> tuple[list[float], list[dict[str, Any]]]:
        from charter.evaluate.refusal import load_detector

        detector = load_detector()
        texts = [_text(c) for c in completions]
        verdicts = detector.predict(texts, None) if texts else []
        return [float(v.refusal) for v in verdicts], [{} for _ in verdicts]


class PMReward(Reward):
    """The scalar score of `charter train rm`'s preference model for the whole chat."""

    def __init__(self, spec: RewardSpec, log: RewardLog) -> None:
        super().__init__(spec, log)
        from charter.train.rm import PreferenceModel

        self.model = PreferenceModel(Path(spec.arg).expanduser())

    def score(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        columns: dict[str, Any],
        idx: Sequence[int],
    ) -> tuple[list[float], list[dict[str, Any]]]:
        chats = [
            [*_chat(p), Message(role="assistant", content=_text(c))]
            for p, c in zip(prompts, completions, strict=True)
        ]
        return self.model.score(chats), [{} for _ in chats]


class JudgeReward(Reward):
    """The constitution's debiased win probability, as the RL-CAI labeller computes it."""

    def __init__(
        self, spec: RewardSpec, log: RewardLog, backend: Any, constitution: Any, seed: int
    ) -> None:
        super().__init__(spec, log)
        from charter.feedback.labeler import LabelConfig

        self.backend = backend
        self.constitution = constitution
        self.principles = [
            p
            for p in constitution.comparison_principles()
            if not spec.tags or set(p.tags) & set(spec.tags)
        ]
        if not self.principles:
            raise ConfigError(
                f"reward {spec.source}: the constitution has no comparison principle tagged "
                f"{', '.join(spec.tags)}"
            )
        self.cfg = LabelConfig(
            principles_per_pair=spec.principles,
            few_shot=spec.few_shot,
            format=spec.format,
            seed=seed,
        )

    def _votes(self, pairs: list[Any]) -> list[tuple[float, dict[str, Any]]]:
        """Each pair's P(first better) and its votes, all pairs in one backend call."""
        from charter.feedback.labeler import soft_label, vote_pairs

        plans = vote_pairs(pairs, self.backend, self.constitution, self.cfg, None, self.principles)
        out = []
        for pv in plans:
            p, _ = soft_label(pv.p_a, None)
            votes = [
                {"principle_id": pid, "order": order, "p_a": round(p_a, 6)}
                for (pid, order), p_a in pv.p_a.items()
            ]
            out.append((p, {"principle_ids": [x.id for x in pv.principles], "votes": votes}))
        return out

    def score(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        columns: dict[str, Any],
        idx: Sequence[int],
    ) -> tuple[list[float], list[dict[str, Any]]]:
        from charter.feedback.labeler import PairRecord

        texts = [_text(c) for c in completions]
        chats = [_chat(p) for p in prompts]
        ids = columns.get("prompt_id")
        pids = [str(ids[i]) if ids else str(i) for i in idx]

        def pair(k: int, first: str, second: str) -> PairRecord:
            return PairRecord(
                id=stable_id(pids[k], first, second, length=16),
                prompt_id=pids[k],
                prompt=chats[k],
                responses=(first, second),
                source="policy",
            )

        if self.spec.versus == "reference":
            refs = columns.get("reference")
            if not refs:
                raise ConfigError(
                    f"reward {self.spec.source}: versus=reference needs a `reference` answer per "
                    "prompt (charter's RL trainers write one before training)"
                )
            scored = self._votes([pair(k, texts[k], str(refs[i])) for k, i in enumerate(idx)])
            return [p for p, _ in scored], [{**d, "versus": "reference"} for _, d in scored]
        return self._group(texts, pids, pair)

    def _group(
        self, texts: list[str], pids: list[str], pair: Any
    ) -> tuple[list[float], list[dict[str, Any]]]:
        """Mean P(better) of each completion against the others of its prompt's group."""
        groups: dict[str, list[int]] = {}
        for k, pid in enumerate(pids):
            groups.setdefault(pid, []).append(k)
        jobs = [(a, b) for ks in groups.values() for x, a in enumerate(ks) for b in ks[x + 1 :]]
        scored = self._votes([pair(a, texts[a], texts[b]) for a, b in jobs])
        wins: dict[int, list[float]] = {k: [] for k in range(len(texts))}
        details: dict[int, list[dict[str, Any]]] = {k: [] for k in range(len(texts))}
        for (a, b), (p, d) in zip(jobs, scored, strict=True):
            wins[a].append(p)
            wins[b].append(1.0 - p)
            details[a].append({"against": b, "p": p, **d})
            details[b].append({"against": a, "p": 1.0 - p, **d})
        # A completion alone in its group has nothing to be compared with: 0.5.
        values = [sum(w) / len(w) if w else 0.5 for w in (wins[k] for k in range(len(texts)))]
        return values, [{"versus": "group", "pairs": details[k]} for k in range(len(texts))]


def build_rewards(
    specs: Sequence[RewardSpec],
    log: RewardLog,
    *,
    pool: Any,
    constitution: Any,
    seed: int,
) -> list[Reward]:
    """The reward callables of `specs` (judges' backends from `pool`), plus a weight-0 refusal
    monitor so the refusal rate is logged over training whatever the rewards are."""
    rewards: list[Reward] = []
    for spec in specs:
        if spec.kind == "judge":
            rewards.append(
                JudgeReward(
                    spec,
                    log,
                    pool.get(spec.arg, spec.model_options, name="judge"),
                    constitution,
                    seed,
                )
            )
        elif spec.kind == "pm":
            rewards.append(PMReward(spec, log))
        elif spec.kind == "length":
            rewards.append(LengthReward(spec, log))
        else:
            rewards.append(RefusalReward(spec, log))
    if not any(s.kind == "refusal" and not s.on for s in specs):
        monitor = RewardSpec(source="refusal", weight=0.0)
        r = RefusalReward(monitor, log)
        r.__name__ = "refusal_monitor"
        rewards.append(r)
    return rewards


def reference_mode_needed(specs: Sequence[RewardSpec]) -> bool:
    return any(s.kind == "judge" and s.versus == "reference" for s in specs)
