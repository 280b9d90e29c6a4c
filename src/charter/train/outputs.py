"""What a training run writes next to its weights: the resolved config, data hashes, the loss
curve (CSV and PNG), final metrics, and the merged model that `hf:OUT/merged` loads.

Every file is written whole or not at all (atomic renames), so a killed run never leaves a
half-written metrics file or merged folder behind.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from charter.runs import atomic_write_text, file_sha256, now_iso, package_versions
from charter.train.common import ADAPTER, MERGED, TrainOptions, TrainResult, last_checkpoint

CONFIG_FILE = "train_config.json"
METRICS_FILE = "metrics.json"
LOSS_CSV = "loss.csv"
LOSS_PNG = "loss.png"


def write_run_config(
    out: Path, kind: str, options: TrainOptions, model_dir: Path, rows: int, extra: dict[str, Any]
) -> dict[str, Any]:
    """OUT/train_config.json: the options as resolved, the weights and data used, the versions."""
    config = {
        "kind": kind,
        "options": json.loads(options.model_dump_json()),
        "model_dir": str(model_dir),
        "data": {"path": str(options.data), "sha256": file_sha256(options.data), "rows": rows},
        "packages": package_versions(),
        "written_at": now_iso(),
        **extra,
    }
    atomic_write_text(out / CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True) + "\n")
    return config


def write_metrics(out: Path, metrics: dict[str, Any]) -> None:
    atomic_write_text(out / METRICS_FILE, json.dumps(metrics, indent=2, sort_keys=True) + "\n")


def loss_rows(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The training-log entries that carry a loss, one per logged step (eval rows excluded).

    >>> loss_rows([{"step": 1, "loss": 2.0}, {"step": 1, "eval_loss": 3.0}, {"step": 2}])
    [{'step': 1, 'loss': 2.0}]
    """
    return [r for r in log_history if "loss" in r and "step" in r]


def write_loss_curve(
    out: Path, log_history: list[dict[str, Any]], title: str
) -> list[dict[str, Any]]:
    """OUT/loss.csv (every logged training value per step) and OUT/loss.png (loss against step)."""
    rows = loss_rows(log_history)
    columns = ["step", "loss", *sorted({k for r in rows for k in r} - {"step", "loss"})]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / LOSS_CSV, buf.getvalue())

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(
        [r["step"] for r in rows], [r["loss"] for r in rows], marker="." if len(rows) < 50 else ""
    )
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = out / f".{LOSS_PNG}.tmp{os.getpid()}.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out / LOSS_PNG)
    return rows


def _replace_dir(tmp: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


def save_weights(
    trainer: Any, out: Path, base_dir: Path, *, merge: bool, sequence_classifier: bool = False
) -> tuple[Path | None, Path | None]:
    """Save the trained weights: the LoRA adapter to OUT/adapter and, with `merge` (or after full
    fine-tuning, which has nothing to merge), standalone safetensors + tokenizer to OUT/merged.

    `trainer.save_model` gathers sharded weights (DeepSpeed ZeRO-3) and writes on the main process
    only; merging then reloads base + adapter from disk, so it works the same after any launch.
    """
    from peft import PeftModel

    is_peft = isinstance(trainer.accelerator.unwrap_model(trainer.model), PeftModel)
    main = trainer.is_world_process_zero()
    target = out / (ADAPTER if is_peft else MERGED)
    tmp = out / f".{target.name}.tmp"
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.save_model(str(tmp))
    if main:
        trainer.processing_class.save_pretrained(tmp)
        _fix_use_cache(tmp)
        _replace_dir(tmp, target)
    trainer.accelerator.wait_for_everyone()
    if not is_peft:
        return None, target
    if not merge:
        return target, None
    merged = out / MERGED
    if main:
        merge_adapter(base_dir, target, merged, sequence_classifier=sequence_classifier)
    trainer.accelerator.wait_for_everyone()
    return target, merged


def _fix_use_cache(folder: Path) -> None:
    """Training turns the KV cache off in the config; generation from the saved model wants it."""
    config = folder / "config.json"
    if config.exists():
        data = json.loads(config.read_text(encoding="utf-8"))
        if data.get("use_cache") is False:
            data["use_cache"] = True
            atomic_write_text(config, json.dumps(data, indent=2) + "\n")


def merge_adapter(
    base_dir: Path, adapter_dir: Path, merged: Path, *, sequence_classifier: bool = False
) -> Path:
    """Fold a LoRA adapter into its base weights: a standalone folder that `hf:` loads."""
    from peft import PeftModel
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    if sequence_classifier:
        # The classifier reads the last non-pad token, so it must know the pad id (as in training).
        base = AutoModelForSequenceClassification.from_pretrained(
            base_dir, dtype="auto", num_labels=1, pad_token_id=tokenizer.pad_token_id
        )
    else:
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype="auto")
    model = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    tmp = merged.with_name(f".{merged.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.config.use_cache = True
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    _replace_dir(tmp, merged)
    return merged


def replica_check(trainer: Any) -> dict[str, Any]:
    """Under data parallelism (`accelerate launch`, N processes), whether every process ended
    with the same trainable weights: each process's sum and sum of squares of its trainable
    parameters, gathered. One process: `{"processes": 1}`."""
    import torch

    acc = trainer.accelerator
    if acc.num_processes == 1:
        return {"processes": 1}
    params = [p.detach().double() for p in trainer.model.parameters() if p.requires_grad]
    mine = torch.stack([sum(p.sum() for p in params), sum((p * p).sum() for p in params)])
    every = acc.gather(mine.to(acc.device).unsqueeze(0)).cpu().tolist()
    agree = all(
        torch.allclose(torch.tensor(row), torch.tensor(every[0]), rtol=1e-9, atol=1e-12)
        for row in every
    )
    return {
        "processes": acc.num_processes,
        "wrapper": type(trainer.model_wrapped).__name__,
        "replica_checksums": every,
        "replicas_agree": agree,
    }


def begin_training(
    trainer: Any, options: TrainOptions, kind: str, model_dir: Path, rows: int, *, resume: bool
) -> Path | None:
    """Write the run's `train_config.json` (with TRL's arguments) and return the checkpoint a
    resumed run continues from (None: start from step 0)."""
    trl_args = {"trl_args": trainer.args.to_dict()}
    write_run_config(options.out, kind, options, model_dir, rows, trl_args)
    return last_checkpoint(options.out) if resume else None


def finish_training(
    trainer: Any,
    options: TrainOptions,
    output: Any,
    *,
    kind: str,
    title: str,
    model_dir: Path,
    rows: int,
    started: float,
    checkpoint: Path | None,
    last_step: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
    sequence_classifier: bool = False,
) -> TrainResult:
    """After `trainer.train()` returned `output`: save the weights, the loss curve and
    `metrics.json` (losses, steps, speed, `last_step` metrics read from the last logged step
    under their log names, and `extra`), and return the result."""
    replicas = replica_check(trainer)
    adapter, merged = save_weights(
        trainer,
        options.out,
        model_dir,
        merge=options.merge,
        sequence_classifier=sequence_classifier,
    )
    seconds = time.perf_counter() - started
    history = list(trainer.state.log_history)
    losses = write_loss_curve(options.out, history, title)
    last = losses[-1] if losses else {}
    metrics: dict[str, Any] = {
        "kind": kind,
        **(extra or {}),
        "train_loss": output.training_loss,
        "first_loss": losses[0]["loss"] if losses else None,
        "last_loss": last.get("loss"),
        **{name: last.get(key) for name, key in (last_step or {}).items()},
        "steps": trainer.state.global_step,
        "resumed_from": str(checkpoint) if checkpoint else None,
        "train_runtime_s": output.metrics.get("train_runtime"),
        "steps_per_second": output.metrics.get("train_steps_per_second"),
        "seconds_total": seconds,
        "rows": rows,
        **replicas,
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
