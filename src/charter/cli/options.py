"""Option parsing shared by several commands."""

from __future__ import annotations

from typing import Any

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
