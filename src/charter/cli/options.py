"""Option parsing shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
import yaml

from charter.errors import ConfigError


def parse_key_values(pairs: tuple[str, ...], flag: str) -> dict[str, Any]:
    """`("concurrency=4",)` → `{"concurrency": 4}` (values read as YAML)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {pair!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return out


F = TypeVar("F", bound=Callable[..., Any])


def prompt_run_options(f: F) -> F:
    """The options every stage command shares: which prompts, and where the run stands."""
    for option in reversed(
        [
            click.option(
                "--lang", type=click.Choice(["en", "ar"]), default="en", show_default=True
            ),
            click.option(
                "--limit",
                type=click.IntRange(min=1),
                default=None,
                help="Only the first N prompts.",
            ),
            click.option(
                "--split",
                type=click.Choice(["train", "eval", "all"]),
                default="train",
                show_default=True,
            ),
            click.option(
                "--resume", is_flag=True, help="Continue the run in --out, skipping finished work."
            ),
            click.option(
                "--overwrite", is_flag=True, help="Delete what --out holds and start again."
            ),
            click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True),
        ]
    ):
        f = option(f)
    return f
