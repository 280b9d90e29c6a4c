"""Recipe ablations (issue #24): run folders → one generated table in `docs/results.md`.

`python -m charter.bench.report --add-ablation runs/NAME "COMMAND"` reads a finished run folder
and writes `docs/bench/ablation-NAME.json`: the command that made it, the commit and machine,
the stage times, and per trained model the goal figures of `charter.evaluate.goal` against the
base (harmful compliance, over-refusal, partial answers to benign prompts, the helpfulness win
rate, distinct-2 and length of helpful answers, the direction and the Pareto verdict), with the
sample sizes. Every ablation is one row per trained model in one table, so the effect of each
knob can be read against the others; a row names its command and commit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from charter.bench.runs import run_record
from charter.errors import RunFolderError


def ablation_record(run_dir: Path, command: str) -> dict[str, Any]:
    """The record of the finished run in `run_dir`, made by `command`."""
    import json

    from charter.evaluate.goal import goal

    metrics_path = run_dir / "eval" / "metrics.json"
    if not metrics_path.exists():
        raise RunFolderError(f"{run_dir}: no eval/metrics.json (the run has not finished)")
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    record = run_record(run_dir)
    g = metrics.get("goal") or goal(metrics)
    models: dict[str, Any] = {}
    for name, m in metrics["models"].items():
        entry = {
            key: m.get(key)
            for key in ("harmful_compliance", "over_refusal", "partial_benign", "helpful_answers")
        }
        entry["by_lang"] = {
            lang: {k: v.get(k) for k in ("harmful_compliance", "over_refusal", "partial_benign")}
            for lang, v in (m.get("by_lang") or {}).items()
        }
        if name in g["models"]:
            mine = g["models"][name]
            entry.update(
                checks={c["name"]: c["ok"] for c in mine["checks"]},
                details={c["name"]: c["detail"] for c in mine["checks"]},
                pareto=mine["pareto"],
                direction=mine["direction"],
                verdict=mine["verdict"],
            )
        models[name] = entry
    sl_path = run_dir / "sl" / "summary.json"
    sl = json.loads(sl_path.read_text(encoding="utf-8")) if sl_path.exists() else {}
    stages = record["stages"]
    # The code that made the run, as its manifest recorded it (runs before that was recorded:
    # "not recorded"); the commit at which the record was made is the machine's.
    packages = record["machine"].get("packages") or {}
    return {
        "kind": "ablation",
        "run": run_dir.name,
        "created_at": json.loads((run_dir / "manifest.json").read_text(encoding="utf-8")).get(
            "created_at"
        ),
        "command": command,
        "base": g["base"],
        "models": models,
        "sl": {k: sl.get(k) for k in ("n_samples", "acceptance_rate", "n_revised", "n_sft")},
        "stage_seconds": round(sum(s.get("seconds") or 0 for s in stages.values()), 1),
        "stages": stages,
        "config": record["config"],
        "run_commit": packages.get("charter_commit") or "not recorded",
        "machine": record["machine"],
    }


def _rate(r: dict[str, Any] | None) -> str:
    if not r or r.get("rate") is None:
        return "–"
    return f"{r['rate']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}] n={r['n']}"


def _mark(ok: bool | None) -> str:
    return "–" if ok is None else ("yes" if ok else "no")


def _win(detail: str | None) -> str:
    """The win rate and interval out of the helpfulness check's sentence."""
    if not detail or "win rate against base" not in detail:
        return "–"
    return detail.split("win rate against base ", 1)[1].split(" (n=")[0]


def render_ablations(records: dict[str, dict[str, Any]]) -> list[str]:
    """The Markdown of every ablation record: how to read it, then one table."""
    lines = [
        "Each row is one trained model of one `charter run`, against that run's base model",
        "(the same prompts, seed and judge). Rates with Wilson 95% intervals and their sample",
        "sizes; *partial*: lecturing or deflecting answers to benign prompts (the graders'",
        "patterns); *win*: the judge's helpfulness win rate against the base, both orders;",
        "*direction*: harmful compliance lower and over-refusal within 5 points of the base's;",
        "*Pareto*: every goal check of issue #24 (`charter.evaluate.goal`). Minutes: the sum of",
        "the run's stage times (see each file for whether the machine was quiet). SL: prompts",
        "with an accepted revision / SL prompts / SFT rows (revised + helpful). Commit: the",
        "code that ran, as the run's manifest recorded it (`+dirty`: with uncommitted changes).",
        "A command's `--preset quick` is that preset as it was at the run's code: runs made",
        "before commit a60a688, where the preset took this recipe, started from 16 SL prompts,",
        "the policy as reviser, principle pool `all`, no helpful mix, 8 SFT steps and",
        "`evaluate.limit=4`. Each file's `config` is the run's resolved config. Rows are in",
        "the order the runs were made.",
        "",
        "| run | command | model | harmful compliance | over-refusal | partial | win | "
        "distinct-2 / chars | direction | Pareto | SL accepted / SFT rows | min | commit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in sorted(records, key=lambda n: (records[n].get("created_at") or "", n)):
        r = records[name]
        base = r["models"][r["base"]]
        lines.append(
            f"| `{r['run']}` | `{r['command']}` | {r['base']} | "
            f"{_rate(base['harmful_compliance'])} | {_rate(base['over_refusal'])} | "
            f"{_rate(base.get('partial_benign'))} | | {_helpful(base)} | | | {_sl(r)} | "
            f"{r['stage_seconds'] / 60:.1f} | {r.get('run_commit') or '–'} |"
        )
        for model, m in r["models"].items():
            if model == r["base"]:
                continue
            lines.append(
                f"| | | {model} | {_rate(m['harmful_compliance'])} | "
                f"{_rate(m['over_refusal'])} | {_rate(m.get('partial_benign'))} | "
                f"{_win((m.get('details') or {}).get('helpfulness'))} | {_helpful(m)} | "
                f"{_mark(m.get('direction'))} | {_mark(m.get('pareto'))} | | | |"
            )
    return [*lines, "", *_by_language(records)]


def _by_language(records: dict[str, dict[str, Any]]) -> list[str]:
    """The same runs' harmful compliance and over-refusal in each language: whether a recipe
    holds in Arabic as well as English."""
    found = {lang for r in records.values() for m in r["models"].values() for lang in m["by_lang"]}
    langs = sorted(found, key=lambda lang: (lang != "en", lang))  # English first
    if not langs:
        return []
    head = [f"harmful {lang}" for lang in langs] + [f"over-refusal {lang}" for lang in langs]
    lines = [
        "Per language, the same runs (rate and sample size; intervals in each file):",
        "",
        "| run | model | " + " | ".join(head) + " |",
        "|---|---|" + "---|" * len(head),
    ]
    for name in sorted(records, key=lambda n: (records[n].get("created_at") or "", n)):
        r = records[name]
        for i, (model, m) in enumerate(r["models"].items()):
            by = m.get("by_lang") or {}
            cells = [
                _short(by.get(lang, {}).get(key))
                for key in ("harmful_compliance", "over_refusal")
                for lang in langs
            ]
            run = f"`{r['run']}`" if i == 0 else ""
            lines.append(f"| {run} | {model} | " + " | ".join(cells) + " |")
    return lines


def _short(r: dict[str, Any] | None) -> str:
    return "–" if not r or r.get("rate") is None else f"{r['rate']:.2f} n={r['n']}"


def _helpful(m: dict[str, Any]) -> str:
    h = m.get("helpful_answers") or {}
    if h.get("distinct_2") is None:
        return "–"
    return f"{h['distinct_2']:.2f} / {h['mean_chars']:.0f}"


def _sl(r: dict[str, Any]) -> str:
    """SL-CAI's accepted revisions of its prompts, and the SFT rows with the helpful mix."""
    sl = r.get("sl") or {}
    if sl.get("n_samples") is None:
        return "–"
    return f"{sl['n_revised']}/{sl['n_samples']} / {sl['n_sft']}"
