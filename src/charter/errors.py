"""Typed errors for things a user can fix, and the one formatter of validation errors.

Every error that reaches the command line as a `CharterError` is printed as one paragraph and
ends the process with exit code 2 (docs/errors.md lists every exit code); anything else is a bug
and keeps its traceback. `describe_validation_error` turns a pydantic `ValidationError` into the
user's terms ("field `principles.0.critique`: expected text (got 5)") and is safe for any input a
YAML or JSON file can hold: dates, sets, bytes, huge numbers, deep or huge values.

pydantic is not imported here: this module is loaded by `charter --help`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

# How much of a bad value a message shows: enough to recognise it, never a screenful.
SHOWN_CHARS = 60
SHOWN_ITEMS = 4


class CharterError(Exception):
    """A problem the user can act on: bad input, bad config, an unreachable server."""

    exit_code = 2


class InputError(CharterError):
    """A malformed input file; the message names the file, line and field.

    `problems` keeps each (line, text) separately for commands that list them one per line
    (`charter constitution validate`); the message joins them into one paragraph.
    """

    def __init__(
        self,
        path: object,
        line: int | None,
        problem: str,
        *,
        problems: Sequence[tuple[int | None, str]] = (),
    ) -> None:
        where = f"{path}" if line is None else f"{path}, line {line}"
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem
        self.problems: list[tuple[int | None, str]] = list(problems) or [(line, problem)]

    @classmethod
    def of_problems(cls, path: object, problems: Sequence[tuple[int | None, str]]) -> InputError:
        """One error for several problems of one file, each with its own line (or None).

        >>> str(InputError.of_problems("c.yaml", [(3, "field `a`: bad"), (7, "field `b`: bad")]))
        'c.yaml, line 3: field `a`: bad; line 7: field `b`: bad'
        """
        first_line, first = problems[0]
        rest = [text if line is None else f"line {line}: {text}" for line, text in problems[1:]]
        return cls(path, first_line, "; ".join([first, *rest]), problems=problems)


class ConfigError(CharterError):
    """An invalid run configuration (unknown key, wrong type, unknown preset)."""


class BackendError(CharterError):
    """A model backend could not be created or could not answer."""


class RunFolderError(CharterError):
    """A run folder is in a state that the requested action cannot continue from."""


# -- validation errors in the user's terms -----------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """One validation problem: where (`loc`, the user's path to the value) and what."""

    loc: tuple[str | int, ...]
    what: str  # "expected text (got 5)"; for a whole record, its validator's own sentence

    @property
    def field(self) -> str:
        return field_path(self.loc)

    def text(self, noun: str = "field") -> str:
        if not self.loc:
            return self.what
        if self.what == UNKNOWN:
            return f"unknown {noun} `{self.field}`"
        return f"{noun} `{self.field}`: {self.what}"


UNKNOWN = "\0unknown"  # marks an extra (misspelt) field; `Problem.text` words it
# pydantic's names for union members and wrapped validators, which are not the user's fields.
_TYPE_TAGS = frozenset(
    {"str", "int", "float", "bool", "none", "bytes", "list", "dict", "set", "tuple", "decimal"}
)
_NUMBER_BOUNDS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}
_EXPECTED = {
    "string_type": "expected text",
    "string_unicode": "expected text",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "finite_number": "expected a finite number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "set_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping of fields",
    "model_attributes_type": "expected a mapping of fields",
    "dataclass_type": "expected a mapping of fields",
    "none_required": "expected nothing (null)",
    "recursion_loop": "nested too deeply",
}


def validation_problems(err: ValidationError) -> list[Problem]:
    """The problems of a `ValidationError`, in order, one per field (union members merged)."""
    merged: dict[tuple[str | int, ...], list[str]] = {}
    for e in err.errors(include_url=False):
        loc, is_key = _user_loc(e["loc"])
        what = _what(e, is_key)
        whats = merged.setdefault(loc, [])
        if what not in whats:
            whats.append(what)
    return [Problem(loc, _join_alternatives(whats)) for loc, whats in merged.items()]


def describe_validation_error(err: ValidationError, noun: str = "field") -> str:
    """One paragraph: each problem as "field `a.b`: what was expected (got …)".

    >>> from pydantic import BaseModel
    >>> class Row(BaseModel):
    ...     n: int
    >>> try:
    ...     Row.model_validate({"n": "many"})
    ... except ValueError as e:
    ...     print(describe_validation_error(e))  # type: ignore[arg-type]
    field `n`: expected a whole number (got "many")
    """
    return "; ".join(p.text(noun) for p in validation_problems(err))


def _user_loc(loc: Iterable[str | int]) -> tuple[tuple[str | int, ...], bool]:
    """pydantic's location without its type tags; and whether the problem is a mapping key."""
    out: list[str | int] = []
    is_key = False
    for part in loc:
        if part == "[key]":
            is_key = True
        elif isinstance(part, str) and (part in _TYPE_TAGS or _is_wrapper_tag(part)):
            continue
        else:
            out.append(part)
    return tuple(out), is_key


def _is_wrapper_tag(part: str) -> bool:
    # `function-after[_check(), Model]`, `list[Message]`, `lax-or-strict[...]`
    return part.endswith("]") and "[" in part and not part.startswith("[")


def _what(e: Mapping[str, Any], is_key: bool) -> str:
    kind = str(e.get("type", ""))
    ctx: Mapping[str, Any] = e.get("ctx") or {}
    given = e.get("input")
    if kind == "missing":
        return "required, but missing"
    if kind == "extra_forbidden":
        return UNKNOWN
    if kind in ("value_error", "assertion_error"):
        # A validator's own sentence, already in the user's terms; the whole record is not shown.
        msg = str(e.get("msg", ""))
        return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind in _NUMBER_BOUNDS:
        key, words = _NUMBER_BOUNDS[kind]
        expected = f"expected a number {words} {_show_number(ctx.get(key))}"
    elif kind in ("literal_error", "enum"):
        expected = f"expected {ctx.get('expected', 'one of the allowed values')}"
    elif kind in ("too_short", "too_long", "string_too_short", "string_too_long"):
        expected = _length_expectation(kind, ctx)
    elif kind == "string_pattern_mismatch":
        expected = f"expected text matching the pattern {ctx.get('pattern', '')}"
    elif kind in _EXPECTED:
        expected = _EXPECTED[kind]
    else:
        msg = str(e.get("msg", "invalid value"))
        expected = (
            "expected " + msg.removeprefix("Input should be ")
            if msg.startswith("Input should be ")
            else msg[:1].lower() + msg[1:]
        )
    if is_key:
        expected = f"a key: {expected}"
    return f"{expected} (got {show_value(given)}){_hint(kind, given)}"


def _length_expectation(kind: str, ctx: Mapping[str, Any]) -> str:
    text = kind.startswith("string")
    unit = "character" if text else "item"
    if "min_length" in ctx:
        n = int(ctx["min_length"])
        if n == 1:
            return "expected non-empty text" if text else "expected at least one item"
        return f"expected at least {n} {unit}s"
    n = int(ctx.get("max_length", 0))
    return f"expected at most {n} {unit}{'s' * (n != 1)}"


def _hint(kind: str, given: object) -> str:
    # YAML reads `version: 1.0` or `answer: yes` as a number or a boolean, not as text.
    if kind == "string_type" and isinstance(given, (bool, int, float)):
        return "; put it in quotes to make it text"
    return ""


def _join_alternatives(whats: list[str]) -> str:
    if len(whats) == 1:
        return whats[0]
    return ", or ".join(whats)


def _show_number(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return show_value(value)


def field_path(loc: Iterable[object]) -> str:
    """A value's path as the user writes it, printable whatever the keys hold.

    >>> field_path(["principles", 0, "critique"])
    'principles.0.critique'
    """
    return ".".join(_show_part(p) for p in loc)


def _show_part(part: object) -> str:
    text = str(part)[:SHOWN_CHARS]
    return text if text.isprintable() else _escape(text)


def printable(text: str, limit: int = 200) -> str:
    """`text` cut to `limit` characters, control characters and lone surrogates escaped: for
    a parser's own message, which may quote the input."""
    shown = _escape(text[: limit + 1])
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _escape(text: str) -> str:
    """Text with control characters and lone surrogates escaped, so that any terminal shows it."""
    shown = json.dumps(text, ensure_ascii=False)[1:-1]
    return shown.encode("utf-8", "backslashreplace").decode("utf-8")


def show_value(value: object, limit: int = SHOWN_CHARS) -> str:
    """A short, printable rendering of any value, in JSON style where it has one.

    The work is bounded: a huge string or list is cut before it is rendered.

    >>> show_value("x" * 100)[-8:], show_value([1, 2, 3, 4, 5, 6])
    ('xxxxxx…"', '[1, 2, 3, 4, …]')
    >>> import datetime
    >>> show_value(datetime.date(2024, 1, 1)), show_value({"a", "b"} - {"b"}), show_value(b"hi")
    ('the date 2024-01-01', 'a set {"a"}', '2 bytes')
    """
    text = _render(value, limit, depth=0)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _render(value: object, limit: int, depth: int) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value.bit_length() > 128:  # str() of a huge int is slow, and refused past 4300 digits
            return f"a whole number of about {int(value.bit_length() * 0.30103) + 1} digits"
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        shown = _escape(value[:limit])
        if len(value) > limit or len(shown) > limit - 2:
            shown = shown[: max(limit - 3, 1)] + "…"
        return f'"{shown}"'
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} bytes"
    if isinstance(value, _dt.datetime):
        return f"the time {value.isoformat()}"
    if isinstance(value, _dt.date):
        return f"the date {value.isoformat()}"
    if depth >= 2:
        return "…"
    if isinstance(value, Mapping):
        keys = list(_first(value, SHOWN_ITEMS + 1))
        entries = [f"{_render(k, limit, depth + 1)}: …" for k in keys[:SHOWN_ITEMS]]
        return "{" + ", ".join(entries + ["…"] * (len(keys) > SHOWN_ITEMS)) + "}"
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(_first(value, SHOWN_ITEMS + 1))
        rendered = [_render(x, limit, depth + 1) for x in items[:SHOWN_ITEMS]]
        body = ", ".join(rendered + ["…"] * (len(items) > SHOWN_ITEMS))
        return f"a set {{{body}}}" if isinstance(value, (set, frozenset)) else f"[{body}]"
    return f"a {type(value).__name__}"


def _first(items: Iterable[Any], n: int) -> Iterable[Any]:
    for i, x in enumerate(items):
        if i >= n:
            return
        yield x


# -- operating-system errors ---------------------------------------------------------------------
def describe_os_error(err: OSError) -> str:
    """An `OSError` as one sentence naming the path: "runs/x: cannot write: No space left …".

    >>> import errno
    >>> describe_os_error(PermissionError(errno.EACCES, "Permission denied", "runs"))
    'runs: permission denied'
    """
    reason = err.strerror or str(err) or type(err).__name__
    if err.errno is not None and err.strerror:
        reason = {
            "EACCES": "permission denied",
            "EPERM": "operation not permitted",
            "ENOSPC": "no space left on the device",
            "EDQUOT": "disk quota exceeded",
            "EROFS": "the file system is read-only",
            "ENOENT": "no such file or folder",
            "ENOTDIR": "a part of the path is a file, not a folder",
            "EISDIR": "is a folder, expected a file",
            "EEXIST": "already exists",
            "EMFILE": "too many open files",
        }.get(_errno_name(err.errno), err.strerror)
    paths = [str(p) for p in (err.filename, err.filename2) if p is not None]
    if not paths:
        return reason
    return f"{' -> '.join(os.fsdecode(p) for p in paths)}: {reason}"


def _errno_name(code: int) -> str:
    import errno

    return errno.errorcode.get(code, "")
