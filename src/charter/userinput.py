"""Reading what a user hands charter: whole files with a size limit, YAML and JSON parsed into
plain JSON-like values, and the checks every parsed value passes before a schema sees it.

This sits under every loader at the edge (constitutions, their importers, run configs, `--set`,
JSONL records). What it refuses, and why:

- files over `MAX_DOCUMENT_BYTES` (YAML is parsed in pure Python at ~0.5 MB/s: a 10 MB file took
  26 s and 300 MB);
- YAML anchors and aliases (`&a`, `*a`): a few hundred bytes of nested aliases expand into
  gigabytes once the value is copied or written out (the "billion laughs");
- values nested deeper than `MAX_DEPTH` (parsers and `json.dumps` recurse; 5,000 levels crash);
- lone surrogates (`"\\ud800"` in JSON): they are not text and cannot be written as UTF-8;
- YAML values that JSON has no word for: `!!binary`, `!!set`, `!!omap`, `!!pairs`, non-text
  mapping keys. A YAML date (`version: 2024-01-01`) is kept as the text the user wrote.

Every refusal is an `InputError` naming the source and, where known, the line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from charter.errors import InputError, field_path, printable, show_value

MAX_DOCUMENT_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 64

Lines = dict[tuple[str, ...], int]  # a value's path (keys and indices as text) → its line
_SURROGATE = re.compile("[\ud800-\udfff]")


def read_text(path: str | Path, *, limit: int = MAX_DOCUMENT_BYTES, what: str = "file") -> str:
    """A whole UTF-8 file (a leading BOM dropped), refused past `limit` bytes."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise InputError(path, None, f"{what} not found") from None
    except IsADirectoryError:
        raise InputError(path, None, f"is a folder, expected a {what}") from None
    except OSError as e:
        raise InputError(path, None, f"cannot read it: {e.strerror or e}") from None
    if len(data) > limit:
        raise InputError(
            path,
            None,
            f"larger than the {limit / 2**20:g} MB limit for a {what}: is this the right file?",
        )
    return decode_utf8(data, path)


def decode_utf8(data: bytes, source: object) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise InputError(
            source, line, f"not valid UTF-8 (byte 0x{data[e.start]:02x} at column {column})"
        ) from None


# -- YAML ------------------------------------------------------------------------------------
class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that charter does not take (an alias, a `!!set`, too deep)."""


class _Loader(yaml.SafeLoader):
    """`yaml.SafeLoader` without anchors or aliases, without the types JSON lacks, and with a
    nesting limit enforced while composing (before any recursion can run away)."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        mark: Any = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(
                None,
                None,
                f"YAML aliases (*{event.anchor}) are not allowed: write the value out",
                mark,
            )
        if getattr(event, "anchor", None) is not None:
            raise _Refused(
                None,
                None,
                f"YAML anchors (&{event.anchor}) are not allowed: write each value out",
                mark,
            )
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Refused(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            value: int = super().construct_yaml_int(node)
        except ValueError:  # past Python's 4,300-digit limit for int(str)
            raise _Refused(
                None, None, "a number with too many digits (quote it for text)", node.start_mark
            ) from None
        return value

    def construct_as_text(self, node: yaml.ScalarNode) -> str:
        return str(self.construct_scalar(node))

    def refuse(self, node: yaml.Node) -> Any:
        raise _Refused(
            None,
            None,
            f"the YAML type {node.tag.replace('tag:yaml.org,2002:', '!!')} is not supported here; "
            "use text, numbers, true/false, null, lists and mappings",
            node.start_mark,
        )


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_as_text)
for _tag in ("binary", "set", "omap", "pairs"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _Loader.refuse)


def parse_yaml(text: str, source: object) -> tuple[Any, Lines]:
    """The value of a one-document YAML (or JSON) text, and the line of each value in it.

    An empty document is `None`. Errors are `InputError`s with the line of the problem.
    """
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # the reader refuses control characters here
        node = loader.get_single_node()
        lines: Lines = {}
        if node is not None:
            _collect_lines(node, lines)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = printable(str(e.problem or e.context or "invalid"))
        if not isinstance(e, _Refused):
            problem = f"not valid YAML/JSON: {problem}"
        raise InputError(source, line, problem) from None
    except yaml.YAMLError as e:  # a ReaderError (a control character) has a position, not a mark
        position = getattr(e, "position", None)
        line = text.count("\n", 0, position) + 1 if isinstance(position, int) else None
        raise InputError(source, line, f"not valid YAML/JSON: {_reader_problem(e)}") from None
    except (OverflowError, ValueError) as e:  # the scanner's chr() of an escape like "\UFFFFFFFF"
        line = loader.get_mark().line + 1 if loader is not None else None
        raise InputError(source, line, f"not valid YAML/JSON: {printable(str(e))}") from None
    finally:
        if loader is not None:
            loader.dispose()
    check_tree(data, source, lines)
    return data, lines


def _reader_problem(e: yaml.YAMLError) -> str:
    character = getattr(e, "character", None)
    if isinstance(character, str):
        character = ord(character)
    if isinstance(character, int):
        return f"the character U+{character:04X} is not allowed (a control character?)"
    return printable(str(e).splitlines()[0])


def _collect_lines(root: yaml.Node, lines: Lines) -> None:
    stack: list[tuple[yaml.Node, tuple[str, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
                lines[(*path, name)] = key.start_mark.line + 1
                stack.append((value, (*path, name)))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                stack.append((item, (*path, str(i))))


def line_of(lines: Lines, loc: tuple[str | int, ...]) -> int | None:
    """The line of the value at `loc`, or of its nearest enclosing value that has one."""
    path = tuple(str(p) for p in loc)
    while True:
        if path in lines:
            return lines[path]
        if not path:
            return None
        path = path[:-1]


# -- JSON ------------------------------------------------------------------------------------
def parse_json(text: str, source: object, line: int | None = None) -> Any:
    """`json.loads` whose every failure is an `InputError` (and whose result passed `check_tree`).

    `line` is the line of `text` in its file (a JSONL record); errors then name that line.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        where = line if line is not None else e.lineno
        column = f" at column {e.colno}" if line is not None else ""
        raise InputError(source, where, f"invalid JSON: {e.msg}{column}") from None
    except RecursionError:
        raise InputError(source, line, f"nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as e:  # an integer past Python's 4,300-digit limit
        raise InputError(source, line, f"invalid JSON: {e}") from None
    check_tree(data, source, None, line=line, surrogates="\\u" in text or "\\U" in text)
    return data


# -- the checks every parsed value passes ----------------------------------------------------
def check_tree(
    data: Any,
    source: object,
    lines: Lines | None = None,
    *,
    line: int | None = None,
    surrogates: bool = True,
) -> None:
    """Refuse values nested deeper than `MAX_DEPTH`, lone surrogates, non-text keys and values
    that are not JSON's (text, numbers, true/false, null, lists, mappings).

    `surrogates=False` skips the text scan (JSON text without `\\u` escapes has none).
    """
    for path, value, depth in _walk(data):
        where = line_of(lines, path) if lines is not None else line
        if depth > MAX_DEPTH:
            raise InputError(source, where, f"{_at(path)}nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    raise InputError(
                        source,
                        where,
                        f"{_at(path)}the key {show_value(key)} is not text (put it in quotes)",
                    )
                if surrogates and _SURROGATE.search(key):
                    raise InputError(source, where, f"{_at(path)}a key holds {_SURROGATE_TEXT}")
        elif isinstance(value, str):
            if surrogates and _SURROGATE.search(value):
                raise InputError(source, where, f"{_at(path)}{_SURROGATE_TEXT}")
        elif not isinstance(value, _JSON_TYPES):  # only from Python callers: parsers never do
            raise InputError(
                source,
                where,
                f"{_at(path)}expected text, a number, true/false, null, a list or a mapping "
                f"(got {show_value(value)})",
            )


_JSON_TYPES = (bool, int, float, list, tuple, type(None))
_SURROGATE_TEXT = "an unpaired UTF-16 surrogate (such as \\ud800), which is not text"


def _at(path: tuple[str | int, ...]) -> str:
    return f"field `{field_path(path)}`: " if path else ""


def _walk(data: Any) -> Iterator[tuple[tuple[str | int, ...], Any, int]]:
    """Every value with its path and depth, without recursion."""
    stack: list[tuple[tuple[str | int, ...], Any, int]] = [((), data, 0)]
    while stack:
        path, value, depth = stack.pop()
        yield path, value, depth
        if depth > MAX_DEPTH:
            return
        if isinstance(value, dict):
            stack.extend(((*path, str(k)), v, depth + 1) for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend(((*path, i), v, depth + 1) for i, v in enumerate(value))
