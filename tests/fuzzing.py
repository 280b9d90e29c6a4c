"""Shared pieces of the property tests (tests/test_fuzz_*.py): hostile values and text, the
settings every property test runs with, and `charter` run in-process as the command line runs
it (`charter.cli.main`: exit status and the one-paragraph message on stderr)."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from charter.errors import CharterError

# At least 1,000 generated cases per parser in `make test`; no example database on disk (the
# tests write nothing outside their temporary folders).
CASES = settings(
    max_examples=1000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

T = TypeVar("T")

# Text that has broken parsers: lone surrogates, NUL and other control characters, a BOM, YAML
# and JSON syntax, long runs.
NASTY_TEXT = [
    "\ud800",
    "a\udfffb",
    "\x00",
    "\x07\x1b[31m",
    "\ufeff",
    "",
    " ",
    "null",
    "[",
    "{",
    "*a",
    "&a x",
    "!!python/object/apply:os.system ['true']",
    "2024-01-01",
    "1e999",
    "0x1F",
    "yes",
    "~",
    "- a",
    "a: b",
    "#",
    "\t",
    "x" * 300,
]
texts: st.SearchStrategy[str] = st.one_of(
    st.text(max_size=12), st.sampled_from(NASTY_TEXT), st.text(alphabet="[]{}:,-&*!'\"\\\n ")
)
scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**40, max_value=10**60),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
)
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


def deep(n: int, opener: str = "[", closer: str = "]") -> str:
    return opener * n + closer * n


def dumps(value: Any, ascii_only: bool) -> str:
    """JSON text of `value`; lone surrogates can only be written as `\\ud800` escapes."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value, ensure_ascii=True)
    return text


def typed_or_ok(fn: Callable[[], T]) -> T | CharterError:
    """`fn()`, or the `CharterError` it raised, checked to be one paragraph a person can read;
    any other exception fails the test (it is the untyped crash the property tests look for)."""
    try:
        return fn()
    except CharterError as e:
        check_message(str(e))
        return e


def check_message(message: str) -> None:
    assert message.strip(), "an error without a message"
    assert "\n" not in message, f"not one paragraph: {message!r}"
    assert "Traceback" not in message
    assert len(message) < 4000, f"a message of {len(message)} characters"
    message.encode("utf-8", "strict")  # printable, whatever the input held


def run_main(args: list[str], cwd: Path | None = None) -> tuple[int, str, str]:
    """`charter ARGS` in this process: (exit status, stdout, stderr)."""
    from charter.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with (
        redirect_stdout(out),
        redirect_stderr(err),
        mock.patch.object(sys, "argv", ["charter", *args]),
    ):
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code, out.getvalue(), err.getvalue()


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}
