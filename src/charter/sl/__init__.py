"""SL-CAI: critique → revision under a constitution, and the SFT dataset it yields.

`charter.sl.revise` is the algorithm (rounds of critique and revision, the SFT rows),
`charter.sl.checks` the checks each revision passes, `charter.sl.stage` the stage (`SL`).
"""

from __future__ import annotations

from charter.sl.checks import check_revision
from charter.sl.revise import (
    SLConfig,
    SLRound,
    SLSample,
    critique_and_revise,
    draw_principles,
)
from charter.sl.stage import SL, SLInputs, SLResult, run_sl

__all__ = [
    "SL",
    "SLConfig",
    "SLInputs",
    "SLResult",
    "SLRound",
    "SLSample",
    "check_revision",
    "critique_and_revise",
    "draw_principles",
    "run_sl",
]
