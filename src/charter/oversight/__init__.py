"""Scalable oversight: can a weaker judge supervise stronger systems that argue?

`questions` loads two-answer questions (our JSONL, QuALITY-style, or a seeded synthetic set);
`protocols` runs blind, consultancy, debate and oracle judging over any backends; `run` makes
a resumable run folder with metrics and plots; `metrics` holds the numbers (intervals,
calibration, Elo); `pixel` is Irving et al.'s pixel debate on 8×8 digits. torch and matplotlib
are imported only inside the functions that need them.
"""

from charter.oversight.metrics import (
    bootstrap_interval,
    calibration,
    elo_from_wins,
    wilson_interval,
)
from charter.oversight.pixel import PixelConfig, run_pixel_debate
from charter.oversight.protocols import (
    PROTOCOLS,
    OversightConfig,
    Transcript,
    plan_units,
    run_units,
)
from charter.oversight.questions import OversightQuestion, load_questions, synthetic_questions
from charter.oversight.run import run_oversight, summarize

__all__ = [
    "PROTOCOLS",
    "OversightConfig",
    "OversightQuestion",
    "PixelConfig",
    "Transcript",
    "bootstrap_interval",
    "calibration",
    "elo_from_wins",
    "load_questions",
    "plan_units",
    "run_oversight",
    "run_pixel_debate",
    "run_units",
    "summarize",
    "synthetic_questions",
    "wilson_interval",
]
