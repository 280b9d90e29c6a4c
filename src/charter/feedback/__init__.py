"""RL-CAI AI feedback: soft, order-debiased, principle-ensembled preference labels.

`label_pairs` is the labeller (multiple-choice prompts scored with `option_logprobs`),
`label_stage` the `label` stage of a run folder, `evaluate_mc` the labeller's evaluation on
multiple-choice evals, `bench_label` its speed against a naive loop.
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
from charter.feedback.stage import label_stage

__all__ = [
    "LabelConfig",
    "Labeler",
    "PairRecord",
    "PreferenceRecord",
    "Vote",
    "clamp",
    "draw_principles",
    "label_pairs",
    "label_stage",
    "letter_probability",
    "read_pairs",
    "sample_pairs",
    "soft_label",
]
