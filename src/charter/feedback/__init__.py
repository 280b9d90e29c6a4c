"""RL-CAI AI feedback: soft, order-debiased, principle-ensembled preference labels.

`label_pairs` is the labeller (multiple-choice prompts scored with `option_logprobs`),
`run_label` the `label` stage of a run folder, `evaluate_mc` the labeller's evaluation on
multiple-choice evals; `charter.bench.label` measures its speed.
"""

from __future__ import annotations

from charter.feedback.labeler import (
    LabelConfig,
    Labeler,
    PairRecord,
    PreferenceRecord,
    Vote,
    clamp,
    draw_principles,
    label_pairs,
    letter_probability,
    soft_label,
)
from charter.feedback.pairs import read_pairs, sample_pairs
from charter.feedback.stage import LABEL, LabelInputs, LabelResult, ModelRole, run_label

__all__ = [
    "LABEL",
    "LabelConfig",
    "LabelInputs",
    "LabelResult",
    "Labeler",
    "ModelRole",
    "PairRecord",
    "PreferenceRecord",
    "Vote",
    "clamp",
    "draw_principles",
    "label_pairs",
    "letter_probability",
    "read_pairs",
    "run_label",
    "sample_pairs",
    "soft_label",
]
