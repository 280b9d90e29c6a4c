"""`charter assembly serve`: the public-input web app."""

from __future__ import annotations

import click


@click.group()
def assembly() -> None:
    """Collect statements and votes on the web (a Polis-style public-input app)."""
