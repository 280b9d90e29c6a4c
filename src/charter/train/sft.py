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
    lora_config,
    prepare_out,
    quiet,
    resolve_model_dir,
    training_args,
)
from charter.train.data import load_sft_rows, sft_example


class SFTOptions(TrainOptions):
    """Options for `charter train sft`."""

    learning_rate: float = Field(2e-4, gt=0.0, description="Peak learning rate.")


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
    from charter.train.outputs import begin_training, finish_training

    check_trainable_spec(options.model)
    rows = load_sft_rows(options.data)
    prepare_out(options.out, resume=resume, overwrite=overwrite)
    model_dir = resolve_model_dir(options.model)
    started = time.perf_counter()
    trainer = build_sft_trainer(
        options, model_dir, [sft_example(r) for r in rows], progress=progress, callbacks=callbacks
    )
    checkpoint = begin_training(trainer, options, "sft", model_dir, len(rows), resume=resume)
    output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    return finish_training(
        trainer,
        options,
        output,
        kind="sft",
        title=f"SFT on {options.data.name}",
        model_dir=model_dir,
        rows=len(rows),
        started=started,
        checkpoint=checkpoint,
    )
