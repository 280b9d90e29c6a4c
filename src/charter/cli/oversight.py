"""`charter oversight run|pixel-debate`: scalable-oversight experiments."""

from __future__ import annotations

import click


@click.group()
def oversight() -> None:
    """Scalable oversight: debate, consultancy, blind and oracle judges; pixel debate."""
