"""`docs/results.md` from the benchmark JSON files in `docs/bench/`: the figures are measured
by `charter bench ... --json`, never typed by hand.

Each file is one benchmark's `--json` output; its kind is told by its keys. For every kind the
table gives the engine measured, the torch fp32 baseline from the same process and run, their
ratio, and the target issue #17 set for it, with whether it was met. Each file is its own
section, which says where its figures come from: the date, the machine and charter's git commit
(recorded by the benchmarks since the `commit` key was added; "not recorded" before).

A file with `"kind": "run"` is a `charter run`'s record (`charter.bench.runs`): its stages and
its models' harmful compliance, over-refusal and Elo. `--add-run runs/NAME` writes one from a run
folder before rendering.

    python -m charter.bench.report [--bench-dir docs/bench] [--out docs/results.md]
                                   [--add-run RUN_DIR]... [--add-judges NAME DIR...]
                                   [--add-rl OUT COMMAND]... [--add-ablation RUN_DIR COMMAND]...

`--add-ablation` records a finished run as one row of the recipe ablation table
(`charter.bench.ablations`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charter.bench.ablations import ablation_record, render_ablations
from charter.bench.discrimination import render_discrimination
from charter.bench.judge_pools import render_judge_pools
from charter.bench.judges import judge_record, render_graders, render_judges
from charter.bench.machine import note_lines
from charter.bench.runs import render_rl, render_run, rl_record, run_record


@dataclass(frozen=True)
class Row:
    """One compared figure: the engine under test against torch fp32, same run."""

    what: str
    engine: str
    baseline: str
    ratio: float
    target: float

    @property
    def verdict(self) -> str:
        return "met" if self.ratio >= self.target else "**not met**"


def _engine(r: dict[str, Any]) -> str:
    return f"{r.get('engine', '?')} {r.get('compute_type') or ''}".strip()


def _faster(what: str, engine: float, baseline: float, target: float, digits: int = 1) -> Row:
    """A rate (tokens/s, queries/s: higher is better) against the baseline's."""
    return Row(what, f"{engine:.{digits}f}", f"{baseline:.{digits}f}", engine / baseline, target)


def _generate(r: dict[str, Any]) -> list[Row]:
    """`charter bench generate`: tokens/s of charter's stage, raw fp32 and bf16 `generate`.

    >>> rows = _generate({"engine": "ct2", "compute_type": "int8", "charter_tokens_per_s": 300,
    ...     "raw_tokens_per_s": 100, "raw_bf16_tokens_per_s": 150, "naive_tokens_per_s": 10})
    >>> [(row.ratio, row.verdict) for row in rows]
    [(3.0, 'met'), (2.0, 'met')]
    """
    a = r["charter_tokens_per_s"]
    what = "`bench generate`: tokens/s, charter stage vs raw `model.generate` fp32"
    rows = [_faster(what, a, r["raw_tokens_per_s"], 3.0)]
    if r.get("raw_bf16_tokens_per_s"):
        what = "`bench generate`: the same vs raw `model.generate` bf16"
        rows.append(_faster(what, a, r["raw_bf16_tokens_per_s"], 1.8))
    return rows


def _sl(r: dict[str, Any]) -> list[Row]:
    what = (
        f"`bench sl`: SL-CAI stage tokens/s ({r['n']} prompts, {r['rounds']} rounds, "
        f"{r['max_new_tokens']} new tokens)"
    )
    return [_faster(what, r["sl_tokens_per_s"], r["torch_sl_tokens_per_s"], 2.5)]


def _label(r: dict[str, Any]) -> list[Row]:
    what = (
        f"`bench label`: scoring queries/s ({r['pairs']} pairs, "
        f"{r['principles_per_pair']} principles, {r['few_shot']}-shot)"
    )
    return [_faster(what, r["stage_queries_per_s"], r["torch_queries_per_s"], 2.5, digits=2)]


def _mc(r: dict[str, Any]) -> list[Row]:
    """`charter bench mc`: seconds (lower is better), so the ratio is torch / engine.

    >>> rows = _mc({"engine": "ct2", "n": 4, "swap": True, "charter_seconds": 10.0,
    ...     "torch_seconds": 5.0, "charter_accuracy": 0.5, "torch_accuracy": 0.5})
    >>> rows[0].ratio, rows[0].verdict
    (0.5, '**not met**')
    """
    order = ", both orders" if r.get("swap") else ""
    return [
        Row(
            f"`bench mc`: seconds for {r['n']} items{order} (accuracy "
            f"{r['charter_accuracy']:.3f} vs {r['torch_accuracy']:.3f})",
            f"{r['charter_seconds']:.1f} s",
            f"{r['torch_seconds']:.1f} s",
            r["torch_seconds"] / r["charter_seconds"],
            3.0,
        )
    ]


KINDS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "charter_tokens_per_s": _generate,
    "sl_tokens_per_s": _sl,
    "stage_queries_per_s": _label,
    "charter_seconds": _mc,
}
TITLES = {
    "charter_tokens_per_s": "`charter bench generate`",
    "sl_tokens_per_s": "`charter bench sl`",
    "stage_queries_per_s": "`charter bench label`",
    "charter_seconds": "`charter bench mc`",
}


def kind_of(result: dict[str, Any]) -> str | None:
    """The key that tells a benchmark's kind (see `KINDS`); None for a kind not known here."""
    return next((key for key in KINDS if key in result), None)


def rows_of(result: dict[str, Any]) -> list[Row]:
    """The rows of one benchmark's JSON; an unknown kind gives none."""
    kind = kind_of(result)
    return KINDS[kind](result) if kind is not None else []


def provenance(result: dict[str, Any]) -> str:
    """When, where and from which commit a benchmark's figures come, and its peak memory.

    >>> provenance({"machine": {"cpus": 2, "physical_cores": 2, "torch": "2.13.0",
    ...     "torch_threads": 2, "date": "2026-12-06", "commit": "abc1234"}})
    'measured 2026-12-06 on 2 CPUs (2 physical), torch 2.13.0, 2 torch threads, commit abc1234'
    >>> provenance({"peak_rss_mb": {"load": 455.2}})
    'machine not recorded, date not recorded, commit not recorded; peak RSS load 455 MB'
    """
    m = result.get("machine") or {}
    if m:
        where = [f"{m.get('cpus', '?')} CPUs ({m.get('physical_cores', '?')} physical)"]
        if m.get("processor") or m.get("cpu"):
            where.append(str(m.get("processor") or m.get("cpu")))
        if m.get("cpu_capability"):
            where.append(f"{m['cpu_capability']} kernels")
        if "torch" in m:
            threads = m.get("torch_threads")
            where.append(f"torch {m['torch']}" + (f", {threads} torch threads" if threads else ""))
        if "python" in m:
            where.append(f"Python {m['python']}")
        date = m.get("date") or "on a date not recorded"
        text = f"measured {date} on {', '.join(where)}, commit {m.get('commit') or 'not recorded'}"
    else:
        text = "machine not recorded, date not recorded, commit not recorded"
    memory = result.get("peak_rss_mb") or {}
    if memory:
        text += "; peak RSS " + ", ".join(f"{k} {v:.0f} MB" for k, v in memory.items())
    return text


def render(results: dict[str, dict[str, Any]]) -> str:
    """Markdown for `docs/results.md` from `{file name: benchmark JSON}`."""
    lines = [
        "# Measured results",
        "",
        "Generated by `python -m charter.bench.report` from the `--json` output of each",
        "benchmark in `docs/bench/`; do not edit by hand. Every ratio compares the engine",
        "under test with transformers fp32 measured in the same process and run. Targets are",
        "issue #17's (ratios: higher is better). `charter run` sections are records of run",
        "folders (`--add-run`). Each section says when, on which machine and",
        "at which charter commit its figures were measured (files written before the",
        'benchmarks recorded the commit say "commit not recorded").',
    ]
    ablations = {n: r for n, r in results.items() if r.get("kind") == "ablation"}
    if ablations:
        lines += ["", "## Recipe ablations (issue #24)", ""]
        lines += render_ablations(ablations)
    for name in sorted(results):
        result = results[name]
        if name in ablations:
            continue
        if "validation" in result and "counts" in result:  # `evaluate classify --json`
            lines += ["", f"## Graders: `{Path(result['answers']).name}`", ""]
            lines += [f"`docs/bench/{name}`: {provenance(result)}.", ""]
            lines += render_graders(result)
            continue
        if result.get("kind") == "judge_formats":
            lines += ["", f"## The judge's prompt formats: `{result['name']}`", ""]
            lines += [f"`docs/bench/{name}`: {provenance(result)}.", ""]
            lines += render_judges(result)
            continue
        if result.get("kind") == "judge_pools":
            lines += ["", "## The judge on refusals and compliances: principle pools", ""]
            lines += [f"`docs/bench/{name}`: {provenance(result)}.", ""]
            lines += render_judge_pools(result)
            continue
        if result.get("kind") == "discrimination":
            lines += ["", "## Can the policy tell harmful from benign? (issue #24)", ""]
            lines += [f"`docs/bench/{name}`: {provenance(result)}.", ""]
            lines += render_discrimination(result)
            continue
        if result.get("kind") == "rl":
            lines += ["", f"## Online RL-CAI: `{result['name']}`", ""]
            lines += [f"`docs/bench/{name}`: {provenance(result)}.", ""]
            lines += render_rl(result)
            continue
        if result.get("kind") == "run":
            lines += ["", f"## `charter run`: `{result['run']}`", ""]
            lines += [f"`docs/bench/{name}`: {provenance(result)}.", ""]
            lines += render_run(result)
            continue
        kind = kind_of(result)
        title = TITLES[kind] if kind is not None else "Not a kind of benchmark this report knows"
        lines += ["", f"## {title}", ""]
        lines += [f"`docs/bench/{name}`: {provenance(result)}.", "", *note_lines(result)]
        rows = rows_of(result)
        if not rows:
            lines.append("No figures.")
            continue
        lines += [
            "| benchmark | engine | figure | torch fp32 | ratio | target | |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            lines.append(
                f"| {row.what} | {_engine(result)} | {row.engine} | {row.baseline} | "
                f"{row.ratio:.2f} | ≥ {row.target:g} | {row.verdict} |"
            )
    return "\n".join([*lines, ""])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench-dir", type=Path, default=Path("docs/bench"))
    parser.add_argument("--out", type=Path, default=Path("docs/results.md"))
    parser.add_argument(
        "--add-run",
        type=Path,
        action="append",
        default=[],
        metavar="RUN_DIR",
        help="First record this run folder's figures as BENCH_DIR/run-NAME.json.",
    )
    parser.add_argument(
        "--add-judges",
        nargs="+",
        default=None,
        metavar=("NAME", "DIR"),
        help="First record the `charter evaluate mc --out DIR` results as "
        "BENCH_DIR/judges-NAME.json (one row per DIR).",
    )
    parser.add_argument(
        "--add-rl",
        nargs=2,
        action="append",
        default=[],
        metavar=("OUT", "COMMAND"),
        help="First record `charter train grpo|rloo --out OUT` (run as COMMAND) as "
        "BENCH_DIR/rl-NAME.json.",
    )
    parser.add_argument(
        "--add-ablation",
        nargs=2,
        action="append",
        default=[],
        metavar=("RUN_DIR", "COMMAND"),
        help="First record the finished `charter run` in RUN_DIR (run as COMMAND) as "
        "BENCH_DIR/ablation-NAME.json, a row of the recipe ablation table.",
    )
    args = parser.parse_args(argv)
    for run_dir, command in args.add_ablation:
        target = args.bench_dir / f"ablation-{Path(run_dir).name}.json"
        record = ablation_record(Path(run_dir), command)
        target.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {target}")
    for out, command in args.add_rl:
        target = args.bench_dir / f"rl-{Path(out).name}.json"
        record = rl_record(Path(out), command)
        target.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {target}")
    if args.add_judges:
        name, *dirs = args.add_judges
        target = args.bench_dir / f"judges-{name}.json"
        record = judge_record(name, [Path(d) for d in dirs])
        target.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {target}")
    for run_dir in args.add_run:
        target = args.bench_dir / f"run-{run_dir.name}.json"
        target.write_text(json.dumps(run_record(run_dir), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {target}")
    results = {
        p.name: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(args.bench_dir.glob("*.json"))
    }
    args.out.write_text(render(results), encoding="utf-8")
    print(f"wrote {args.out} from {len(results)} benchmark files")


if __name__ == "__main__":
    main()
