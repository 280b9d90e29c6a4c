"""DPO on AI-labelled preferences (`charter label`'s `prefs.jsonl`), with a soft-label loss.

`--loss sigmoid` and `--loss ipo` are TRL's own. `--loss soft` trains towards each row's own
`p_chosen`:

    loss = −[p · log σ(β·h) + (1 − p) · log σ(−β·h)]

where `h` is DPO's log-ratio difference. Since log σ(x) − log σ(−x) = x, this equals

    −log σ(β·h) + (1 − p) · β·h

that is TRL's sigmoid loss plus a term linear in `h`. `SoftDPOTrainer` therefore lets TRL compute
its sigmoid loss unchanged and adds `mean((1 − p)·β·h)`, with `h` rebuilt from the policy's
per-token log-probs (captured from the very forward pass TRL makes) and the precomputed reference
log-probs. With every p = 1 the added term is zero, so loss and gradients are TRL's; with p = ½ the
loss is symmetric in `h` and smallest at h = 0.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

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
    training_dataset,
    trl_bars,
)
from charter.train.data import load_preference_rows, preference_example

if TYPE_CHECKING:
    import torch

DPOLoss = Literal["sigmoid", "ipo", "soft"]


class DPOOptions(TrainOptions):
    """Options for `charter train dpo`."""

    learning_rate: float = Field(1e-4, gt=0.0, description="Peak learning rate.")
    loss: DPOLoss = Field("soft", description="sigmoid and ipo are TRL's; soft uses p_chosen.")
    beta: float = Field(0.1, gt=0.0, description="DPO beta: strength of the KL anchor to the base.")
    evaluate: bool = Field(
        True, description="Reward accuracy and margins on the training pairs, before and after."
    )


class _CaptureOutputs:
    """Calls the model and keeps its outputs, so the subclass sees the forward TRL made."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.outputs: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.outputs = self.model(*args, **kwargs)
        return self.outputs


def _soft_trainer_class() -> type:
    """Built on first use, so importing this module does not import TRL (and torch)."""
    from trl.trainer.dpo_trainer import DataCollatorForPreference, DPOTrainer

    @dataclass
    class SoftPreferenceCollator(DataCollatorForPreference):
        """TRL's preference collator, plus each row's `p_chosen`."""

        def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
            import torch

            batch: dict[str, Any] = super().torch_call(examples)
            batch["p_chosen"] = torch.tensor([float(e["p_chosen"]) for e in examples])
            return batch

    class SoftDPOTrainer(DPOTrainer):
        """TRL's sigmoid DPO plus `(1 − p)·β·h`: the soft-label loss (see the module docstring)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            a = kwargs["args"]
            # The added term rebuilds h as the plain log-ratio difference of summed log-probs.
            unsupported = {
                "loss_type": a.loss_type != ["sigmoid"],
                "f_divergence_type": a.f_divergence_type != "reverse_kl",
                "ld_alpha": a.ld_alpha is not None,
                "use_weighting": a.use_weighting,
                "precompute_ref_log_probs=False": not a.precompute_ref_log_probs,
            }
            if bad := [k for k, v in unsupported.items() if v]:
                raise ValueError(f"the soft DPO loss does not support: {', '.join(bad)}")
            if kwargs.get("data_collator") is None:
                kwargs["data_collator"] = SoftPreferenceCollator(
                    pad_token_id=_pad_token_id(kwargs["processing_class"]),
                    max_length=a.max_length,
                    truncation_mode=a.truncation_mode,
                    pad_to_multiple_of=a.pad_to_multiple_of,
                )
            super().__init__(*args, **kwargs)

        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()  # type: ignore[no-untyped-call]
            if "p_chosen" not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, "p_chosen"]

        def compute_ref_log_probs(self, model: Any, inputs: dict[str, Any]) -> Any:
            return super().compute_ref_log_probs(model, _without_p(inputs))  # type: ignore[no-untyped-call]

        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            p = inputs["p_chosen"]
            capture = _CaptureOutputs(model)
            result = super().compute_loss(  # type: ignore[no-untyped-call]
                capture, _without_p(inputs), return_outputs, num_items_in_batch
            )
            loss = result[0] if return_outputs else result
            seq_len = inputs["completion_mask"].size(1) - 1
            # Exactly as TRL sums them (the fused head zeroes the masked positions).
            logps = capture.outputs.log_probs[:, -seq_len:].sum(dim=1)
            chosen, rejected = logps.chunk(2, dim=0)
            h = (chosen - inputs["ref_chosen_logps"]) - (rejected - inputs["ref_rejected_logps"])
            loss = loss + soft_term(h, p.to(h.dtype), self.beta)
            return (loss, result[1]) if return_outputs else loss

    return SoftDPOTrainer


def soft_term(h: torch.Tensor, p: torch.Tensor, beta: float) -> torch.Tensor:
    """`mean((1 − p)·β·h)`: what turns sigmoid DPO into the soft-label loss."""
    return ((1.0 - p) * beta * h).mean()


def soft_dpo_loss(h: torch.Tensor, p: torch.Tensor, beta: float) -> torch.Tensor:
    """The soft-label DPO loss written out directly (for reference and tests).

    >>> import torch
    >>> round(soft_dpo_loss(torch.tensor([0.0]), torch.tensor([0.5]), 0.1).item(), 6)  # log 2
    0.693147
    """
    import torch.nn.functional as F

    z = beta * h
    return -(p * F.logsigmoid(z) + (1 - p) * F.logsigmoid(-z)).mean()


def _without_p(inputs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in inputs.items() if k != "p_chosen"}


def _pad_token_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pad)


def build_dpo_trainer(
    options: DPOOptions,
    model_dir: Path,
    examples: list[dict[str, Any]],
    *,
    progress: bool = False,
    callbacks: list[Any] | None = None,
    eval_examples: list[dict[str, Any]] | None = None,
) -> Any:
    """TRL's DPOTrainer (or the soft subclass) on preference dicts (exposed for tests)."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.trainer.dpo_config import DPOConfig
    from trl.trainer.dpo_trainer import DPOTrainer

    transformers.logging.set_verbosity_error()
    soft = options.loss == "soft"
    args = DPOConfig(
        **training_args(options, progress=progress),
        loss_type=["sigmoid" if soft else options.loss],
        beta=options.beta,
        # One reference pass over the data up front instead of one per step; the soft loss reads
        # the per-row reference log-probs from the batch.
        precompute_ref_log_probs=True,
        eval_strategy="no",
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype="bfloat16" if options.bf16 else "float32"
    )
    trainer_class = _soft_trainer_class() if soft else DPOTrainer
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=training_dataset(examples, options.out / ".datasets" / "train"),
        eval_dataset=training_dataset(eval_examples, options.out / ".datasets" / "eval")
        if eval_examples
        else None,
        processing_class=tokenizer,
        peft_config=lora_config(options, "CAUSAL_LM"),
        callbacks=callbacks,
    )
    return quiet(trainer, progress=progress)


def reward_metrics(trainer: Any) -> dict[str, float]:
    """Implicit-reward accuracy and margin on the eval pairs (the training pairs here).

    Accuracy counts pairs with β·log(π/π_ref) higher for the chosen answer; a tie counts as wrong
    (as in TRL), so the untrained policy, which equals its reference, scores 0.
    """
    m = trainer.evaluate()
    return {
        "reward_accuracy": float(m["eval_rewards/accuracies"]),
        "reward_margin": float(m["eval_rewards/margins"]),
        "rewards_chosen": float(m["eval_rewards/chosen"]),
        "rewards_rejected": float(m["eval_rewards/rejected"]),
        "eval_loss": float(m["eval_loss"]),
    }


class _MeasureBefore:
    """Measures the reward metrics when training begins, once the model is wrapped for data
    parallelism: an evaluate() before train() leaves it unwrapped, and several processes would
    then train apart (metrics.json's `replicas_agree` shows it)."""

    def __init__(self, trainer: Any, path: Path, holder: dict[str, dict[str, float]]) -> None:
        self.trainer, self.path, self.holder = trainer, path, holder

    def __getattr__(self, name: str) -> Any:
        if name.startswith("on_"):  # every other TrainerCallback event: nothing to do
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from charter.runs import atomic_write_text

        before = reward_metrics(self.trainer)
        self.holder["before"] = before
        atomic_write_text(self.path, json.dumps(before, indent=2) + "\n")


def train_dpo(
    options: DPOOptions,
    *,
    progress: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """DPO on preference rows; write adapter, optional merged weights, metrics and loss curve."""

    from charter.train.outputs import begin_training, finish_training

    check_trainable_spec(options.model)
    rows = load_preference_rows(options.data, need_p=options.loss == "soft")
    prepare_out(options.out, resume=resume, overwrite=overwrite)
    model_dir = resolve_model_dir(options.model)
    started = time.perf_counter()
    examples = [preference_example(r) for r in rows]
    before_file = options.out / "metrics_before.json"
    # Decided before the trainer is built (its construction synchronizes the processes of a
    # multi-process launch): every process must make the same evaluate() calls.
    measured_before = before_file.exists()
    # TRL computes the reference log-probs as it builds the trainer, with a bar of its own.
    with trl_bars(progress):
        trainer = build_dpo_trainer(
            options,
            model_dir,
            examples,
            progress=progress,
            callbacks=callbacks,
            eval_examples=examples if options.evaluate else None,
        )
        checkpoint = begin_training(trainer, options, "dpo", model_dir, len(rows), resume=resume)
        holder: dict[str, dict[str, float]] = {}
        if options.evaluate:
            # Measured once, before the first step; a resumed run reads it back.
            if measured_before:
                holder["before"] = json.loads(before_file.read_text(encoding="utf-8"))
            else:
                trainer.add_callback(_MeasureBefore(trainer, before_file, holder))
        output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        before = holder.get("before")
        # Before the weights are saved (merging the adapter changes the model).
        after = reward_metrics(trainer) if options.evaluate else None
    return finish_training(
        trainer,
        options,
        output,
        kind="dpo",
        title=f"DPO ({options.loss}) on {options.data.name}",
        model_dir=model_dir,
        rows=len(rows),
        started=started,
        checkpoint=checkpoint,
        last_step={
            "last_step_reward_accuracy": "rewards/accuracies",
            "last_step_reward_margin": "rewards/margins",
        },
        extra={
            "loss": options.loss,
            "beta": options.beta,
            "before": before,
            "after": after,
            "mean_p_chosen": sum(e["p_chosen"] for e in examples) / len(examples),
        },
    )
