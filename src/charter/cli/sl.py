"""`charter sl`: the SL-CAI critique → revision stage on its own."""

from __future__ import annotations

from pathlib import Path

import click

from charter.cli.options import parse_key_values, prompt_run_options, select_prompts


@click.command()
@click.option(
    "--backend", "backend_spec", default="embedded", show_default=True, help="Policy backend spec."
)
@click.option(
    "--constitution", "constitution_spec", default="udhr", show_default=True, help="NAME or FILE."
)
@click.option(
    "--prompts",
    "prompts_spec",
    default="builtin:red-team",
    show_default=True,
    help="builtin:NAME, a JSONL file, hh-rlhf:PATH or hf-dataset:ID.",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--rounds", type=click.IntRange(min=1), default=2, show_default=True)
@click.option(
    "--few-shot",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Worked critique/revision examples prepended to each critique.",
)
@prompt_run_options
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Prompts taken through all rounds together (and written together).",
)
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--temperature", type=click.FloatRange(min=0.0), default=0.7, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--helpful-ratio",
    type=click.FloatRange(min=0.0),
    default=0.0,
    show_default=True,
    help="Policy answers to helpful prompts mixed into sft.jsonl, per revised sample.",
)
@click.option("--helpful-prompts", default="builtin:helpful", show_default=True)
@click.option("--backend-opt", multiple=True, metavar="KEY=VALUE")
@click.option("--progress/--no-progress", default=True, show_default=True)
def sl(
    backend_spec: str,
    constitution_spec: str,
    prompts_spec: str,
    out: Path,
    rounds: int,
    few_shot: int,
    lang: str,
    limit: int | None,
    split: str | None,
    resume: bool,
    overwrite: bool,
    redo: tuple[str, ...],
    batch_size: int,
    chunk_size: int,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    helpful_ratio: float,
    helpful_prompts: str,
    backend_opt: tuple[str, ...],
    progress: bool,
) -> None:
    """SL-CAI: answer, then critique and revise under sampled principles, N rounds.

    Writes OUT/samples.jsonl (every round kept), OUT/sft.jsonl (prompt → final answer) and
    OUT/summary.json. Resumable with --resume after a crash.
    """
    from charter.backends import check_spec
    from charter.constitution.load import load_constitution
    from charter.data import load_prompts
    from charter.errors import CharterError
    from charter.records import Sampling
    from charter.runs import RunFolder
    from charter.sl import SLConfig, sl_stage

    check_spec(backend_spec)
    options = parse_key_values(backend_opt, "--backend-opt")
    constitution = load_constitution(constitution_spec)
    try:
        constitution.localized(lang)
    except KeyError as e:
        raise CharterError(
            f"constitution {constitution.name!r} cannot be used with --lang {lang}: {e.args[0]}"
        ) from None
    prompts, selection = select_prompts(prompts_spec, lang=lang, split=split, limit=limit)
    chosen_split = None if selection["split"] == "all" else selection["split"]
    cfg = SLConfig(
        rounds=rounds,
        few_shot=few_shot,
        lang=lang,
        chunk_size=chunk_size,
        helpful_ratio=helpful_ratio,
        helpful_prompts=helpful_prompts,
    )
    helpful = (
        load_prompts(helpful_prompts, lang=lang, split=chosen_split) if helpful_ratio > 0 else []
    )
    sampling = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    config = {
        "command": "sl",
        "backend": backend_spec,
        "backend_options": options,
        "constitution": constitution_spec,
        "constitution_sha256": constitution.compute_sha256(),
        "prompts": prompts_spec,
        "split": selection["split"],
        "limit": limit,
        "batch_size": batch_size,
        "sl": cfg.model_dump(mode="json"),
        "sampling": sampling.model_dump(mode="json"),
    }
    folder = RunFolder.open(out, config, resume=resume, overwrite=overwrite, redo=redo)
    summary = sl_stage(
        folder,
        prompts,
        helpful,
        backend_spec,
        options,
        constitution,
        cfg,
        sampling,
        batch_size=batch_size,
        progress=progress,
    )
    _record_selection(out / "summary.json", selection)
    speed = summary["tokens_per_s"]
    click.echo(
        f"{out}: {summary['n_samples']} samples, {summary['n_revised']} revised, acceptance rate "
        f"{summary['acceptance_rate']:.2f}, {summary['n_sft']} SFT rows"
        + (f", {speed:.1f} tokens/s" if speed else "")
    )


def _record_selection(summary_path: Path, selection: dict[str, object]) -> None:
    """Add which prompts were used (and what a split or limit dropped) to a stage summary."""
    import json

    from charter.runs import atomic_write_text

    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    summary["prompt_selection"] = selection
    atomic_write_text(summary_path, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
