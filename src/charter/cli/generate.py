"""`charter generate`: the generate stage on its own (answers to a prompt set)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from charter.cli.fields import config_from, options_from
from charter.cli.options import (
    JSON,
    MODEL,
    MODEL_OPT,
    OUT,
    PROGRESS,
    REDO,
    SEED,
    echo_result,
    executor_options,
    parse_key_values,
)
from charter.generate import GenerateResult, GenerationConfig


def _report(summary: GenerateResult, out: Path, notes: list[str]) -> None:
    from charter.generate import GENERATIONS

    for note in notes:
        click.echo(f"note: {note}")

    target = out / GENERATIONS
    if summary.complete:
        click.echo(f"{target}: already complete (nothing to do)")
        return
    click.echo(
        f"{target}: wrote {summary.written} answers ({summary.skipped} already done), "
        f"{summary.completion_tokens} tokens in {summary.seconds:.1f} s "
        f"({summary.tokens_per_s:.1f} tokens/s)"
    )


@click.command()
@MODEL
@MODEL_OPT
@click.option(
    "--prompts",
    "prompts_path",
    required=True,
    help="The prompts: a JSONL file, or a builtin set (demo, builtin:NAME).",
)
@OUT
@click.option("--resume", is_flag=True, help="Continue a run in --out, skipping finished prompts.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Delete the run in --out and start again (only a charter run folder).",
)
@REDO
@options_from(GenerationConfig, exclude={"model", "model_options"})
@SEED
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N prompts.")
@JSON
@PROGRESS
@executor_options
def generate(
    model: str,
    model_opt: tuple[str, ...],
    prompts_path: str,
    out: Path,
    resume: bool,
    overwrite: bool,
    redo: tuple[str, ...],
    seed: int,
    limit: int | None,
    as_json: bool,
    progress: bool,
    **fields: Any,
) -> None:
    """Generate answers for a JSONL of prompts into OUT/generations.jsonl.

    Each line is {"id"?, "prompt": str} or {"id"?, "messages": [...]}. Answers are flushed per
    batch; after a crash, --resume completes the file without duplicates.
    """
    from charter.backends import check_spec
    from charter.backends.pool import BackendPool
    from charter.data import load_prompts
    from charter.generate import GENERATE
    from charter.runs import RunFolder
    from charter.stage import StageContext

    check_spec(model)
    gen = config_from(
        GenerationConfig,
        fields,
        model=model,
        model_options=parse_key_values(model_opt, "--model-opt"),
    )
    prompts = load_prompts(prompts_path)[:limit]
    config = {
        "command": "generate",
        "prompts": prompts_path,
        "limit": limit,
        "seed": seed,
        "generation": gen.model_dump(mode="json"),
    }
    folder = RunFolder.open(out, config, resume=resume, overwrite=overwrite, redo=redo)
    with folder, BackendPool(gen.batch_size) as pool:
        result = GENERATE.run(
            StageContext(folder, pool, None, progress and not as_json, seed), prompts, gen
        )
    if as_json:
        echo_result(result.model_dump(mode="json"), True, "")
    else:
        _report(result, out, folder.notes)
