"""Supervised fine-tuning on SL-CAI revisions (`charter sl`'s `sft.jsonl`) with TRL's SFTTrainer.

Loss falls on the assistant's final answer only. SmolLM2's chat template has no
`{% generation %}` markers (so TRL's `assistant_only_loss` cannot see the assistant's tokens), so
each row becomes TRL's conversational prompt/completion pair instead: the chat up to the answer is
the prompt, the answer the completion, and TRL masks the prompt (`completion_only_loss`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import Field

from charter.train.common import (
    TrainOptions,
    TrainResult,
    check_trainable_spec,
    last_checkpoint,
    lora_config,
    prepare_out,
    quiet,
    resolve_model_dir,
    training_args,
)
from charter.train.data import load_sft_rows, sft_example


class SFTOptions(TrainOptions):
    """Options for `charter train sft`."""

    learning_rate: float = Field(2e-4, gt=0.0)


def build_sft_trainer(
    options: SFTOptions,
    model_dir: Path,
    examples: list[dict[str, Any]],
    *,
    progress: bool = False,
    callbacks: list[Any] | None = None,
) -> Any:
    """TRL's SFTTrainer on prompt/completion rows (exposed for tests: the loss mask, one step)."""
    import datasets  # type: ignore[import-untyped]
    import transformers
    from trl.trainer.sft_config import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    transformers.logging.set_verbosity_error()
    args = SFTConfig(
        **training_args(options, progress=progress),
        completion_only_loss=True,
        packing=False,
        model_init_kwargs={"dtype": "bfloat16" if options.bf16 else "float32"},
    )
    trainer = SFTTrainer(
        model=str(model_dir),
        args=args,
        train_dataset=datasets.Dataset.from_list(examples),
        peft_config=lora_config(options, "CAUSAL_LM"),
        callbacks=callbacks,
    )
    return quiet(trainer, progress=progress)


def train_sft(
    options: SFTOptions,
    *,
    progress: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Fine-tune `options.model` on SFT rows; write adapter, optional merged weights and metrics."""
    from charter.train.outputs import (
        save_weights,
        write_loss_curve,
        write_metrics,
        write_run_config,
    )

    check_trainable_spec(options.model)
    rows = load_sft_rows(options.data)
    prepare_out(options.out, resume=resume, overwrite=overwrite)
    model_dir = resolve_model_dir(options.model)
    started = time.perf_counter()
    trainer = build_sft_trainer(
        options, model_dir, [sft_example(r) for r in rows], progress=progress, callbacks=callbacks
    )
    write_run_config(
        options.out, "sft", options, model_dir, len(rows), {"trl_args": trainer.args.to_dict()}
    )
    checkpoint = last_checkpoint(options.out) if resume else None
    output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    adapter, merged = save_weights(trainer, options.out, model_dir, merge=options.merge)
    seconds = time.perf_counter() - started
    history = list(trainer.state.log_history)
    losses = write_loss_curve(options.out, history, f"SFT on {options.data.name}")
    metrics = {
        "kind": "sft",
        "train_loss": output.training_loss,
        "first_loss": losses[0]["loss"] if losses else None,
        "last_loss": losses[-1]["loss"] if losses else None,
        "steps": trainer.state.global_step,
        "resumed_from": str(checkpoint) if checkpoint else None,
        "train_runtime_s": output.metrics.get("train_runtime"),
        "steps_per_second": output.metrics.get("train_steps_per_second"),
        "seconds_total": seconds,
        "rows": len(rows),
    }
    if trainer.is_world_process_zero():
        write_metrics(options.out, metrics)
    return TrainResult(
        out=options.out,
        adapter=adapter,
        merged=merged,
        metrics=metrics,
        steps=trainer.state.global_step,
        seconds=seconds,
        log_history=history,
    )
