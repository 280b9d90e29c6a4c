"""Prompt sets: the builtin ones written by this project, and loaders for the user's files.

A prompt file is JSONL with one `PromptRecord` per line: `{"id"?, "prompt": str}` or
`{"id"?, "messages": [...]}`, optionally with `meta`. Prompts without an id get a content hash.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from charter.errors import InputError
from charter.jsonl import read_jsonl_numbered
from charter.records import PromptRecord

BUILTIN_PROMPTS = {"demo": "demo.jsonl"}


def builtin_prompt_path(name: str) -> Path:
    return Path(str(resources.files("charter.data") / "prompts" / BUILTIN_PROMPTS[name]))


def load_prompts(source: str | Path) -> list[PromptRecord]:
    """Prompts from a builtin set name or a JSONL file; duplicate ids are an error."""
    path = builtin_prompt_path(str(source)) if str(source) in BUILTIN_PROMPTS else Path(source)
    numbered = read_jsonl_numbered(path, PromptRecord)
    if not numbered:
        raise InputError(path, None, "holds no prompts")
    seen: dict[str, int] = {}
    for lineno, p in numbered:
        key = p.key()
        if key in seen:
            raise InputError(
                path, lineno, f"duplicate prompt id {key!r} (first seen on line {seen[key]})"
            )
        seen[key] = lineno
    return [p for _, p in numbered]
