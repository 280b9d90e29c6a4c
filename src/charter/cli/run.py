"""`charter run` (the whole pipeline, in charter.pipeline) and `charter runs list|show`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from charter.cli.options import JSON, PROGRESS, REDO, echo_result
from charter.cli.vocabulary import CharterGroup

if TYPE_CHECKING:
    from charter.pipeline import PipelineResult


@click.command()
@click.option(
    "--preset",
    type=click.Choice(["quick", "default"]),
    default=None,
    help="Settings preset: quick (minutes on a CPU) or default (1-2 hours on a 2-core CPU) "
    "[default: quick; with --resume --name, the run's own config].",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML file overlaid on the preset.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one config key, e.g. sl.rounds=3 or train.sft.learning_rate=1e-4 "
    "(repeatable; every stage option, under its `charter <stage>` flag name).",
)
@click.option("--name", default=None, help="Run folder name (default: the config's name).")
@click.option(
    "--constitution",
    "constitution_spec",
    default=None,
    help="Builtin name, YAML/JSON file or collective:DIR (overrides the config's).",
)
@click.option("--policy", default=None, help="Backend spec of the policy (generation.model).")
@click.option(
    "--reviser",
    default=None,
    help="Backend spec of SL-CAI's critic and reviser, or `teacher`: the strongest installed "
    "offline model, as for --feedback (default: the preset's; without one, the policy, as in "
    "the paper).",
)
@click.option(
    "--feedback",
    default=None,
    help="Backend spec of the AI-feedback labeller (default: the strongest installed offline "
    "model for a local policy, see `charter models list`; else the policy).",
)
@click.option(
    "--judge", default=None, help="Backend spec of the evaluation judge (default: as --feedback)."
)
@click.option("--runs-dir", default=None, help="Folder that holds run folders (default: runs).")
@click.option("--resume", is_flag=True, help="Continue the run, skipping finished work.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Delete the run folder and start again (only a charter run folder).",
)
@REDO
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default=None,
    help="Where model calls run: this process, or Ray actors (executor.kind) [default: local].",
)
@click.option(
    "--ray-address",
    default=None,
    help="With --executor ray: auto or ray://HOST:PORT (executor.address) [default: a local "
    "Ray with this machine's CPUs].",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="With --executor ray: actors per model (executor.concurrency) [default: 2].",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the resolved config and the stages that would run, and stop.",
)
@JSON
@PROGRESS
def run(
    preset: str | None,
    config_file: Path | None,
    overrides: tuple[str, ...],
    name: str | None,
    constitution_spec: str | None,
    policy: str | None,
    reviser: str | None,
    feedback: str | None,
    judge: str | None,
    runs_dir: str | None,
    resume: bool,
    overwrite: bool,
    redo: tuple[str, ...],
    executor: str | None,
    ray_address: str | None,
    concurrency: int | None,
    dry_run: bool,
    as_json: bool,
    progress: bool,
) -> None:
    """The whole CAI pipeline into runs/NAME/: constitution → prompts → generate → sl → sft →
    label (pairs from the SFT model) → train (DPO on the soft AI labels) → evaluate (base vs
    SL-CAI vs RL-CAI) → report.html.

    Every stage is resumable: after a crash or Ctrl-C, `charter run --resume --name NAME`
    continues with the run's own config and skips finished stages. Each role (policy, feedback,
    judge) takes any backend spec, e.g. `--judge openai:http://localhost:8000/v1#MODEL`.
    """
    import yaml

    from charter.pipeline import planned_stages, resolve_config, run_pipeline

    roles = {
        "generation.model": policy,
        "reviser.model": reviser,
        "feedback.model": feedback,
        "judge.model": judge,
        "constitution": constitution_spec,
        "runs_dir": runs_dir,
        "name": name,
        "executor.kind": executor,
        "executor.address": ray_address,
        "executor.concurrency": None if concurrency is None else str(concurrency),
    }
    cfg = resolve_config(
        preset, config_file, overrides, {k: v for k, v in roles.items() if v}, resume=resume
    )
    if dry_run:
        plan = planned_stages(cfg)
        if as_json:
            data = {"config": cfg.model_dump(mode="json"), "stages": dict(plan)}
            click.echo(json.dumps(data, indent=2))
            return
        click.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False).rstrip())
        click.echo(f"\nrun folder: {Path(cfg.runs_dir) / cfg.name}")
        for stage, on in plan:
            click.echo(f"  {stage:<13}{'runs' if on else 'disabled'}")
        return
    result = run_pipeline(
        cfg, resume=resume, overwrite=overwrite, progress=progress and not as_json, redo=redo
    )
    for note in result.notes:
        click.echo(f"note: {note}", err=as_json)
    echo_result(result.as_dict(), as_json, summary_table(result))


@click.group(cls=CharterGroup)
def runs() -> None:
    """The runs of `charter run`: list them, or show one's stages and metrics."""


@runs.command("list")
@click.option(
    "--runs-dir", default="runs", show_default=True, help="Folder that holds run folders."
)
@JSON
def runs_list(runs_dir: str, as_json: bool) -> None:
    """Every run folder in --runs-dir: name, stages complete, last change."""
    from charter.runs import list_runs

    found = list_runs(Path(runs_dir))
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    if not found:
        click.echo(f"no runs in {runs_dir}")
        return
    click.echo(f"{'name':<24}{'stages':<22}{'status':<10}last change")
    for r in found:
        done = f"{r['complete']}/{r['stages']} complete"
        click.echo(f"{r['name']:<24}{done:<22}{r['status']:<10}{r['updated_at'] or '-'}")


@runs.command("show")
@click.argument("name")
@click.option(
    "--runs-dir", default="runs", show_default=True, help="Folder that holds run folders."
)
@JSON
def runs_show(name: str, runs_dir: str, as_json: bool) -> None:
    """One run: each stage's status, time and records, and the models' key metrics."""
    from charter.runs import show_run

    shown = show_run(Path(runs_dir), name)
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    click.echo(f"run {name} ({Path(runs_dir) / name}), created {shown['created_at']}")
    click.echo(f"\n{'stage':<16}{'status':<10}{'time':>9}{'records':>9}")
    for stage, s in shown["stages"].items():
        t = f"{s['seconds']:.0f} s" if s["seconds"] is not None else "-"
        click.echo(f"{stage:<16}{s['status']:<10}{t:>9}{s['records']:>9}")
    if shown["metrics"]:
        click.echo(f"\n{'model':<10}{'harmful compliance':>20}{'over-refusal':>14}")
        for model, m in shown["metrics"].items():
            hc, orf = m.get("harmful_compliance"), m.get("over_refusal")
            click.echo(f"{model:<10}{_fmt(hc):>20}{_fmt(orf):>14}")


def _fmt(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.2f}"


def summary_table(result: PipelineResult) -> str:
    """The terminal summary: one line per stage, then the models' headline metrics."""
    lines = [f"run folder: {result.path}", "", f"{'stage':<13}{'status':<34}{'time':>8}  detail"]
    for s in result.stages:
        t = f"{s.seconds:.0f} s" if s.status.startswith(("ran", "resumed")) else ""
        lines.append(f"{s.name:<13}{s.status:<34}{t:>8}  {s.detail}")
    models = (result.metrics or {}).get("models", {})
    if models:
        w = max(10, *(len(n) + 1 for n in models))
        lines += [
            "",
            f"{'model':<{w}}{'harmful compliance':>24}{'over-refusal':>24}"
            f"{'Elo harmless':>14}{'Elo helpful':>13}",
        ]
        for name, m in models.items():
            lines.append(
                f"{name:<{w}}{_rate(m.get('harmful_compliance')):>24}"
                f"{_rate(m.get('over_refusal')):>24}"
                f"{_elo(m, 'harmlessness'):>14}{_elo(m, 'helpfulness'):>13}"
            )
    return "\n".join(lines)


def _rate(r: dict[str, Any] | None) -> str:
    if not r or r.get("rate") is None:
        return "-"
    return f"{r['rate']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}] n={r['n']}"


def _elo(m: dict[str, Any], axis: str) -> str:
    e = (m.get("elo") or {}).get(axis)
    return f"{e['rating']:.0f}" if e and e.get("rating") is not None else "-"
