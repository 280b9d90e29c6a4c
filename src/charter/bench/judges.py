"""The judge's prompt formats compared: `charter evaluate mc --out DIR` results on the CAI paper's
HHH comparisons, one row per format, for `docs/results.md`.

`python -m charter.bench.report --add-judges NAME DIR...` records the `metrics.json` of each
`DIR` as `docs/bench/judges-NAME.json` (kind `judge_formats`) with the machine and commit; the
report renders each row with the command that reproduces it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from charter.bench.machine import machine, note_lines

KEEP = (
    "backend",
    "format",
    "examples",
    "questions",
    "n",
    "accuracy",
    "ci_low",
    "ci_high",
    "letter_bias",
    "ece",
    "seconds",
    "queries",
)


def judge_record(name: str, dirs: list[Path]) -> dict[str, Any]:
    rows = []
    for folder in dirs:
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        row = {k: metrics.get(k) for k in KEEP}
        row["data"] = Path(str(metrics.get("data", "438HHHEvaluations.jsonl"))).name
        if "swap" in metrics:
            s = metrics["swap"]
            row["both_orders"] = {
                k: s[k] for k in ("accuracy", "ci_low", "ci_high", "ece", "order_agreement")
            }
        rows.append(row)
    return {"kind": "judge_formats", "name": name, "rows": rows, "machine": machine(None)}


def command(row: dict[str, Any]) -> str:
    """The `charter evaluate mc` command of one row.

    >>> command({"backend": "embedded", "data": "x.jsonl", "format": "chat", "examples": 2,
    ...          "questions": 1, "n": 438, "both_orders": {}})
    'charter evaluate mc --model embedded --data x.jsonl --swap --format chat --examples 2'
    """
    parts = ["charter evaluate mc", f"--model {row['backend']}", f"--data {row['data']}"]
    if "both_orders" in row:
        parts.append("--swap")
    parts.append(f"--format {row['format']}")
    if row.get("examples"):
        parts.append(f"--examples {row['examples']}")
    if (row.get("questions") or 1) > 1:
        parts.append(f"--principles {row['questions']}")
    if row["n"] != 438:
        parts.append(f"--limit {row['n']}")
    return " ".join(parts)


def render_judges(result: dict[str, Any]) -> list[str]:
    lines = note_lines(result)
    lines += [
        "| format | items | accuracy, one order | both orders averaged | letter bias | "
        "orders agree | ECE (both) | s per query | command |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        b = r.get("both_orders") or {}
        asked = r.get("queries") or r["n"] * (2 if b else 1) * (r.get("questions") or 1)
        shape = r["format"] + (f", {r['examples']} examples" if r.get("examples") else "")
        if (r.get("questions") or 1) > 1:
            shape += f", {r['questions']} principles averaged"
        both = f"**{b['accuracy']:.3f}** [{b['ci_low']:.3f}, {b['ci_high']:.3f}]" if b else "–"
        agree = f"{b['order_agreement']:.0%}" if b else "–"
        ece = f"{b['ece']:.3f}" if b else "–"
        lines.append(
            f"| {shape} | {r['n']} | {r['accuracy']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] "
            f"| {both} | {r['letter_bias']:+.3f} | {agree} | {ece} | "
            f"{r['seconds'] / asked:.2f} | `{command(r)}` |"
        )
    return lines


def render_graders(result: dict[str, Any]) -> list[str]:
    """`charter evaluate classify --json` on a labelled set: F1 per verdict and language, with
    the refusal detector alone beside the graders."""

    def f1(s: dict[str, Any]) -> str:
        if s["f1"] is None:
            return "– (no positives)"
        lo, hi = s["f1_ci"]
        return (
            f"{s['f1']:.3f} [{lo:.3f}, {hi:.3f}] (P {s['precision']:.2f}, R {s['recall']:.2f}, "
            f"{s['positives']} pos.)"
        )

    v = result["validation"]
    lines = note_lines(result)
    lines += [
        f"Harm judge `{result['judge']}` (threshold {result['threshold']}). F1 with a "
        "bootstrap 95% interval (answers resampled), precision P, recall R and the number of "
        "answers so labelled. Command: `charter evaluate classify --answers "
        f"{Path(result['answers']).name} --judge {result['judge']} --json`.",
        "",
        "| answers | n | refusal F1 (graders) | refusal F1 (refusal detector alone) | "
        "harmful F1 | partial F1 | accuracy, 4 verdicts |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("all", "en", "ar"):
        if name in v:
            s = v[name]
            lines.append(
                f"| {name} | {s['n']} | {f1(s['refusal'])} | {f1(s['detector_refusal'])} | "
                f"{f1(s['harmful'])} | {f1(s['partial'])} | {s['accuracy']:.3f} |"
            )
    if "labellers" in v:
        a = v["labellers"]
        lines += [
            "",
            f"The two labelling passes agree on {a['agreement']:.1%} of {a['n']} answers "
            f"(Cohen's kappa {a['kappa']:.2f}).",
        ]
    return lines
