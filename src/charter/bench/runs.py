"""A `charter run`'s figures as a JSON record for `docs/results.md`, and its section there.

`python -m charter.bench.report --add-run runs/NAME` reads the run folder (its `manifest.json`,
`config.yaml` and `eval/metrics.json`) and writes `docs/bench/run-NAME.json`: the stages'
status, time and records, each model's harmful compliance, over-refusal and Elo ratings with
their intervals, the resolved config, and where the figures come from (the run's dates, the
machine that records it, charter's commit and the package versions of the manifest). Record a run
on the machine and checkout that ran it: the machine and commit are read when the record is made.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from charter.bench.machine import git_commit
from charter.errors import RunFolderError


def run_record(run_dir: Path) -> dict[str, Any]:
    """The record of the run in `run_dir` (see the module docstring)."""
    import yaml

    from charter.backends.threads import physical_cores

    manifest_path = run_dir / "manifest.json"
    if not manifest_path.exists():
        raise RunFolderError(f"{run_dir}: not a charter run folder (no manifest.json)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    metrics_path = run_dir / "eval" / "metrics.json"
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.exists() else {}
    stages = manifest.get("stages", {})
    finished = [s["finished_at"] for s in stages.values() if s.get("finished_at")]
    engines = [e for s in stages.values() for e in s.get("engines") or []]
    threads = sorted({e["threads"] for e in engines if e.get("threads") is not None})
    models = {}
    for name, m in (metrics.get("models") or {}).items():
        models[name] = {
            "harmful_compliance": m.get("harmful_compliance"),
            "over_refusal": m.get("over_refusal"),
            "elo": m.get("elo"),
        }
    return {
        "kind": "run",
        "run": run_dir.name,
        "stages": {
            k: {"status": s.get("status"), "seconds": s.get("seconds"), "records": s.get("records")}
            for k, s in stages.items()
        },
        "models": models,
        "config": config,
        "machine": {
            "date": (max(finished) if finished else manifest.get("created_at", ""))[:10] or None,
            "cpus": os.cpu_count(),
            "physical_cores": physical_cores(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "torch": (manifest.get("packages") or {}).get("torch"),
            # The threads the run's engines used, as its manifest recorded them.
            "torch_threads": "/".join(str(t) for t in threads) if threads else None,
            "commit": git_commit(),
            "packages": manifest.get("packages"),
        },
    }


def _rate(r: dict[str, Any] | None) -> str:
    if not r or r.get("rate") is None:
        return "-"
    return f"{r['rate']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}] (n={r['n']})"


def _elo(m: dict[str, Any], axis: str) -> str:
    e = (m.get("elo") or {}).get(axis)
    if not e or e.get("rating") is None:
        return "-"
    if e.get("ci_low") is None or e.get("ci_high") is None:
        return f"{e['rating']:.0f}"
    return f"{e['rating']:.0f} [{e['ci_low']:.0f}, {e['ci_high']:.0f}]"


def render_run(record: dict[str, Any]) -> list[str]:
    """The Markdown table lines of one run record (below its heading and provenance)."""
    lines = ["| stage | status | seconds | records |", "|---|---|---|---|"]
    for name, s in record["stages"].items():
        seconds = "-" if s.get("seconds") is None else f"{s['seconds']:.0f}"
        lines.append(f"| `{name}` | {s.get('status')} | {seconds} | {s.get('records')} |")
    if record["models"]:
        lines += [
            "",
            "| model | harmful compliance | over-refusal | Elo harmlessness | Elo helpfulness |",
            "|---|---|---|---|---|",
        ]
        for name, m in record["models"].items():
            lines.append(
                f"| `{name}` | {_rate(m.get('harmful_compliance'))} | "
                f"{_rate(m.get('over_refusal'))} | {_elo(m, 'harmlessness')} | "
                f"{_elo(m, 'helpfulness')} |"
            )
    return lines


def rl_record(out: Path, command: str) -> dict[str, Any]:
    """The record of an online RL run (`charter train grpo|rloo --out OUT`): held-out rewards,
    length and refusal rate before and after, KL, the step-time split, the warnings, and the
    command that ran it (`docs/bench/rl-NAME.json`)."""
    from charter.backends.threads import physical_cores

    path = out / "metrics.json"
    if not path.exists():
        raise RunFolderError(f"{out}: no metrics.json (run `charter train grpo|rloo` first)")
    m = json.loads(path.read_text(encoding="utf-8"))
    config = json.loads((out / "train_config.json").read_text(encoding="utf-8"))
    strip = ("answers",)
    return {
        "kind": "rl",
        "name": out.name,
        "command": command,
        "algorithm": m["kind"],
        "steps": m["steps"],
        "seconds_total": m.get("seconds_total"),
        "rows": m.get("rows"),
        "beta": m.get("beta"),
        "rewards": m.get("rewards"),
        "before": {k: v for k, v in (m.get("before") or {}).items() if k not in strip},
        "after": {k: v for k, v in (m.get("after") or {}).items() if k not in strip},
        "kl_last": m.get("kl_last"),
        "train_reward": {"first": m["curves"]["reward"][0], "last": m["curves"]["reward"][-1]}
        if m.get("curves", {}).get("reward")
        else None,
        "step_seconds": m.get("step_seconds"),
        "warnings": m.get("warnings", []),
        "peak_rss_mb": {"train": m["peak_rss_mb"]} if m.get("peak_rss_mb") else {},
        "machine": {
            "date": str(config.get("written_at", ""))[:10] or None,
            "cpus": os.cpu_count(),
            "physical_cores": physical_cores(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "torch": (config.get("packages") or {}).get("torch"),
            "torch_threads": m.get("torch_threads"),
            "commit": git_commit(),
        },
    }


def render_rl(record: dict[str, Any]) -> list[str]:
    """The Markdown lines of one online RL record."""

    def num(x: Any, fmt: str = ".3f") -> str:
        return "–" if x is None else format(x, fmt)

    b, a = record["before"], record["after"]
    lines = [
        f"`{record['command']}`: {record['steps']} steps of {record['algorithm'].upper()} on "
        f"{record['rows']} prompts in {num(record['seconds_total'], '.0f')} s, β = "
        f"{record['beta']}.",
        "",
        f"| held-out ({b.get('n', 0)} eval-split prompts, greedy) | before | after |",
        "|---|---|---|",
    ]
    for name, before in (b.get("rewards") or {}).items():
        lines.append(f"| reward `{name}` | {num(before)} | {num(a.get('rewards', {}).get(name))} |")
    lines += [
        f"| mean length (tokens) | {num(b.get('mean_length'), '.1f')} | "
        f"{num(a.get('mean_length'), '.1f')} |",
        f"| refusal rate | {num(b.get('refusal_rate'), '.2f')} | "
        f"{num(a.get('refusal_rate'), '.2f')} |",
    ]
    t = record.get("train_reward") or {}
    s = record.get("step_seconds") or {}
    lines += [
        "",
        f"Training reward (summed, weighted) {num(t.get('first'))} at the first step, "
        f"{num(t.get('last'))} at the last; KL to the start at the last step "
        f"{num(record.get('kl_last'), '.4f')}. A step took {num(s.get('rollout'), '.1f')} s of "
        f"rollout (the policy's generate), {num(s.get('scoring'), '.1f')} s of scoring (the "
        f"rewards) and {num(s.get('update'), '.1f')} s for the rest (log-probs, backward, "
        "optimizer), on average.",
    ]
    for w in record.get("warnings") or []:
        lines += ["", f"Warning recorded by the run: {w}"]
    return lines
