"""Training on stage outputs: SFT on SL-CAI revisions, DPO on soft AI labels, a reward model.

Each trainer is a function over TRL + PEFT: `train_sft(SFTOptions)`, `train_dpo(DPOOptions)`,
`train_rm(RMOptions)`, each returning a `TrainResult`. Importing this package imports neither
torch nor TRL; they load when a trainer runs.
"""

from __future__ import annotations

from charter.train.common import TrainOptions, TrainResult, check_trainable_spec
from charter.train.dpo import DPOOptions, train_dpo
from charter.train.rm import RMOptions, score_rows, train_rm
from charter.train.sft import SFTOptions, train_sft

__all__ = [
    "DPOOptions",
    "RMOptions",
    "SFTOptions",
    "TrainOptions",
    "TrainResult",
    "check_trainable_spec",
    "score_rows",
    "train_dpo",
    "train_rm",
    "train_sft",
]
