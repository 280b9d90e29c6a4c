"""`charter evaluate --inspect-log DIR`: the evaluation as Inspect logs that `inspect view` opens.

One `.eval` log per model (an Inspect log holds one task and one model), written by Inspect's own
`write_eval_log`: task `charter/evaluate`, model `charter/SPEC`, one sample per answer with its
prompt, the answer, the refusal detector's verdict as the `refusal` score (1 = refused) and the
set, language and category as metadata; the log's results hold the model's headline metrics from
`metrics.json` (harmful compliance, over-refusal, each with its Wilson interval, and the Elo
ratings of each axis).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from charter.evaluate.answers import AnswerRecord
from charter.evaluate.options import ANSWERS, METRICS
from charter.jsonl import read_jsonl
from charter.redact import redact_spec


def _metrics(model: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in ("harmful_compliance", "over_refusal"):
        r = model.get(key) or {}
        for part in ("rate", "ci_low", "ci_high"):
            if r.get(part) is not None:
                out[key if part == "rate" else f"{key}_{part}"] = float(r[part])
    for axis, e in (model.get("elo") or {}).items():
        if e and e.get("rating") is not None:
            out[f"elo_{axis}"] = float(e["rating"])
    return out


def write_inspect_logs(eval_dir: Path, out: Path) -> list[Path]:
    """Write `out/<model>.eval` for each model of the evaluation in `eval_dir`."""
    from inspect_ai.log import (
        EvalConfig,
        EvalDataset,
        EvalLog,
        EvalMetric,
        EvalResults,
        EvalSample,
        EvalScore,
        EvalSpec,
        write_eval_log,
    )
    from inspect_ai.model import ModelOutput
    from inspect_ai.scorer import Score

    from charter.inspectai.provider import to_inspect

    metrics = json.loads((eval_dir / METRICS).read_text(encoding="utf-8"))
    answers = read_jsonl(eval_dir / ANSWERS, AnswerRecord)
    created = datetime.datetime.now(datetime.timezone.utc).isoformat()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model_metrics in metrics["models"].items():
        mine = [a for a in answers if a.model == name]
        spec = redact_spec(mine[0].spec) if mine else name
        samples = [
            EvalSample(
                id=f"{a.set}:{a.lang}:{a.prompt_id}",
                epoch=1,
                input=to_inspect(a.messages),
                target="",
                output=ModelOutput.from_content(model=f"charter/{spec}", content=a.answer),
                scores={
                    "refusal": Score(
                        value=1 if a.refusal else 0,
                        answer=a.answer,
                        metadata={
                            "p_refusal": a.p_refusal,
                            "pattern": a.refusal_pattern,
                            "method": a.refusal_method,
                        },
                    )
                },
                metadata={"set": a.set, "lang": a.lang, "category": a.category, "model": name},
            )
            for a in mine
        ]
        headline = {
            key: EvalMetric(name=key, value=value) for key, value in _metrics(model_metrics).items()
        }
        log = EvalLog(
            status="success",
            eval=EvalSpec(
                created=created,
                task="charter/evaluate",
                dataset=EvalDataset(name="charter evaluate", samples=len(samples)),
                model=f"charter/{spec}",
                config=EvalConfig(),
                metadata={"charter_model": name, "constitution": metrics.get("constitution")},
            ),
            results=EvalResults(
                total_samples=len(samples),
                completed_samples=len(samples),
                scores=[EvalScore(name="refusal", scorer="charter/refusal", metrics=headline)],
            ),
            samples=samples,
        )
        path = out / f"{name}.eval"
        write_eval_log(log, str(path))
        written.append(path)
    return written
