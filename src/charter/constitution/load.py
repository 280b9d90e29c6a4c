"""Finding, reading and writing constitutions: builtin names, YAML/JSON files, and exports.

Files are read by `charter.userinput` (at most 2 MB, no YAML aliases, no code: JSON is YAML), so
a constitution never executes code; a file that breaks the schema is an error naming the file,
the line and the field of every problem (`c.yaml, line 7: field `principles.3.critique`: …`).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from charter.constitution.schema import Constitution
from charter.errors import InputError, show_value, validation_problems
from charter.userinput import Lines, check_tree, line_of, parse_yaml, read_text

DEFAULT_CONSTITUTION = "udhr"


def builtin_dir() -> Path:
    return Path(str(resources.files("charter.constitution") / "builtin"))


def builtin_names() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.yaml"))


def parse_constitution(data: Any, source: object, lines: Lines | None = None) -> Constitution:
    """Validate already-parsed data; errors name `source`, the line (given `lines`, the map
    `charter.userinput.parse_yaml` returns) and the dotted field of every problem."""
    if not isinstance(data, dict):
        got = "an empty file" if data is None else show_value(data)
        raise InputError(
            source, None, f"expected a mapping with `name` and `principles`, got {got}"
        )
    if lines is None:
        check_tree(data, source)  # parse_yaml checked its own output
    try:
        return Constitution.model_validate(data)
    except ValidationError as e:
        problems = [
            (line_of(lines, p.loc) if lines is not None and p.loc else None, p.text())
            for p in validation_problems(e)
        ]
        raise InputError.of_problems(source, problems) from None


def read_constitution_file(path: str | Path) -> Constitution:
    path = Path(path)
    data, lines = parse_yaml(read_text(path, what="constitution file"), path)
    return parse_constitution(data, path, lines)


def load_constitution(spec: str | Path) -> Constitution:
    """A constitution from a builtin name (`udhr`, `minimal`), a YAML/JSON file, or
    `collective:DIR` (the constitution drafted from public input in DIR)."""
    text = str(spec)
    if text in builtin_names():
        return read_constitution_file(builtin_dir() / f"{text}.yaml")
    if text.startswith("collective:"):
        folder = Path(text.removeprefix("collective:"))
        return read_constitution_file(folder / "constitution.yaml")
    path = Path(text)
    if not path.exists() and path.suffix == "":
        raise InputError(
            text,
            None,
            f"no such constitution: builtin names are {', '.join(builtin_names())}; or give a file",
        )
    return read_constitution_file(path)


def dump_constitution(constitution: Constitution, fmt: str = "yaml") -> str:
    """The constitution as YAML or JSON text, with its sha256 filled in."""
    data = constitution.with_hash().model_dump(mode="json", exclude_none=True)
    # Readable files: each principle starts with its id; empty defaults are left out (they load
    # back to the same values, so the hash is unchanged).
    data["principles"] = [
        {"id": p["id"], **{k: v for k, v in p.items() if k != "id" and v not in ({}, [])}}
        for p in data["principles"]
    ]
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
