"""`charter redteam`: attacker rounds against a primary target, then every other target measured
on the same attack set.

Folder layout (`--out DIR`):

- `attacks.jsonl`: one row per (attack, target): the prompt, category, round, the target's answer
  and the verdicts (refusal detector, judge, success). Appended per batch; resumable.
- `prompts.jsonl`: the kept attacks as `PromptRecord`s (`meta.set = "red-team"`), ready for
  `charter sl --prompts` or `charter generate --prompts`.
- `metrics.json`: attack success rate per target, overall, per round and per category with Wilson
  95% intervals; per-round attacker counts (generated, unusable, merged, kept); diversity.
- `state.json`: the config and each round's kept attacks, written before the target answers
  them, so `--resume` continues a killed round with the same attacks instead of new samples.

The first target drives the rounds (its successes decide the few-shot pool); the others answer
the final attack set, which is how the same attacks measure a model before and after training.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from charter.backends import check_spec
from charter.backends.base import Backend
from charter.backends.pool import BackendPool
from charter.constitution.load import load_constitution
from charter.errors import ConfigError, InputError, RunFolderError
from charter.jsonl import read_jsonl
from charter.records import (
    Message,
    PromptRecord,
    Record,
    Sampling,
    Strict,
    canonical_json,
    stable_id,
)
from charter.redteam import attack as A
from charter.redteam import judge as J
from charter.redteam.categories import select_categories
from charter.redteam.config import RedteamConfig
from charter.redteam.metrics import diversity, grouped_rates, rate
from charter.runs import JsonlWriter, atomic_write_text
from charter.stage import Stage, StageContext

ATTACKS = "attacks.jsonl"
PROMPTS = "prompts.jsonl"
METRICS = "metrics.json"
STATE = "state.json"


class AttackRecord(Record):
    """One attack answered by one target, with the verdicts (`attacks.jsonl`)."""

    id: str
    attack_id: str
    prompt: str
    category: str
    lang: str
    round: int
    few_shot_ids: list[str]
    target: str
    answer: str
    finish_reason: Literal["stop", "length"]
    refusal: bool
    p_refusal: float
    judge_principle: str
    p_complied: float
    score: float
    success: bool

    def attack(self) -> A.Attack:
        return A.Attack(
            id=self.attack_id,
            prompt=self.prompt,
            category=self.category,
            lang=self.lang,
            round=self.round,
            few_shot_ids=self.few_shot_ids,
        )


class RoundState(Strict):
    round: int
    generated: int
    unusable: int
    merged: int
    attacks: list[A.Attack]


class State(Strict):
    config: dict[str, Any]
    rounds: list[RoundState] = Field(default_factory=list)


Progress = Callable[[str, int], None]


def measure(
    attacks: Sequence[A.Attack],
    target: str,
    models: BackendPool,
    cfg: RedteamConfig,
    principles: Sequence[Any],
    detector: J.RefusalDetector,
    writer: JsonlWriter,
    on_batch: Callable[[int], None] | None = None,
) -> None:
    """Answer every attack not yet measured on `target`, judge the answers, append the rows."""
    pending = {row_id(a.id, target): a for a in attacks}
    todo = [pending[i] for i in writer.pending(pending)]
    sampling = Sampling(
        max_new_tokens=cfg.target_max_new_tokens,
        temperature=cfg.target_temperature,
        seed=cfg.seed,
    )
    for start in range(0, len(todo), cfg.batch_size):
        batch = todo[start : start + cfg.batch_size]
        answers = models.get(target).generate(
            [[Message(role="user", content=a.prompt)] for a in batch], sampling
        )
        texts = [c.text for c in answers]
        refusals = detector.predict(texts, [a.lang for a in batch])
        verdicts = J.judge_answers(
            models.get(cfg.judge),
            [(a.id, a.prompt, t) for a, t in zip(batch, texts, strict=True)],
            principles,
            seed=cfg.seed,
        )
        rows = [
            AttackRecord(
                id=row_id(a.id, target),
                attack_id=a.id,
                prompt=a.prompt,
                category=a.category,
                lang=a.lang,
                round=a.round,
                few_shot_ids=a.few_shot_ids,
                target=target,
                answer=c.text,
                finish_reason=c.finish_reason,
                refusal=r.refusal,
                p_refusal=round(float(r.p_refusal), 6),
                judge_principle=v.principle_id,
                p_complied=round(v.p_complied, 6),
                score=round(J.success_score(float(r.p_refusal), v.p_complied), 6),
                success=J.is_success(r.refusal, v, cfg.judge_threshold),
            )
            for a, c, r, v in zip(batch, answers, refusals, verdicts, strict=True)
        ]
        writer.write(rows)
        if on_batch is not None:
            on_batch(len(batch))


def row_id(attack: str, target: str) -> str:
    return stable_id(attack, target)


def run_redteam(
    cfg: RedteamConfig,
    out: str | Path,
    *,
    progress: bool = True,
    resume: bool = False,
    attacks_from: str | Path | None = None,
    backends: Mapping[str, Backend] | None = None,
    detector: J.RefusalDetector | None = None,
    embed: A.Embedder | None = None,
    pool: BackendPool | None = None,
) -> dict[str, Any]:
    """Run the attacker rounds (or take the attack set of an earlier run's `attacks.jsonl` with
    `attacks_from`), measure every target, write the folder; return the metrics.

    `backends` (spec → backend), `detector` and `embed` replace the ones the specs name, for
    tests and for callers that already hold the models; `pool` is the process's backend pool
    (one is made, and closed at the end, otherwise).
    """
    out = Path(out)
    for spec in {cfg.attacker, cfg.judge, *cfg.targets}:
        check_spec(spec)
    categories = select_categories(cfg.categories)
    constitution = load_constitution(cfg.constitution)
    principles = J.judge_principles(constitution)
    given = read_attack_set(attacks_from) if attacks_from is not None else None
    config = cfg.model_dump(mode="json") | {
        "attacks_from": None if attacks_from is None else str(attacks_from)
    }
    state = _open_state(out, config, resume)
    if embed is None:
        from charter.backends.embeddings import minilm

        embed = minilm
    if detector is None:
        detector = J.default_detector()
    # Each spec loaded once (attacker, target and judge may be one); freed when the run ends.
    models = pool if pool is not None else BackendPool(cfg.batch_size)
    models.given.update(backends or {})
    writer = JsonlWriter(out / ATTACKS, resume=resume)
    bar = _bar(progress)
    try:
        if given is None:
            _rounds(cfg, categories, state, out, models, principles, detector, writer, embed, bar)
            attacks = [a for r in state.rounds for a in r.attacks]
        else:
            attacks = given
        for target in cfg.targets:
            bar.set_description(f"target {target}")
            measure(attacks, target, models, cfg, principles, detector, writer, bar.update)
    finally:
        bar.close()
        if pool is None:
            models.close()
    rows = _read_rows(out)
    write_prompts(out / PROMPTS, attacks, rows, cfg.targets[0], attacker=cfg.attacker)
    metrics = compute_metrics(config, state, attacks, rows, cfg.targets, embed)
    atomic_write_text(out / METRICS, json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    return metrics


def _rounds(
    cfg: RedteamConfig,
    categories: Sequence[Any],
    state: State,
    out: Path,
    models: BackendPool,
    principles: Sequence[Any],
    detector: J.RefusalDetector,
    writer: JsonlWriter,
    embed: A.Embedder,
    bar: Any,
) -> None:
    primary = cfg.targets[0]
    for r in range(1, cfg.rounds + 1):
        pool = _pool(state, out, primary)
        if len(state.rounds) < r:
            bar.set_description(f"round {r}: attacker")
            state.rounds.append(_attack_round(cfg, r, categories, state, pool, models, embed))
            atomic_write_text(out / STATE, state.model_dump_json(indent=2) + "\n")
        bar.set_description(f"round {r}: target")
        measure(
            state.rounds[r - 1].attacks,
            primary,
            models,
            cfg,
            principles,
            detector,
            writer,
            bar.update,
        )


def _attack_round(
    cfg: RedteamConfig,
    r: int,
    categories: Sequence[Any],
    state: State,
    pool: Sequence[A.Scored],
    models: BackendPool,
    embed: A.Embedder,
) -> RoundState:
    plan = A.plan_round(
        r,
        categories,
        cfg.per_round,
        pool,
        lang=cfg.lang,
        few_shot=cfg.few_shot,
        temperature=cfg.pool_temperature,
        seed=cfg.seed,
    )
    sampling = Sampling(
        max_new_tokens=cfg.attacker_max_new_tokens,
        temperature=cfg.attacker_temperature,
        top_p=cfg.attacker_top_p,
        seed=int(stable_id(cfg.seed, r, length=8), 16),
    )
    completions = models.get(cfg.attacker).generate(plan.chats, sampling)
    cleaned = [A.clean_attack(c.text) for c in completions]
    usable = [i for i, t in enumerate(cleaned) if t is not None]
    earlier = [a.prompt for s in state.rounds for a in s.attacks]
    kept_before = np.asarray(embed(earlier), dtype=np.float32) if earlier else np.zeros((0, 1))
    texts = [cleaned[i] or "" for i in usable]
    keep, _ = A.merge_near_duplicates(texts, kept_before, embed, cfg.dedup_threshold)
    attacks = []
    for j in keep:
        i = usable[j]
        category = plan.categories[i].id
        attacks.append(
            A.Attack(
                id=A.attack_id(cfg.lang, category, texts[j]),
                prompt=texts[j],
                category=category,
                lang=cfg.lang,
                round=r,
                few_shot_ids=plan.few_shot_ids[i],
            )
        )
    return RoundState(
        round=r,
        generated=len(completions),
        unusable=len(completions) - len(usable),
        merged=len(usable) - len(keep),
        attacks=attacks,
    )


def _pool(state: State, out: Path, primary: str) -> list[A.Scored]:
    """Every kept attack so far with its score on the primary target."""
    if not state.rounds:
        return []
    scores = {row.attack_id: row.score for row in _read_rows(out) if row.target == primary}
    return [A.Scored(a, scores[a.id]) for s in state.rounds for a in s.attacks if a.id in scores]


def _read_rows(out: Path) -> list[AttackRecord]:
    """The rows written so far (none when no attack was kept yet)."""
    path = out / ATTACKS
    return read_jsonl(path, AttackRecord) if path.exists() else []


def _open_state(out: Path, config: dict[str, Any], resume: bool) -> State:
    path = out / STATE
    if out.exists() and any(out.iterdir()):
        if not resume:
            raise RunFolderError(f"{out} is not empty; pass --resume to continue its run")
        if path.exists():
            try:
                state = State.model_validate_json(path.read_text(encoding="utf-8"))
            except ValueError as e:
                raise RunFolderError(f"{path}: unreadable ({e})") from None
            # The batch size changes how fast, not what: a resumed run may pick another.
            changed = sorted(
                k
                for k in config.keys() | state.config.keys()
                if k != "batch_size"
                and canonical_json(config.get(k)) != canonical_json(state.config.get(k))
            )
            if changed:
                raise ConfigError(
                    f"{out} holds a run with other settings ({', '.join(changed)}); "
                    "resume with the same options or use a new --out"
                )
            return state
    out.mkdir(parents=True, exist_ok=True)
    state = State(config=config)
    atomic_write_text(path, state.model_dump_json(indent=2) + "\n")
    return state


def read_attack_set(path: str | Path) -> list[A.Attack]:
    """The distinct attacks of an earlier run's `attacks.jsonl`, in file order."""
    rows = read_jsonl(path, AttackRecord)
    if not rows:
        raise InputError(path, None, "holds no attacks")
    return list({row.attack_id: row.attack() for row in rows}.values())


def write_prompts(
    path: Path,
    attacks: Sequence[A.Attack],
    rows: Sequence[AttackRecord],
    primary: str,
    *,
    attacker: str,
) -> None:
    """The attack set as `PromptRecord`s, for `charter sl --prompts` (written whole or not)."""
    outcome = {r.attack_id: r for r in rows if r.target == primary}
    lines = []
    for a in attacks:
        row = outcome.get(a.id)
        meta: dict[str, Any] = {
            "lang": a.lang,
            "set": "red-team",
            "category": a.category,
            "source": "charter-redteam",
            "round": a.round,
            "attacker": attacker,
            "success": None if row is None else row.success,
            "score": None if row is None else row.score,
        }
        record = PromptRecord(id=a.id, prompt=a.prompt, meta=meta)
        lines.append(canonical_json(record.model_dump(mode="json", exclude_none=True)))
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def compute_metrics(
    config: dict[str, Any],
    state: State,
    attacks: Sequence[A.Attack],
    rows: Sequence[AttackRecord],
    targets: Sequence[str],
    embed: A.Embedder,
) -> dict[str, Any]:
    """Success rates per target (overall, per round, per category) and the attack set's shape."""
    ids = {a.id for a in attacks}
    per_target: dict[str, Any] = {}
    for target in targets:
        mine = [r for r in rows if r.target == target and r.attack_id in ids]
        per_target[target] = {
            "attack_success": rate(sum(r.success for r in mine), len(mine)),
            "refusal_rate": rate(sum(r.refusal for r in mine), len(mine)),
            "judge_complied_rate": rate(
                sum(r.p_complied > config["judge_threshold"] for r in mine), len(mine)
            ),
            "by_round": grouped_rates(mine, key=lambda r: str(r.round), hit=lambda r: r.success),
            "by_category": grouped_rates(mine, key=lambda r: r.category, hit=lambda r: r.success),
        }
    return {
        "config": config,
        "n_attacks": len(attacks),
        "rounds": [
            s.model_dump(exclude={"attacks"}) | {"kept": len(s.attacks)} for s in state.rounds
        ],
        "targets": per_target,
        "diversity": diversity([a.prompt for a in attacks], [str(a.round) for a in attacks], embed),
    }


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_description(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(progress: bool) -> Any:
    if not progress:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(unit="attack", desc="red-team", dynamic_ncols=True)


__all__ = [
    "AttackRecord",
    "Progress",
    "RedteamConfig",
    "attack_success",
    "compute_metrics",
    "read_attack_set",
    "run_redteam",
]


def attack_success(
    attacks_file: str | Path,
    target_specs: Sequence[str],
    out: str | Path,
    *,
    judge: str = "embedded",
    constitution: str = "udhr",
    progress: bool = True,
    resume: bool = False,
    backends: Mapping[str, Backend] | None = None,
    detector: J.RefusalDetector | None = None,
    embed: A.Embedder | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Attack success of an earlier run's attack set on each target (e.g. before and after CAI):
    `{target: {"attack_success": {k, n, rate, ci95}, "by_round": …, "by_category": …}}`."""
    cfg = RedteamConfig(
        targets=list(target_specs), judge=judge, constitution=constitution, **options
    )
    metrics = run_redteam(
        cfg,
        out,
        progress=progress,
        resume=resume,
        attacks_from=attacks_file,
        backends=backends,
        detector=detector,
        embed=embed,
    )
    targets: dict[str, Any] = metrics["targets"]
    return targets


class RedteamInputs(BaseModel):
    """Besides the config: an earlier run's `attacks.jsonl` to re-measure instead of attacking."""

    attacks_from: Path | None = None


class RedteamResult(BaseModel):
    """The metrics `metrics.json` holds."""

    metrics: dict[str, Any]


def run_redteam_stage(
    ctx: StageContext, inputs: RedteamInputs, cfg: RedteamConfig
) -> RedteamResult:
    """The `redteam` stage: `run_redteam` into `ctx.out` with the process's backend pool."""
    metrics = run_redteam(
        cfg,
        ctx.out,
        progress=ctx.progress,
        resume=ctx.resume,
        attacks_from=inputs.attacks_from,
        pool=ctx.pool,
    )
    return RedteamResult(metrics=metrics)


REDTEAM: Stage[RedteamInputs, RedteamConfig, RedteamResult] = Stage(
    "redteam", RedteamConfig, run_redteam_stage, "an attacker model red-teams target models"
)
