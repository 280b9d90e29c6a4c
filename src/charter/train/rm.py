"""A preference (reward) model on the labelled pairs, with soft targets, and scoring with it.

TRL's RewardTrainer minimises −log σ(r_c − r_r). We want the binary cross-entropy of σ(r_c − r_r)
against each row's `p_chosen`; as with soft DPO, that is TRL's loss plus (1 − p)·(r_c − r_r)
(because log σ(d) − log σ(−d) = d), so `SoftRewardTrainer` adds that term to TRL's own loss.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from charter.errors import ConfigError, InputError
from charter.jsonl import iter_jsonl_lines
from charter.records import Message
from charter.train.common import (
    MERGED,
    TrainOptions,
    TrainResult,
    check_trainable_spec,
    lora_config,
    prepare_out,
    quiet,
    resolve_model_dir,
    training_args,
)
from charter.train.data import PreferenceRow, load_preference_rows, preference_example


class RMOptions(TrainOptions):
    """Options for `charter train rm`; the model is always merged (scoring needs it whole)."""

    learning_rate: float = Field(1e-4, gt=0.0, description="Peak learning rate.")
    merge: bool = Field(True, description="Write merged weights (scoring needs them).")


def _soft_reward_trainer_class() -> type:
    from trl.trainer.reward_trainer import DataCollatorForPreference, RewardTrainer

    @dataclass
    class SoftRewardCollator(DataCollatorForPreference):
        def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
            import torch

            batch: dict[str, Any] = super().torch_call(examples)
            batch["p_chosen"] = torch.tensor([float(e["p_chosen"]) for e in examples])
            return batch

    class SoftRewardTrainer(RewardTrainer):
        """TRL's reward loss plus (1 − p)·(r_c − r_r): cross-entropy against soft targets."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            tok = kwargs["processing_class"]
            kwargs.setdefault(
                "data_collator",
                SoftRewardCollator(
                    pad_token_id=tok.pad_token_id,
                    pad_to_multiple_of=kwargs["args"].pad_to_multiple_of,
                ),
            )
            super().__init__(*args, **kwargs)

        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()  # type: ignore[no-untyped-call]
            if "p_chosen" not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, "p_chosen"]

        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            import torch

            p = inputs["p_chosen"]
            rest = {k: v for k, v in inputs.items() if k != "p_chosen"}
            loss, outputs = super().compute_loss(  # type: ignore[no-untyped-call]
                model, rest, True, num_items_in_batch
            )
            chosen, rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
            loss = loss + ((1.0 - p.to(chosen.dtype)) * (chosen - rejected)).mean()
            return (loss, outputs) if return_outputs else loss

    return SoftRewardTrainer


def build_rm_trainer(
    options: RMOptions,
    model_dir: Path,
    examples: list[dict[str, Any]],
    *,
    progress: bool = False,
    callbacks: list[Any] | None = None,
) -> Any:
    """The soft-target RewardTrainer on preference dicts (exposed for tests)."""
    import datasets  # type: ignore[import-untyped]
    import transformers
    from transformers import AutoTokenizer
    from trl.trainer.reward_config import RewardConfig

    transformers.logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    args = RewardConfig(
        **training_args(options, progress=progress),
        model_init_kwargs={"dtype": "bfloat16" if options.bf16 else "float32"},
    )
    peft = lora_config(options, "SEQ_CLS")
    if peft is not None:
        # The new scalar head starts random: it must be trained and saved whole, not adapted.
        peft.modules_to_save = ["score"]
    trainer = _soft_reward_trainer_class()(
        model=str(model_dir),
        args=args,
        train_dataset=datasets.Dataset.from_list(examples),
        processing_class=tokenizer,
        peft_config=peft,
        callbacks=callbacks,
    )
    return quiet(trainer, progress=progress)


def train_rm(
    options: RMOptions,
    *,
    progress: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Train a reward model on preference rows with soft targets; write OUT/merged and metrics."""
    from charter.train.outputs import begin_training, finish_training

    check_trainable_spec(options.model)
    rows = load_preference_rows(options.data, need_p=False)
    prepare_out(options.out, resume=resume, overwrite=overwrite)
    model_dir = resolve_model_dir(options.model)
    started = time.perf_counter()
    trainer = build_rm_trainer(
        options,
        model_dir,
        [preference_example(r) for r in rows],
        progress=progress,
        callbacks=callbacks,
    )
    checkpoint = begin_training(trainer, options, "rm", model_dir, len(rows), resume=resume)
    output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    return finish_training(
        trainer,
        options,
        output,
        kind="rm",
        title=f"reward model on {options.data.name}",
        model_dir=model_dir,
        rows=len(rows),
        started=started,
        checkpoint=checkpoint,
        last_step={"last_step_accuracy": "accuracy", "last_step_margin": "margin"},
        sequence_classifier=True,
    )


def _rm_folder(rm: Path) -> Path:
    """`OUT` of `train rm` (its `merged/`) or a reward-model folder itself."""
    for folder in (rm / MERGED, rm):
        if (folder / "config.json").exists():
            return folder
    raise ConfigError(
        f"{rm} holds no reward model: expected OUT/{MERGED} from `charter train rm` (run it with "
        "the default merge) or a model folder with config.json"
    )


def load_score_rows(path: Path) -> list[tuple[str, dict[str, list[Message]]]]:
    """Rows to score: preference pairs (`prompt`/`chosen`/`rejected`) or chats (`messages`)."""
    out: list[tuple[str, dict[str, list[Message]]]] = []
    for lineno, obj in iter_jsonl_lines(path):
        rid = str(obj.get("id", lineno))
        if "messages" in obj and "chosen" not in obj:
            try:
                chat = [Message.model_validate(m) for m in obj["messages"]]  # type: ignore[attr-defined]
            except (TypeError, ValueError) as e:
                raise InputError(path, lineno, f"field `messages`: {e}") from None
            if not chat or chat[-1].role != "assistant":
                raise InputError(
                    path, lineno, "field `messages`: must end with an assistant answer"
                )
            out.append((rid, {"answer": chat}))
            continue
        try:
            row = PreferenceRow.model_validate(obj)
        except ValueError as e:
            raise InputError(
                path, lineno, f"expected a preference pair (prompt, chosen, rejected) or a chat "
                f"(messages): {e}"
            ) from None  # fmt: skip
        out.append(
            (rid, {"chosen": row.prompt + row.chosen, "rejected": row.prompt + row.rejected})
        )
    if not out:
        raise InputError(path, None, "no rows to score (the file is empty)")
    return out


class PreferenceModel:
    """A trained preference model (`charter train rm`'s OUT or a model folder), loaded once:
    `score(chats)` gives each chat's scalar reward."""

    def __init__(self, rm: Path, *, batch_size: int = 8) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from charter.backends.hf import pick_device

        self.folder = _rm_folder(rm)
        self.batch_size = batch_size
        self.device = pick_device()
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
        self.model = (
            AutoModelForSequenceClassification.from_pretrained(self.folder).to(self.device).eval()
        )
        tok = self.tokenizer
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        # The classifier reads the last token that is not `config.pad_token_id`: it must be the
        # id we pad with, or a padded row is read at a pad position and its reward depends on
        # the batch.
        self.model.config.pad_token_id = self.pad

    def score(self, chats: Sequence[Sequence[Message]]) -> list[float]:
        import torch

        out: list[float] = []
        pad = self.pad
        for start in range(0, len(chats), self.batch_size):
            batch = chats[start : start + self.batch_size]
            ids = [
                self.tokenizer.apply_chat_template(
                    [m.model_dump() for m in chat], tokenize=True, return_dict=True
                )["input_ids"]
                for chat in batch
            ]
            width = max(len(x) for x in ids)
            # Right padding: the classifier reads the last non-pad token, as in training.
            input_ids = torch.tensor(
                [x + [pad] * (width - len(x)) for x in ids], device=self.device
            )
            mask = torch.tensor(
                [[1] * len(x) + [0] * (width - len(x)) for x in ids], device=self.device
            )
            with torch.no_grad():
                logits = self.model(input_ids=input_ids, attention_mask=mask).logits
            out.extend(float(x) for x in logits[:, 0].float().cpu().tolist())
        return out


def score_rows(
    rm: Path, data: Path, *, batch_size: int = 8
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Score each answer with the reward model: rows of rewards and a summary.

    For preference pairs each row gets `reward_chosen`, `reward_rejected` and the model's
    `p_chosen_rm` = σ(r_c − r_r); the summary gives the share of pairs it ranks as the file does.
    """
    rows = load_score_rows(data)
    model = PreferenceModel(rm, batch_size=batch_size)
    chats = [(i, key, chat) for i, (_, d) in enumerate(rows) for key, chat in d.items()]
    scores = model.score([chat for _, _, chat in chats])
    rewards = {(i, key): r for (i, key, _), r in zip(chats, scores, strict=True)}
    folder = model.folder
    out_rows: list[dict[str, Any]] = []
    for i, (rid, d) in enumerate(rows):
        if "answer" in d:
            out_rows.append({"id": rid, "reward": rewards[(i, "answer")]})
        else:
            rc, rr = rewards[(i, "chosen")], rewards[(i, "rejected")]
            p = 1.0 / (1.0 + math.exp(-(rc - rr)))
            out_rows.append(
                {"id": rid, "reward_chosen": rc, "reward_rejected": rr, "p_chosen_rm": p}
            )
    pairs = [r for r in out_rows if "reward_chosen" in r]
    summary: dict[str, Any] = {"rm": str(folder), "data": str(data), "rows": len(out_rows)}
    if pairs:
        summary["pairs"] = len(pairs)
        summary["accuracy"] = sum(r["reward_chosen"] > r["reward_rejected"] for r in pairs) / len(
            pairs
        )
        summary["mean_margin"] = sum(
            r["reward_chosen"] - r["reward_rejected"] for r in pairs
        ) / len(pairs)
    return out_rows, summary


def write_scores(rows: list[dict[str, Any]], out: Path) -> None:
    from charter.runs import atomic_write_text

    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
