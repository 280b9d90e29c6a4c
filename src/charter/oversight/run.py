"""`charter oversight run`: plan the units, run them in resumable batches, summarise.

Outputs (in the run folder): `transcripts.jsonl` (one `Transcript` per unit, written per batch,
ids derived from the question, the assignment, the config and the judge, so `--resume` skips
finished units), `metrics.json`, `accuracy.png` and `calibration.png`, plus the run folder's
`config.yaml` and `manifest.json`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from charter.backends.base import Backend
from charter.jsonl import read_jsonl
from charter.oversight.metrics import (
    bootstrap_interval,
    calibration,
    consultancy_accuracy,
    decision_score,
    elo_from_wins,
    position_averaged,
)
from charter.oversight.protocols import OversightConfig, Transcript, plan_units, run_units
from charter.oversight.questions import OversightQuestion
from charter.records import stable_id
from charter.runs import JsonlWriter, RunFolder, atomic_write_text
from charter.stage import Stage, StageContext

TRANSCRIPTS = "transcripts.jsonl"
METRICS = "metrics.json"


def summarize(transcripts: Sequence[Transcript], *, seed: int = 0) -> dict[str, Any]:
    """Per protocol: judge accuracy (questions' decisions after averaging p(correct) over answer
    orders and assignments; consultancy averaged over the correct and the incorrect consultant)
    with a 95% bootstrap interval over questions, the per-transcript accuracy, calibration, the
    judge's lean towards `A`, quote statistics; and debater Elo when debaters met in cross-play."""
    by_protocol: dict[str, list[Transcript]] = defaultdict(list)
    for t in transcripts:
        by_protocol[t.protocol].append(t)
    out: dict[str, Any] = {}
    for protocol, rows in by_protocol.items():
        row: dict[str, Any] = {}
        if protocol == "consultancy":
            sides: dict[str, dict[str, list[float]]] = {"correct": {}, "incorrect": {}}
            for t in rows:
                assert t.consultant_side is not None  # consultancy transcripts always have one
                sides[t.consultant_side].setdefault(t.question_id, []).append(t.p_correct)
            scores, honest, dishonest = consultancy_accuracy(sides["correct"], sides["incorrect"])
            row["accuracy_correct_consultant"] = round(honest, 4)
            row["accuracy_incorrect_consultant"] = round(dishonest, 4)
        else:
            grouped: dict[str, list[float]] = {}
            for t in rows:
                grouped.setdefault(t.question_id, []).append(t.p_correct)
            scores = position_averaged(grouped)
        row["accuracy"] = bootstrap_interval(
            [scores[q] for q in sorted(scores)], seed=seed
        ).as_dict()
        row["transcript_accuracy"] = round(
            sum(decision_score(t.p_correct) for t in rows) / len(rows), 4
        )
        row["transcripts"] = len(rows)
        row["mean_p_correct"] = round(sum(t.p_correct for t in rows) / len(rows), 4)
        row["mean_p_a"] = round(sum(t.p_a for t in rows) / len(rows), 4)
        row["calibration"] = calibration([t.p_correct for t in rows]).as_dict()
        if protocol in ("consultancy", "debate"):
            row["quotes"] = _quote_stats(rows)
        if protocol == "debate":
            elo = _cross_play(rows)
            if elo:
                row["cross_play"] = elo
        out[protocol] = row
    return out


def _quote_stats(rows: Sequence[Transcript]) -> dict[str, Any]:
    """How many quotes each side made and how many were verified."""
    stats = {side: {"quotes": 0, "verified": 0} for side in ("correct", "incorrect")}
    for t in rows:
        for turn in t.turns:
            letter = t.consultant_letter if turn.speaker == "consultant" else turn.speaker
            side = "correct" if letter == t.correct_letter else "incorrect"
            stats[side]["quotes"] += len(turn.quotes)
            stats[side]["verified"] += sum(q.verified for q in turn.quotes)
    return stats


def _cross_play(rows: Sequence[Transcript]) -> dict[str, Any] | None:
    """Win table by judge approval (each debate adds p(judge picks X's answer) to X's wins) and
    Elo ratings from it; self-play debates are left out. None with fewer than two debaters."""
    names = sorted({spec for t in rows for spec in t.debaters.values()})
    if len(names) < 2:
        return None
    index = {n: i for i, n in enumerate(names)}
    wins = [[0.0] * len(names) for _ in names]
    for t in rows:
        a, b = index[t.debaters["A"]], index[t.debaters["B"]]
        if a != b:
            wins[a][b] += t.p_a
            wins[b][a] += 1 - t.p_a
    # One virtual drawn game per pair keeps a debater that lost every debate at a finite rating.
    ratings = elo_from_wins(wins, prior=1.0)
    return {
        "debaters": names,
        "wins": [[round(w, 4) for w in r] for r in wins],
        "elo": {n: round(r, 1) for n, r in zip(names, ratings, strict=True)},
    }


def run_oversight(
    questions: Sequence[OversightQuestion],
    config: OversightConfig,
    judge: Backend,
    debaters: Mapping[str, Backend],
    out: Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    batch_units: int = 16,
    progress: bool = True,
    data_spec: str = "",
) -> dict[str, Any]:
    """Run every unit not yet in `out/transcripts.jsonl`, then write metrics and plots."""
    from tqdm.auto import tqdm

    from charter.oversight.plots import plot_calibration, plot_protocol_accuracy

    run_config = {
        "oversight": config.model_dump(),
        "data": data_spec,
        "questions": stable_id([q.model_dump() for q in questions]),
        "judge": judge.spec,
        "debaters": sorted(debaters),
    }
    run = RunFolder.open(out, run_config, resume=resume, overwrite=overwrite)
    input_hash = stable_id(run_config)
    run.begin_stage(
        "oversight", input_hash, [TRANSCRIPTS, METRICS, "accuracy.png", "calibration.png"]
    )
    units = plan_units(questions, config, sorted(debaters))
    ids = [u.unit_id(config, judge.spec) for u in units]
    writer = JsonlWriter(out / TRANSCRIPTS, resume=True)
    todo = [u for u, i in zip(units, ids, strict=True) if i not in writer.done]
    speeches = sum(_speech_count(u.protocol, config.rounds) for u in todo)
    written = 0
    try:
        with tqdm(
            total=len(todo) + speeches, desc="oversight", unit="call", disable=not progress
        ) as bar:
            for start in range(0, len(todo), batch_units):
                batch = todo[start : start + batch_units]
                records = run_units(batch, judge, debaters, config, on_speech=bar.update)
                written += writer.write(records)
                bar.update(len(batch))
    except BaseException as e:
        run.fail_stage("oversight", written, f"{type(e).__name__}: {e}")
        raise
    wanted = set(ids)
    transcripts = [t for t in read_jsonl(out / TRANSCRIPTS, Transcript) if t.id in wanted]
    metrics = {
        "judge": judge.spec,
        "debaters": sorted(debaters),
        "data": data_spec,
        "n_questions": len(questions),
        "config": config.model_dump(),
        "protocols": summarize(transcripts, seed=config.seed),
    }
    atomic_write_text(out / METRICS, json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    plot_protocol_accuracy(metrics, out / "accuracy.png")
    plot_calibration(metrics, out / "calibration.png")
    run.finish_stage("oversight", len(transcripts))
    return metrics


def _speech_count(protocol: str, rounds: int) -> int:
    return {"debate": 2 * rounds, "consultancy": rounds}.get(protocol, 0)


def format_summary(metrics: dict[str, Any]) -> str:
    """A markdown table of judge accuracy per protocol."""
    lines = [
        "| protocol | judge accuracy [95% CI] | per transcript | mean p(correct) | mean p(A) "
        "| ECE |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in metrics["protocols"].items():
        acc = row["accuracy"]
        extra = ""
        if name == "consultancy":
            extra = (
                f" (correct consultant {row['accuracy_correct_consultant']:.1%}, "
                f"incorrect {row['accuracy_incorrect_consultant']:.1%})"
            )
        lines.append(
            f"| {name} | {acc['value']:.1%} [{acc['low']:.1%}, {acc['high']:.1%}]{extra} | "
            f"{row['transcript_accuracy']:.1%} | {row['mean_p_correct']:.3f} | "
            f"{row['mean_p_a']:.3f} | {row['calibration']['ece']:.3f} |"
        )
    return "\n".join(lines) + "\n"


class OversightInputs(BaseModel):
    """What the judge judges: the questions, the judge's and the debaters' backend specs, and
    where the questions came from (recorded in the metrics)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    questions: list[OversightQuestion]
    judge: str
    debaters: list[str] = Field(default_factory=list)
    batch_units: int = 16
    data_spec: str = ""


class OversightResult(BaseModel):
    """The metrics `metrics.json` holds."""

    metrics: dict[str, Any]


def run_oversight_stage(
    ctx: StageContext, inputs: OversightInputs, cfg: OversightConfig
) -> OversightResult:
    """The `oversight` stage: `run_oversight` into `ctx.out`, each model from the pool (a spec
    that is judge and debater loads once)."""
    metrics = run_oversight(
        inputs.questions,
        cfg,
        ctx.pool.get(inputs.judge),
        {spec: ctx.pool.get(spec) for spec in inputs.debaters},
        ctx.out,
        resume=ctx.resume,
        overwrite=ctx.overwrite,
        batch_units=inputs.batch_units,
        progress=ctx.progress,
        data_spec=inputs.data_spec,
    )
    return OversightResult(metrics=metrics)


OVERSIGHT: Stage[OversightInputs, OversightConfig, OversightResult] = Stage(
    "oversight", OversightConfig, run_oversight_stage, "debate and consultancy before a judge"
)
