"""Summaries of weak-to-strong runs: `summary.json`, a markdown table and PNG plots.

Rows are grouped by (task, weak, strong, loss). Each row gives mean accuracies, the median PGR
across the seeds whose ceiling beats their weak model, and its bootstrap interval over test
resamples (`charter.w2s.pgr.median_pgr_interval`); excluded runs are listed with their reason.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from charter.runs import atomic_write_text
from charter.w2s.pgr import median_pgr_interval

SUMMARY = "summary.json"
TABLE = "summary.md"
PLOT = "w2s.png"


def _bits(s: str) -> list[bool]:
    return [c == "1" for c in s]


def summarize(results: Sequence[dict[str, Any]], *, n_boot: int = 2000) -> list[dict[str, Any]]:
    """One summary row per (task, weak, strong, loss)."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for r in results:
        limit = r.get("weak_train_limit")
        weak = r["weak"] + (f" (n={limit})" if limit is not None else "")
        groups.setdefault((r["task_name"], weak, r["strong"], r["loss"]), []).append(r)
    rows = []
    for (task, weak, strong, loss), runs in sorted(groups.items()):
        runs = sorted(runs, key=lambda r: r["seed"])
        included = [r for r in runs if not r.get("excluded")]
        if included:
            interval = median_pgr_interval(
                np.array([_bits(r["test_correct"]["weak"]) for r in included]),
                np.array([_bits(r["test_correct"]["student"]) for r in included]),
                np.array([_bits(r["test_correct"]["ceiling"]) for r in included]),
                n_boot=n_boot,
            )
            median, low, high = interval.median, interval.low, interval.high
        else:
            median = low = high = None
        rows.append(
            {
                "task": task,
                "weak": weak,
                "strong": strong,
                "loss": loss,
                "seeds": [r["seed"] for r in runs],
                "n_test": runs[0]["n_test"],
                "weak_acc": float(np.mean([r["weak_acc"] for r in runs])),
                "student_acc": float(np.mean([r["student_acc"] for r in runs])),
                "ceiling_acc": float(np.mean([r["ceiling_acc"] for r in runs])),
                "pgr_median": median,
                "pgr_low": low,
                "pgr_high": high,
                "pgr_per_seed": [r["pgr"] for r in runs],
                "excluded": [
                    {"seed": r["seed"], "reason": r["excluded"]} for r in runs if r.get("excluded")
                ],
            }
        )
    return rows


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table: accuracies in percent, median PGR [95% interval]."""
    lines = [
        "| task | weak → strong | loss | seeds | n_test | weak | student | ceiling | gap "
        "| median PGR [95% CI] |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gap = 100 * (r["ceiling_acc"] - r["weak_acc"])
        ci = f"{_fmt(r['pgr_median'])} [{_fmt(r['pgr_low'])}, {_fmt(r['pgr_high'])}]"
        n_ex = len(r["excluded"])
        seeds = f"{len(r['seeds'])}" + (f" ({n_ex} excluded)" if n_ex else "")
        lines.append(
            f"| {r['task']} | {r['weak']} → {r['strong']} | {r['loss']} | {seeds} | {r['n_test']} "
            f"| {100 * r['weak_acc']:.1f} | {100 * r['student_acc']:.1f} "
            f"| {100 * r['ceiling_acc']:.1f} | {gap:+.1f} | {ci} |"
        )
    notes = [
        f"- {r['task']} {r['weak']} → {r['strong']} {r['loss']} seed {e['seed']}: {e['reason']}"
        for r in rows
        for e in r["excluded"]
    ]
    if notes:
        lines += ["", "Excluded from PGR summaries:", *notes]
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Two panels: weak / student / ceiling accuracy per setting; median PGR per loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = sorted({(r["task"], r["weak"], r["strong"]) for r in rows})
    losses = sorted({r["loss"] for r in rows})
    by_key = {(r["task"], r["weak"], r["strong"], r["loss"]): r for r in rows}
    labels = [f"{t}\n{w}→{s}" for t, w, s in settings]
    x = np.arange(len(settings))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(8.0, 2.2 * len(settings) + 4), 4.2))
    width = 0.8 / (2 + len(losses))
    first = [next(by_key[(*st, lo)] for lo in losses if (*st, lo) in by_key) for st in settings]
    ax1.bar(x - 0.4 + width / 2, [100 * r["weak_acc"] for r in first], width, label="weak")
    for j, loss in enumerate(losses):
        vals = [
            100 * by_key[(*st, loss)]["student_acc"] if (*st, loss) in by_key else np.nan
            for st in settings
        ]
        ax1.bar(x - 0.4 + width * (j + 1.5), vals, width, label=f"student ({loss})")
    ax1.bar(
        x - 0.4 + width * (len(losses) + 1.5),
        [100 * r["ceiling_acc"] for r in first],
        width,
        label="ceiling",
    )
    ax1.set_xticks(x, labels, fontsize=7, rotation=20, ha="right")
    ax1.set_ylabel("test accuracy (%)")
    lows = [100 * r["weak_acc"] for r in first]
    ax1.set_ylim(max(0.0, min(lows) - 10), 100)
    ax1.legend(fontsize=7)
    ax1.set_title("accuracy (mean over seeds)", fontsize=9)
    width2 = 0.8 / max(1, len(losses))
    for j, loss in enumerate(losses):
        med, err_lo, err_hi = [], [], []
        for st in settings:
            r = by_key.get((*st, loss))
            m = r["pgr_median"] if r else None
            med.append(np.nan if m is None else m)
            err_lo.append(
                0.0 if m is None or r is None or r["pgr_low"] is None else m - r["pgr_low"]
            )
            err_hi.append(
                0.0 if m is None or r is None or r["pgr_high"] is None else r["pgr_high"] - m
            )
        ax2.bar(
            x - 0.4 + width2 * (j + 0.5), med, width2, yerr=[err_lo, err_hi], capsize=3, label=loss
        )
    ax2.axhline(0, color="black", linewidth=0.6)
    ax2.axhline(1, color="gray", linewidth=0.6, linestyle="--")
    ax2.set_xticks(x, labels, fontsize=7, rotation=20, ha="right")
    ax2.set_ylabel("median PGR (95% bootstrap CI)")
    ax2.legend(fontsize=7)
    ax2.set_title("performance gap recovered", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(results: Sequence[dict[str, Any]], out: Path) -> tuple[list[dict[str, Any]], str]:
    """Write `summary.json`, `summary.md` and `w2s.png` into `out`; return rows and table."""
    rows = summarize(results)
    table = format_table(rows)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / SUMMARY, json.dumps({"rows": rows}, indent=1) + "\n")
    atomic_write_text(out / TABLE, table)
    if rows:
        plot(rows, out / PLOT)
    return rows, table
