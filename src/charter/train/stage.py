"""The training stages (`train/sft`, `train/dpo`, `train/rm`) under the stage contract.

`charter train sft|dpo|rm` and `charter run`'s train stage both call these: the trainer runs
into the stage's folder (`ctx.out`), the manifest records its options and data (and, for DPO
after SFT, the SFT model it starts from), and a stage already complete for the same inputs is
not trained again: its result is read back from `metrics.json`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from charter.records import stable_id
from charter.runs import file_sha256
from charter.stage import Stage, StageContext
from charter.train.common import (
    ADAPTER,
    CHECKPOINTS,
    MERGED,
    RUN_MARKERS,
    TrainOptions,
    TrainResult,
)
from charter.train.dpo import DPOOptions, train_dpo
from charter.train.rl import RLOptions, prompts_hash, train_rl
from charter.train.rm import RMOptions, train_rm
from charter.train.sft import SFTOptions, train_sft

O = TypeVar("O", bound=TrainOptions)  # noqa: E741 - the options class of one trainer

# What a trainer writes into its folder (and what a redo of the stage removes).
OUTPUTS = (
    CHECKPOINTS,
    ADAPTER,
    MERGED,
    "metrics.json",
    "train_config.json",
    "loss.csv",
    "loss.png",
    "metrics_before.json",
    # online RL
    "prompts.jsonl",
    "references.jsonl",
    "rewards.jsonl",
    "rl.png",
)


class TrainInputs(BaseModel):
    """What a training stage depends on besides its options and data file: `base_hash` names
    the model it starts from when that model is itself an output of the run (DPO after SFT)."""

    base_hash: str | None = None


def _stage(
    kind: str,
    options: type[O],
    trainer: Callable[..., TrainResult],
    summary: str,
    data_hash: Callable[[O], str] | None = None,
) -> Any:
    """A training stage; `data_hash` names its data (default: the sha256 of `options.data`).
    Online RL has no data file before it runs: its data is the prompts, and it is handed the
    run's backend pool for its judges."""
    name = f"train/{kind}"
    online = data_hash is not None

    def run(ctx: StageContext, inputs: TrainInputs, cfg: O) -> TrainResult:
        out = ctx.out
        update: dict[str, Any] = {"out": out}
        if online:
            update["algorithm"] = kind
        opts = cfg.model_copy(update=update)
        dumped = opts.model_dump(mode="json")
        digest, earlier = ctx.runfolder.options_hashes(dumped)
        data = data_hash(opts) if data_hash is not None else file_sha256(opts.data)
        if inputs.base_hash is not None:
            data = stable_id(data, inputs.base_hash, length=64)
        holder: dict[str, TrainResult] = {}

        def work() -> int:
            # A stage that was killed resumes from its last checkpoint.
            resume = any((out / marker).exists() for marker in RUN_MARKERS)
            extra = {"pool": ctx.pool} if online else {}
            holder["res"] = trainer(opts, progress=ctx.progress, resume=resume, **extra)
            return int(holder["res"].steps)

        ctx.runfolder.run_stage(
            name,
            digest,
            [ctx.file(o) for o in OUTPUTS],
            work,
            records_hash=data,
            earlier_hashes=earlier,
        )
        if "res" in holder:
            return holder["res"]
        return _finished(opts)

    return Stage(name, options, run, summary)


def _finished(opts: TrainOptions) -> TrainResult:
    """The result of a training stage that completed earlier, read back from its folder."""
    out = opts.out
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    return TrainResult(
        out=out,
        adapter=out / ADAPTER if (out / ADAPTER).exists() else None,
        merged=out / MERGED if (out / MERGED).exists() else None,
        metrics=metrics,
        steps=int(metrics.get("steps") or 0),
        seconds=0.0,
    )


TRAIN_SFT: Stage[TrainInputs, SFTOptions, TrainResult] = _stage(
    "sft", SFTOptions, train_sft, "supervised fine-tuning on SL-CAI revisions"
)
TRAIN_DPO: Stage[TrainInputs, DPOOptions, TrainResult] = _stage(
    "dpo", DPOOptions, train_dpo, "DPO on the soft AI-feedback labels"
)
TRAIN_RM: Stage[TrainInputs, RMOptions, TrainResult] = _stage(
    "rm", RMOptions, train_rm, "a reward model on the soft AI-feedback labels"
)
TRAIN_GRPO: Stage[TrainInputs, RLOptions, TrainResult] = _stage(
    "grpo", RLOptions, train_rl, "online GRPO against constitutional rewards", prompts_hash
)
TRAIN_RLOO: Stage[TrainInputs, RLOptions, TrainResult] = _stage(
    "rloo", RLOptions, train_rl, "online RLOO against constitutional rewards", prompts_hash
)
