"""The cells and rows of the input files, read at the edge: CSV records with the line where
each starts (a quote never closed is an error naming that line), columns matched through their
aliases, vote and integer values checked, and one file's problems collected for one error
message (or counted by reason, when lenient).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from charter.collective.conversation import INT64_MAX, INT64_MIN
from charter.errors import InputError

VOTE_TEXT = {"1": 1, "+1": 1, "1.0": 1, "0": 0, "0.0": 0, "-0": 0, "-1": -1, "-1.0": -1}
MAX_LISTED = 5  # offending rows quoted in an error message


@dataclass
class Problems:
    """Offending rows of one file: kept for the error message, or counted when lenient."""

    path: Path
    lenient: bool
    found: list[tuple[int, str, str]] = field(default_factory=list)  # (line, reason, detail)
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, line: int, reason: str, detail: str) -> None:
        self.counts[reason] += 1
        if len(self.found) < MAX_LISTED:
            self.found.append((line, reason, detail))

    def raise_if_any(self) -> None:
        if not self.counts or self.lenient:
            return
        total = sum(self.counts.values())
        first_line, _, first = self.found[0]
        rest = "; ".join(f"line {ln}: {d}" for ln, _, d in self.found[1:])
        summary = ", ".join(f"{n} {reason}" for reason, n in sorted(self.counts.items()))
        more = f"; also {rest}" if rest else ""
        raise InputError(
            self.path,
            first_line,
            f"{first}{more} ({total} bad in all: {summary}; pass --lenient to drop them)",
        )


def parse_vote(raw: object) -> int | None:
    """A vote from a CSV cell or JSON value; None when it is not -1, 0 or 1.

    >>> [parse_vote(x) for x in ("1", " -1 ", "0.0", 1, "2", True, "agree")]
    [1, -1, 0, 1, None, None, None]
    """
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if raw in (-1, 0, 1) else None
    if isinstance(raw, float):
        return int(raw) if raw in (-1.0, 0.0, 1.0) else None
    if isinstance(raw, str):
        return VOTE_TEXT.get(raw.strip())
    return None


def parse_integer(raw: object) -> int | None:
    """A timestamp or group id: an integer that fits numpy's int64; None for an empty cell.

    Raises `ValueError` saying what is wrong (callers add the file, line and column).

    >>> [parse_integer(x) for x in ("1700000000000", " 7 ", "2.0", "", None, 3)]
    [1700000000000, 7, 2, None, None, 3]
    >>> for bad in ("inf", "nan", "1e30", "9223372036854775808", "1.5", "x"):
    ...     try:
    ...         parse_integer(bad)
    ...     except ValueError as e:
    ...         print(e)
    not a finite number: "inf"
    not a finite number: "nan"
    beyond a 64-bit integer: "1e30"
    beyond a 64-bit integer: "9223372036854775808"
    not a whole number: "1.5"
    not a number: "x"
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    shown = json.dumps(raw, ensure_ascii=False)[:40]
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError(f"expected an integer, got {shown}")
    if isinstance(raw, int):
        value = raw
    else:
        text = raw.strip() if isinstance(raw, str) else ""
        if text and _DIGITS.fullmatch(text):
            # Length first: int() of thousands of digits is slow, then refused by Python.
            too_long = len(text.lstrip("+-").lstrip("0")) > 19
            value = INT64_MAX + 1 if too_long else int(text)
        else:
            try:
                number = raw if isinstance(raw, float) else float(text)
            except ValueError:
                raise ValueError(f"not a number: {shown}") from None
            if not math.isfinite(number):
                # float() turns "1e999" into inf: a finite spelling too big for any clock
                big = bool(text) and not any(w in text.lower() for w in ("inf", "nan"))
                raise ValueError(
                    f"{'beyond a 64-bit integer' if big else 'not a finite number'}: {shown}"
                )
            if not number.is_integer():
                raise ValueError(f"not a whole number: {shown}")
            value = int(number)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"beyond a 64-bit integer: {shown}")
    return value


_DIGITS = re.compile(r"[+-]?[0-9]+")


def resolve_columns(
    path: Path,
    header: Sequence[str],
    aliases: Mapping[str, tuple[str, ...]],
    required: Sequence[str],
    skipped: frozenset[str],
) -> dict[str, int]:
    """Map canonical names to column positions; unknown or doubled columns are errors."""
    found: dict[str, int] = {}
    spelled: dict[str, str] = {}
    for i, raw in enumerate(header):
        name = raw.strip()
        canonical = next((c for c, names in aliases.items() if name in names), None)
        if canonical is None:
            if name in skipped:
                continue
            known = ", ".join(a[0] for a in aliases.values())
            raise InputError(path, 1, f"unknown column `{name}` (column {i + 1}); expected {known}")
        if canonical in found:
            raise InputError(
                path,
                1,
                f"columns `{spelled[canonical]}` and `{name}` both give `{canonical}`",
            )
        found[canonical] = i
        spelled[canonical] = name
    for name in required:
        if name not in found:
            spellings = ", ".join(f"`{a}`" for a in aliases[name])
            raise InputError(path, 1, f"missing column `{name}` (spelled {spellings})")
    return found


def csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number where the record starts, cells) for every record, the header included.

    `strict=True`: without it, a quote that is never closed silently turns the rest of the file
    into one cell; with it, the reader fails, and the error names the line where the broken
    record starts.
    """
    if not path.is_file():
        raise InputError(path, None, "file not found" if not path.exists() else "not a file")
    last = 0
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, strict=True)
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as e:
                    problem = _describe_csv_error(e, last + 1, reader.line_num)
                    raise InputError(path, last + 1, problem) from None
                start, last = last + 1, reader.line_num
                if not cells or (len(cells) == 1 and not cells[0].strip() and start > 1):
                    continue
                yield start, cells
    except UnicodeDecodeError:
        line, column, byte = _first_bad_utf8(path)
        raise InputError(
            path, line, f"not valid UTF-8 (byte 0x{byte:02x}, byte {column} of the line)"
        ) from None


def _first_bad_utf8(path: Path) -> tuple[int, int, int]:
    """(line, column, byte) of the first byte that is not UTF-8; the reader's own error gives
    only an offset into the block it was decoding."""
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                return lineno, e.start + 1, raw[e.start]
    return 1, 1, 0  # not reached: the reader found one


def _describe_csv_error(err: csv.Error, start: int, end: int) -> str:
    if "unexpected end of data" in str(err):
        return (
            "a quoted cell in the record starting on this line is never closed: the file ends "
            f"inside it (line {end}); close the quote, or double a quote that is part of the text"
        )
    spans = f" (the record runs on to line {end}: an unclosed quote swallows the lines after it)"
    return f"malformed CSV: {err}{spans if end > start else ''}"


def csv_header(path: Path) -> list[str]:
    for _, cells in csv_rows(path):
        return [c.strip() for c in cells]
    raise InputError(path, None, "empty file: expected a header row")


def cell_at(cells: Sequence[str], index: int | None) -> str:
    return cells[index] if index is not None and index < len(cells) else ""
