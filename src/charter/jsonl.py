"""Reading JSONL at the edge: every line validated, every problem reported with file and line.

Each line goes through `charter.userinput.parse_json` (nesting limit, no lone surrogates) and
then the record's pydantic model; errors are worded by `charter.errors.describe_validation_error`
("p.jsonl, line 3: field `prompt`: expected text (got 5)").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from charter.errors import InputError, describe_validation_error
from charter.userinput import parse_json

M = TypeVar("M", bound=BaseModel)

__all__ = ["describe_validation_error", "iter_jsonl_lines", "read_jsonl", "read_jsonl_numbered"]


def iter_jsonl_lines(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """Yield (line number, object) per non-blank line; raise `InputError` on the first bad one."""
    if not path.exists():
        raise InputError(path, None, "file not found")
    if path.is_dir():
        raise InputError(path, None, "is a folder, expected a JSONL file")
    try:
        f = path.open("rb")
    except OSError as e:
        raise InputError(path, None, f"cannot read it: {e.strerror or e}") from None
    with f:
        for lineno, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(
                    path,
                    lineno,
                    f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})",
                ) from None
            if lineno == 1:
                text = text.removeprefix("\ufeff")
            if not text.strip():
                continue
            obj = parse_json(text, path, lineno)
            if not isinstance(obj, dict):
                raise InputError(path, lineno, f"expected a JSON object, got {_kind(obj)}")
            yield lineno, obj


def _kind(value: object) -> str:
    return {list: "a list", str: "text", bool: "true/false", type(None): "null"}.get(
        type(value), "a number"
    )


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
