"""`charter train sft|dpo|rm` and `charter score`: training on stage outputs (TRL + PEFT)."""

from __future__ import annotations

import click


@click.group()
def train() -> None:
    """Train models on stage outputs: SFT on revisions, DPO on soft AI labels, reward models."""


@click.command()
def score() -> None:
    """Score answers with a trained preference model."""
