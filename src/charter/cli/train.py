"""`charter train sft|dpo|rm` and `charter score`: training on stage outputs (TRL + PEFT)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def _train_options(f: F) -> F:
    """Options every `charter train` command shares (the fields of `TrainOptions`)."""
    options = [
        click.option(
            "--model",
            default="embedded",
            show_default=True,
            help="embedded or hf:DIR (a local folder, e.g. another run's OUT/merged).",
        ),
        click.option("--data", type=click.Path(path_type=Path), required=True, help="JSONL rows."),
        click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True),
        click.option("--full", is_flag=True, help="Full fine-tuning instead of LoRA."),
        click.option("--lora-r", type=click.IntRange(min=1), default=16, show_default=True),
        click.option("--lora-alpha", type=click.IntRange(min=1), default=32, show_default=True),
        click.option("--lora-dropout", type=click.FloatRange(0.0, 1.0), default=0.0),
        click.option(
            "--target-modules",
            default=None,
            help="Comma-separated LoRA targets, e.g. q_proj,v_proj [default: every linear layer].",
        ),
        click.option(
            "--lr",
            "learning_rate",
            type=float,
            default=None,
            help="Learning rate [default: 2e-4 for sft, 1e-4 for dpo and rm].",
        ),
        click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True),
        click.option("--grad-accum", type=click.IntRange(min=1), default=1, show_default=True),
        click.option("--epochs", type=click.FloatRange(min=0.0), default=1.0, show_default=True),
        click.option(
            "--max-steps", type=click.IntRange(min=1), default=None, help="Overrides --epochs."
        ),
        click.option("--max-length", type=click.IntRange(min=8), default=512, show_default=True),
        click.option(
            "--save-steps",
            type=click.IntRange(min=1),
            default=10,
            show_default=True,
            help="Checkpoint every N steps (what --resume continues from).",
        ),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--bf16", is_flag=True, help="bf16 mixed precision (GPUs that support it)."),
        click.option(
            "--gradient-checkpointing", is_flag=True, help="Trade compute for activation memory."
        ),
        click.option("--resume", is_flag=True, help="Continue from the last checkpoint in --out."),
        click.option("--overwrite", is_flag=True, help="Delete what --out holds and start again."),
        click.option("--progress/--no-progress", default=True, show_default=True),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _options(cls: type[Any], kw: dict[str, Any]) -> Any:
    """Build the pydantic options; a bad value becomes a one-paragraph ConfigError."""
    from pydantic import ValidationError

    from charter.errors import ConfigError
    from charter.jsonl import describe_validation_error

    kw = {k: v for k, v in kw.items() if v is not None}
    if "target_modules" in kw:
        kw["target_modules"] = [m.strip() for m in kw["target_modules"].split(",") if m.strip()]
    try:
        return cls(**kw)
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e)) from None


def _report(result: Any) -> None:
    m = result.metrics
    click.echo(
        f"trained {m['kind']} for {result.steps} steps in {result.seconds:.1f} s "
        f"({m.get('steps_per_second')} steps/s); loss {m.get('first_loss')} → {m.get('last_loss')}"
    )
    if m.get("after"):
        b, a = m["before"], m["after"]
        click.echo(
            f"implicit reward accuracy on the training pairs {b['reward_accuracy']:.3f} → "
            f"{a['reward_accuracy']:.3f}, margin {b['reward_margin']:.4f} → "
            f"{a['reward_margin']:.4f}"
        )
    where = result.merged or result.adapter
    click.echo(f"wrote {result.out} (weights: {where})")
    if result.merged:
        click.echo(f"use it as --backend hf:{result.merged}")


@click.group()
def train() -> None:
    """Train models on stage outputs: SFT on revisions, DPO on soft AI labels, reward models.

    Each command writes OUT/adapter (LoRA) or OUT/merged (full fine-tuning, or LoRA with
    --merge), OUT/train_config.json, OUT/metrics.json, OUT/loss.csv and OUT/loss.png. Run them
    under `accelerate launch` (configs/accelerate/) for several GPUs.
    """


@train.command("sft")
@_train_options
@click.option("--merge", is_flag=True, help="Also write merged weights to OUT/merged.")
def sft_cmd(resume: bool, overwrite: bool, progress: bool, **kw: Any) -> None:
    """Supervised fine-tuning on `charter sl`'s sft.jsonl (loss on the assistant's answer)."""
    from charter.train import SFTOptions, train_sft

    options = _options(SFTOptions, kw)
    _report(train_sft(options, progress=progress, resume=resume, overwrite=overwrite))


@train.command("dpo")
@_train_options
@click.option("--merge", is_flag=True, help="Also write merged weights to OUT/merged.")
@click.option(
    "--loss",
    type=click.Choice(["soft", "sigmoid", "ipo"]),
    default="soft",
    show_default=True,
    help="soft trains towards each row's p_chosen; sigmoid and ipo are TRL's.",
)
@click.option(
    "--beta", type=click.FloatRange(min=0.0, min_open=True), default=0.1, show_default=True
)
@click.option(
    "--eval/--no-eval",
    "evaluate",
    default=True,
    show_default=True,
    help="Reward accuracy and margins on the training pairs before and after.",
)
def dpo_cmd(resume: bool, overwrite: bool, progress: bool, **kw: Any) -> None:
    """DPO on `charter label`'s prefs.jsonl (prompt/chosen/rejected, p_chosen)."""
    from charter.train import DPOOptions, train_dpo

    options = _options(DPOOptions, kw)
    _report(train_dpo(options, progress=progress, resume=resume, overwrite=overwrite))


@train.command("rm")
@_train_options
def rm_cmd(resume: bool, overwrite: bool, progress: bool, **kw: Any) -> None:
    """A reward model on prefs.jsonl: cross-entropy of σ(r_c − r_r) against p_chosen.

    Always writes the merged model to OUT/merged, which `charter score --rm OUT` reads.
    """
    from charter.train import RMOptions, train_rm

    options = _options(RMOptions, kw)
    _report(train_rm(options, progress=progress, resume=resume, overwrite=overwrite))


@click.command()
@click.option(
    "--rm",
    "rm_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="`charter train rm`'s OUT (or a reward-model folder).",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    required=True,
    help="Preference pairs (prompt/chosen/rejected) or chats ending with an answer (messages).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the scored rows here (JSONL) instead of to stdout.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
def score(rm_dir: Path, data: Path, out: Path | None, batch_size: int) -> None:
    """Score answers with a trained preference model.

    Pairs get reward_chosen, reward_rejected and p_chosen_rm = σ(r_c − r_r), and the summary gives
    the share the model ranks as the file does; chats get one reward each.
    """
    from charter.train.rm import score_rows, write_scores

    rows, summary = score_rows(rm_dir, data, batch_size=batch_size)
    if out is not None:
        write_scores(rows, out)
        click.echo(json.dumps(summary, indent=2))
    else:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        click.echo(json.dumps(summary), err=True)
