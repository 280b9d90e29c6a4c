"""`charter redteam` and `charter evals generate|run`: models that test models."""

from __future__ import annotations

import click


@click.command()
def redteam() -> None:
    """Automated red-teaming: an attacker model writes attacks against target models."""


@click.group()
def evals() -> None:
    """Model-written evaluations: generate persona statements, score models on them."""
