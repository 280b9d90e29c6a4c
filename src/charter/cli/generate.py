"""`charter generate` (one stage) and `charter run` (the pipeline, so far its generate stage)."""

from __future__ import annotations

from pathlib import Path

import click

from charter.cli.options import parse_key_values


def _report(summary: object, out: Path, discarded: list[str]) -> None:
    from charter.generate import GENERATIONS, GenerateSummary

    if discarded:
        click.echo(f"inputs changed since the last run: redid stage(s) {', '.join(discarded)}")

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
@click.option("--overwrite", is_flag=True, help="Delete what --out holds and start again.")
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
    folder = RunFolder.open(out, config, resume=resume, overwrite=overwrite)
    summary = generate_stage(
        folder,
        prompts,
        backend_spec,
        options,
        gen.sampling(seed),
        batch_size=batch_size,
        progress=progress,
    )
    _report(summary, out, folder.discarded)


@click.command()
@click.option(
    "--preset", type=click.Choice(["quick", "default"]), default="default", show_default=True
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
@click.option("--resume", is_flag=True, help="Continue the run, skipping finished work.")
@click.option("--overwrite", is_flag=True, help="Delete the run folder and start again.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def run(
    preset: str,
    config_file: Path | None,
    overrides: tuple[str, ...],
    name: str | None,
    constitution_spec: str | None,
    resume: bool,
    overwrite: bool,
    progress: bool,
) -> None:
    """Run the pipeline into runs/NAME/ (config.yaml, manifest.json, stage outputs).

    Stages so far: `generate` (the policy's answers to `prompts`, in generations.jsonl) and `sl`
    (SL-CAI critique → revision of red-team prompts under the constitution, in sl/).
    """
    from charter.backends import check_spec
    from charter.config import load_config
    from charter.constitution.load import load_constitution
    from charter.data import load_prompts
    from charter.generate import generate_stage
    from charter.runs import RunFolder
    from charter.sl import SLConfig, sl_stage

    cfg = load_config(preset, config_file, overrides)
    if name:
        cfg = cfg.model_copy(update={"name": name})
    if constitution_spec:
        cfg = cfg.model_copy(update={"constitution": constitution_spec})
    check_spec(cfg.generation.backend)
    prompts = load_prompts(cfg.prompts)[: cfg.limit]
    constitution = load_constitution(cfg.constitution)
    sl_split = None if cfg.sl.split == "all" else cfg.sl.split
    red_team = load_prompts(cfg.sl.prompts, lang=cfg.sl.lang, split=sl_split)[: cfg.sl.limit]
    helpful = (
        load_prompts(cfg.sl.helpful_prompts, lang=cfg.sl.lang, split=sl_split)
        if cfg.sl.helpful_ratio > 0
        else []
    )
    out = Path(cfg.runs_dir) / cfg.name
    folder = RunFolder.open(out, cfg.model_dump(mode="json"), resume=resume, overwrite=overwrite)
    gen = cfg.generation
    summary = generate_stage(
        folder,
        prompts,
        gen.backend,
        gen.backend_options,
        gen.sampling(cfg.seed),
        batch_size=gen.batch_size,
        progress=progress,
    )
    _report(summary, out, folder.discarded)
    if cfg.sl.enabled:
        sl_cfg = SLConfig.model_validate(cfg.sl.model_dump(include=set(SLConfig.model_fields)))
        result = sl_stage(
            folder,
            red_team,
            helpful,
            gen.backend,
            gen.backend_options,
            constitution,
            sl_cfg,
            gen.sampling(cfg.seed),
            batch_size=gen.batch_size,
            progress=progress,
            prefix="sl/",
        )
        click.echo(
            f"{out / 'sl'}: {result['n_samples']} SL-CAI samples, {result['n_revised']} revised "
            f"(acceptance rate {result['acceptance_rate']:.2f}), {result['n_sft']} SFT rows"
        )
