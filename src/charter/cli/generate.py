"""`charter generate` (one stage) and `charter run` (the whole pipeline, in charter.pipeline)."""

from __future__ import annotations

from pathlib import Path

import click

from charter.cli.options import REDO, parse_key_values


def _report(summary: object, out: Path, notes: list[str]) -> None:
    from charter.generate import GENERATIONS, GenerateSummary

    for note in notes:
        click.echo(f"note: {note}")

    target = out / GENERATIONS
    if summary is None:
        click.echo(f"{target}: already complete (nothing to do)")
        return
    assert isinstance(summary, GenerateSummary)
    click.echo(
        f"{target}: wrote {summary.written} answers ({summary.skipped} already done), "
        f"{summary.completion_tokens} tokens in {summary.seconds:.1f} s "
        f"({summary.tokens_per_s:.1f} tokens/s)"
    )


@click.command()
@click.option(
    "--backend", "backend_spec", default="embedded", show_default=True, help="Backend spec."
)
@click.option(
    "--prompts", "prompts_path", required=True, help="JSONL of prompts, or a builtin set (demo)."
)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder."
)
@click.option("--resume", is_flag=True, help="Continue a run in --out, skipping finished prompts.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Delete the run in --out and start again (only a charter run folder).",
)
@REDO
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--temperature", type=click.FloatRange(min=0.0), default=0.7, show_default=True)
@click.option(
    "--top-p",
    type=click.FloatRange(min=0.0, max=1.0, min_open=True),
    default=1.0,
    show_default=True,
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N prompts.")
@click.option(
    "--backend-opt", multiple=True, metavar="KEY=VALUE", help="Backend option, e.g. concurrency=4."
)
@click.option("--progress/--no-progress", default=True, show_default=True)
def generate(
    backend_spec: str,
    prompts_path: str,
    out: Path,
    resume: bool,
    overwrite: bool,
    redo: tuple[str, ...],
    batch_size: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    limit: int | None,
    backend_opt: tuple[str, ...],
    progress: bool,
) -> None:
    """Generate answers for a JSONL of prompts into OUT/generations.jsonl.

    Each line is {"id"?, "prompt": str} or {"id"?, "messages": [...]}. Answers are flushed per
    batch; after a crash, --resume completes the file without duplicates.
    """
    from charter.backends import check_spec
    from charter.config import GenerationConfig
    from charter.data import load_prompts
    from charter.generate import generate_stage
    from charter.runs import RunFolder

    check_spec(backend_spec)
    options = parse_key_values(backend_opt, "--backend-opt")
    prompts = load_prompts(prompts_path)[:limit]
    gen = GenerationConfig(
        backend=backend_spec,
        backend_options=options,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
    )
    config = {
        "command": "generate",
        "prompts": prompts_path,
        "limit": limit,
        "seed": seed,
        "generation": gen.model_dump(mode="json"),
    }
    folder = RunFolder.open(out, config, resume=resume, overwrite=overwrite, redo=redo)
    summary = generate_stage(
        folder,
        prompts,
        backend_spec,
        options,
        gen.sampling(seed),
        batch_size=batch_size,
        progress=progress,
    )
    _report(summary, out, folder.notes)


@click.command()
@click.option(
    "--preset",
    type=click.Choice(["quick", "default"]),
    default=None,
    help="Settings preset [default: default; with --resume, the run's own config].",
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
    help="Override one config key, e.g. generation.temperature=0.2 (repeatable).",
)
@click.option("--name", default=None, help="Run folder name (default: the config's name).")
@click.option(
    "--constitution",
    "constitution_spec",
    default=None,
    help="Builtin name, YAML/JSON file or collective:DIR (overrides the config's).",
)
@click.option("--policy", default=None, help="Backend spec of the policy (generation.backend).")
@click.option("--feedback", default=None, help="Backend spec of the AI-feedback labeller.")
@click.option("--judge", default=None, help="Backend spec of the evaluation judge.")
@click.option("--runs-dir", default=None, help="Folder that holds run folders (default: runs).")
@click.option("--resume", is_flag=True, help="Continue the run, skipping finished work.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Delete the run folder and start again (only a charter run folder).",
)
@REDO
@click.option("--progress/--no-progress", default=True, show_default=True)
def run(
    preset: str | None,
    config_file: Path | None,
    overrides: tuple[str, ...],
    name: str | None,
    constitution_spec: str | None,
    policy: str | None,
    feedback: str | None,
    judge: str | None,
    runs_dir: str | None,
    resume: bool,
    overwrite: bool,
    redo: tuple[str, ...],
    progress: bool,
) -> None:
    """The whole CAI pipeline into runs/NAME/: constitution → prompts → generate → sl → label →
    train (SFT, then DPO on the soft AI labels) → evaluate (base vs SL-CAI vs RL-CAI) → report.html.

    Every stage is resumable: after a crash or Ctrl-C, `charter run --resume --name NAME`
    continues with the run's own config and skips finished stages. Each role (policy, feedback,
    judge) takes any backend spec, e.g. `--judge openai:http://localhost:8000/v1#MODEL`.
    """
    from charter.config import load_config
    from charter.pipeline import load_run_config, run_pipeline, summary_table

    role_sets = [
        f"{key}={value}"
        for key, value in (
            ("generation.backend", policy),
            ("feedback.backend", feedback),
            ("judge.backend", judge),
            ("constitution", constitution_spec),
            ("runs_dir", runs_dir),
            ("name", name),
        )
        if value
    ]
    given = preset is not None or config_file is not None or bool(overrides)
    if resume and not given and name:
        # Resume exactly what ran: the folder's own resolved config, plus role/constitution flags.
        folder = Path(runs_dir or "runs") / name
        if (folder / "config.yaml").exists():
            from charter.config import overlay_config

            cfg = overlay_config(load_run_config(folder).model_dump(mode="json"), role_sets)
        else:
            from charter.errors import RunFolderError
            from charter.runs import check_run_name, holds_manifest

            check_run_name(name)
            parent = folder.parent
            runs = (
                sorted(p.name for p in parent.iterdir() if holds_manifest(p))
                if (parent.is_dir())
                else []
            )
            raise RunFolderError(
                f"there is no run {name!r} in {parent} to resume; "
                + (f"runs there: {', '.join(runs)}" if runs else "it holds no runs")
                + " (without --resume, a new run starts)"
            )
    else:
        cfg = load_config(preset or "default", config_file, (*overrides, *role_sets))
    result = run_pipeline(cfg, resume=resume, overwrite=overwrite, progress=progress, redo=redo)
    for note in result.notes:
        click.echo(f"note: {note}")
    click.echo(summary_table(result))
