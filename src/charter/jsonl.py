"""Reading JSONL at the edge: every line validated, every problem reported with file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from charter.errors import InputError

M = TypeVar("M", bound=BaseModel)


def describe_validation_error(err: ValidationError) -> str:
    """One line per problem: the dotted field, what was wrong, and what was given."""
    parts = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(record)"
        msg = e["msg"]
        given = e.get("input")
        shown = (
            ""
            if isinstance(given, dict)
            else f" (got {json.dumps(given, ensure_ascii=False)[:60]})"
        )
        parts.append(f"field `{field}`: {msg}{shown}")
    return "; ".join(parts)


def iter_jsonl_lines(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """Yield (line number, object) per non-blank line; raise `InputError` on the first bad one."""
    if not path.exists():
        raise InputError(path, None, "file not found")
    if path.is_dir():
        raise InputError(path, None, "is a folder, expected a JSONL file")
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(
                    path,
                    lineno,
                    f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})",
                ) from None
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise InputError(
                    path, lineno, f"invalid JSON: {e.msg} at column {e.colno}"
                ) from None
            if not isinstance(obj, dict):
                raise InputError(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def read_jsonl_numbered(path: str | Path, model: type[M]) -> list[tuple[int, M]]:
    """Load and validate a whole JSONL file of `model` records, each with its line number."""
    path = Path(path)
    out = []
    for lineno, obj in iter_jsonl_lines(path):
        try:
            out.append((lineno, model.model_validate(obj)))
        except ValidationError as e:
            raise InputError(path, lineno, describe_validation_error(e)) from None
    return out


def read_jsonl(path: str | Path, model: type[M]) -> list[M]:
    """Load and validate a whole JSONL file of `model` records."""
    return [record for _, record in read_jsonl_numbered(path, model)]
