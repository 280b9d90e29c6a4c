"""What every trainer shares: options, model spec → weights folder, result, output folder.

Training sits after `charter sl` (SFT rows) and `charter label` (preference rows). Each trainer is a
function `train_X(options) -> TrainResult` over TRL; this module holds what is not TRL-specific.
Everything here is cheap: a bad spec or a bad folder fails before torch is imported.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from charter.backends import check_spec
from charter.errors import ConfigError, RunFolderError
from charter.records import Strict

CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
MERGED = "merged"
# Files a finished (or started) run leaves in OUT: their presence means OUT holds a run.
RUN_MARKERS = (CHECKPOINTS, ADAPTER, MERGED, "metrics.json")


class TrainOptions(Strict):
    """Options shared by `train sft`, `dpo` and `rm`; the defaults suit a CPU and LoRA."""

    model: str = Field(
        "embedded", description="Model spec: `embedded` or `hf:DIR` (a local folder)."
    )
    data: Path = Field(description="The JSONL rows to train on.")
    out: Path = Field(description="Output folder: checkpoints, adapter, merged weights, metrics.")
    full: bool = Field(False, description="Full fine-tuning instead of LoRA.")
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling alpha.")
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="LoRA dropout.")
    target_modules: list[str] | None = Field(
        None, description="LoRA target modules; None means every linear layer but the head."
    )
    learning_rate: float = Field(2e-4, gt=0.0, description="Peak learning rate.")
    batch_size: int = Field(4, ge=1, description="Rows per device per step.")
    grad_accum: int = Field(1, ge=1, description="Gradient accumulation steps per update.")
    epochs: float = Field(1.0, gt=0.0, description="Passes over the data.")
    max_steps: int | None = Field(None, ge=1, description="Overrides `epochs` when given.")
    max_length: int = Field(512, ge=8, description="Tokens per sequence (prompt + answer).")
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="Warm-up steps as a share of all.")
    save_steps: int = Field(10, ge=1, description="Checkpoint every N steps (for --resume).")
    save_total_limit: int = Field(2, ge=1, description="Checkpoints kept (the newest).")
    logging_steps: int = Field(1, ge=1, description="Log the loss every N steps.")
    seed: int = Field(0, description="Seed of data order, dropout and LoRA init.")
    merge: bool = Field(False, description="Also write merged safetensors to OUT/merged.")
    gradient_checkpointing: bool = Field(False, description="Trade compute for activation memory.")
    bf16: bool = Field(False, description="bf16 mixed precision (GPUs that support it).")

    @model_validator(mode="after")
    def _lora_or_full(self) -> TrainOptions:
        if self.target_modules is not None and not self.target_modules:
            raise ValueError("target_modules is empty: give module names or leave it unset")
        return self


class TrainResult(BaseModel):
    """What a training run left behind (`merged` only with `merge`)."""

    out: Path
    adapter: Path | None
    merged: Path | None
    metrics: dict[str, Any]
    steps: int
    seconds: float
    log_history: list[dict[str, Any]] = Field(default_factory=list)


UNTRAINABLE = {
    "openai": "it is a remote server: charter cannot change its weights",
    "vllm": "vLLM serves models but does not train them; train the same weights with hf:DIR",
    "fake": "the fake backend has no weights",
}


def check_trainable_spec(spec: str) -> tuple[str, str]:
    """Refuse specs that name no trainable weights, before anything heavy runs."""
    name, arg = check_spec(spec)
    if name in UNTRAINABLE:
        raise ConfigError(
            f"model spec {spec!r} cannot be trained: {UNTRAINABLE[name]}. "
            "Use `embedded` or `hf:DIR` (a local model folder)."
        )
    if name == "hf":
        path = Path(arg).expanduser()
        if not (path / "config.json").exists():
            raise ConfigError(
                f"model spec {spec!r}: {path} is not a local model folder (no config.json); "
                "training reads weights from disk only"
            )
    return name, arg


def resolve_model_dir(spec: str) -> Path:
    """The folder of safetensors weights + tokenizer that `spec` names (converting `embedded`)."""
    name, arg = check_trainable_spec(spec)
    if name == "embedded":
        from charter.backends.gguf_convert import ensure_embedded_model

        return ensure_embedded_model()
    return Path(arg).expanduser().resolve()


def prepare_out(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Create OUT; refuse to mix two runs unless told to resume or start again."""
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"{out} is a file, expected an output folder")
    holds_run = out.exists() and any((out / name).exists() for name in RUN_MARKERS)
    if holds_run and overwrite:
        shutil.rmtree(out)
    elif holds_run and not resume:
        raise RunFolderError(
            f"{out} already holds a training run; pass --resume to continue it from its last "
            "checkpoint or --overwrite to start again"
        )
    out.mkdir(parents=True, exist_ok=True)


def last_checkpoint(out: Path) -> Path | None:
    """The newest *complete* `checkpoint-N` folder under OUT/checkpoints, if any.

    A process killed while saving leaves a `checkpoint-N` without `trainer_state.json` or with a
    truncated weights or optimizer file, and resuming from it fails; such folders are passed over
    (with a warning) for the newest one that `checkpoint_problem` finds whole.
    """
    folder = out / CHECKPOINTS
    if not folder.is_dir():
        return None
    found = sorted(
        (
            (int(p.name.split("-")[1]), p)
            for p in folder.iterdir()
            if p.is_dir() and p.name.startswith("checkpoint-") and p.name.split("-")[1].isdigit()
        ),
        reverse=True,
    )
    for _, path in found:
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        print(f"charter: skipping incomplete checkpoint {path}: {problem}", file=sys.stderr)
    return None


def checkpoint_problem(path: Path) -> str | None:
    """Why the checkpoint folder PATH cannot be resumed from (None: it looks whole).

    Checks what a kill mid-save breaks, without loading anything: `trainer_state.json` parses
    and names its step; there is a weights file; every safetensors file is as long as its header
    says; every torch pickle (`optimizer.pt`, `scheduler.pt`, `rng_state.pth`, ...) is a whole
    zip archive (torch's format since 1.6: a truncated one has no central directory).
    """
    state = path / "trainer_state.json"
    try:
        data = json.loads(state.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no trainer_state.json"
    except (OSError, ValueError) as e:
        return f"trainer_state.json does not parse ({e})"
    if not isinstance(data, dict) or not isinstance(data.get("global_step"), int):
        return "trainer_state.json names no global_step"
    weights = [*path.glob("*.safetensors"), *path.glob("pytorch_model*.bin")]
    if not weights:
        return "no weights file (*.safetensors or pytorch_model.bin)"
    for file in sorted(path.glob("*.safetensors")):
        problem = _safetensors_problem(file)
        if problem:
            return f"{file.name}: {problem}"
    for file in sorted([*path.glob("*.pt"), *path.glob("*.pth"), *path.glob("*.bin")]):
        if not zipfile.is_zipfile(file):
            return f"{file.name} is not a whole torch archive (truncated?)"
    return None


def _safetensors_problem(file: Path) -> str | None:
    """A safetensors file is 8 bytes of header length, a JSON header, then the tensors' bytes."""
    try:
        size = file.stat().st_size
        with file.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return "shorter than its header"
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                return "truncated inside its header"
            header = json.loads(f.read(n))
    except (OSError, ValueError) as e:
        return f"unreadable header ({e})"
    if not isinstance(header, dict):
        return "header is not a mapping"
    ends = [
        v["data_offsets"][1]
        for k, v in header.items()
        if k != "__metadata__" and isinstance(v, dict) and len(v.get("data_offsets", ())) == 2
    ]
    if 8 + n + max(ends, default=0) > size:
        return f"truncated: {size} bytes, the header needs {8 + n + max(ends, default=0)}"
    return None


def training_args(options: TrainOptions, *, progress: bool) -> dict[str, Any]:
    """The `transformers.TrainingArguments` fields every trainer here sets, from our options."""
    args: dict[str, Any] = {
        "output_dir": str(options.out / CHECKPOINTS),
        "per_device_train_batch_size": options.batch_size,
        "per_device_eval_batch_size": options.batch_size,
        "gradient_accumulation_steps": options.grad_accum,
        "learning_rate": options.learning_rate,
        "num_train_epochs": options.epochs,
        "max_steps": options.max_steps if options.max_steps is not None else -1,
        "warmup_steps": options.warmup_ratio,  # a float below 1 is a ratio
        "lr_scheduler_type": "linear",
        "logging_steps": options.logging_steps,
        "save_strategy": "steps",
        "save_steps": options.save_steps,
        "save_total_limit": options.save_total_limit,
        "seed": options.seed,
        "data_seed": options.seed,
        "report_to": [],
        "disable_tqdm": not progress,
        "bf16": options.bf16,
        # The datasets are small and already in memory: worker processes cost more than they save
        # on a 2-core machine.
        "dataset_num_proc": None,
        "dataloader_num_workers": 0,
        "max_length": options.max_length,
    }
    # Always said, not only when on: TRL's configs default to checkpointing, so leaving it out
    # recomputed every activation whatever the option said. transformers 5 renamed the argument.
    import transformers

    fields = getattr(transformers.TrainingArguments, "__dataclass_fields__", {})
    name = (
        "activation_checkpointing"
        if "activation_checkpointing" in fields
        else "gradient_checkpointing"
    )
    args[name] = options.gradient_checkpointing
    if not progress:
        import datasets  # type: ignore[import-untyped]

        # The per-map bars of datasets and transformers' weight-loading bar, too.
        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
    import torch

    # Pinned memory helps only when batches go to a GPU; on a CPU it only warns.
    args["dataloader_pin_memory"] = torch.cuda.is_available()
    return args


def quiet(trainer: Any, *, progress: bool) -> Any:
    """Without progress bars, Trainer prints every log dict instead; drop that printer too."""
    if not progress:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    return trainer


@contextmanager
def trl_bars(progress: bool) -> Iterator[None]:
    """Without progress, TRL's own bars too (DPO's reference log-probs): they read
    `TQDM_DISABLE`, not the trainer's `disable_tqdm`. The variable is restored after."""
    before = os.environ.get("TQDM_DISABLE")
    if not progress:
        os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = before


def lora_config(options: TrainOptions, task_type: str) -> Any:
    """A PEFT LoRA config, or None for full fine-tuning."""
    if options.full:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=options.lora_r,
        lora_alpha=options.lora_alpha,
        lora_dropout=options.lora_dropout,
        target_modules=options.target_modules or "all-linear",
        task_type=task_type,
        bias="none",
    )


def training_dataset(examples: list[dict[str, Any]], folder: Path) -> Any:
    """The examples as a `datasets.Dataset`. Under several training processes it is written once
    to FOLDER (by the first process) and every process reads that copy: TRL's DPO caches the
    reference log-probs next to the dataset's files, and an in-memory dataset's files sit in a
    temporary folder of each process, where the other processes cannot find the cache."""
    import os

    import datasets

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return datasets.Dataset.from_list(examples)
    from accelerate import PartialState

    state = PartialState()
    with state.main_process_first():
        if state.is_main_process:
            shutil.rmtree(folder, ignore_errors=True)
            datasets.Dataset.from_list(examples).save_to_disk(str(folder))
        return datasets.load_from_disk(str(folder))
