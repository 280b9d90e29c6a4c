"""Where the shared real Polis data lives, and the skip marker for when it is absent.

The data (../shared/data/polis) is never copied into the repo: CI has it beside the checkout; a
fresh clone does not, and the tests that need it skip, saying why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
POLIS = DATA / "polis"
OPEN_DATA = ("15-per-hour-seattle", "brexit-consensus")

needs_polis_data = pytest.mark.skipif(
    not POLIS.is_dir(),
    reason=f"the shared Polis data is not at {POLIS} (../shared/data is absent in a fresh clone)",
)


def open_data(name: str) -> Path:
    return POLIS / "opendata" / name


def ccai() -> Path:
    return POLIS / "ccai"
