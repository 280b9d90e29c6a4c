"""Property tests of constitution files (YAML and JSON) and `charter constitution validate`.

Generated files mix near-valid constitutions with hostile values (YAML dates, sets, bytes, huge
numbers, lone surrogates, control characters, non-text keys) and hostile syntax (anchors and
aliases, tags, deep nesting, several documents). Each either loads, hashes and exports, or fails
with a typed `CharterError` naming the file; `validate` exits 0 or 1 accordingly and writes
nothing.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import find, given, settings
from hypothesis import strategies as st

from charter.constitution.load import dump_constitution, parse_constitution, read_constitution_file
from charter.errors import CharterError, InputError
from fuzzing import CASES, NASTY_TEXT, check_message, deep, files_under, run_main, scalars, texts

yaml_scalars: st.SearchStrategy[Any] = st.one_of(
    scalars,
    st.dates(),
    st.datetimes(),
    st.binary(max_size=8),
)
yaml_values: st.SearchStrategy[Any] = st.recursive(
    yaml_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.one_of(texts, st.integers(), st.dates()), inner, max_size=3)
        | st.sets(st.one_of(st.integers(), texts), max_size=3)
    ),
    max_leaves=8,
)
good_text = st.sampled_from(["Find harm.", "Remove the harm.", "Which is kinder?", "ن"])
text_value = st.one_of(good_text, good_text, yaml_values)
source = st.fixed_dictionaries(
    {"kind": st.one_of(st.sampled_from(["udhr", "paper", "custom", "blog"]), yaml_values)},
    optional={"ref": st.one_of(good_text, yaml_values), "note": text_value},
)
texts_of_a_principle = {"critique": text_value, "revision": text_value, "comparison": text_value}
principle = st.fixed_dictionaries(
    {"id": st.one_of(st.sampled_from(["a", "b", "harm-1", "x y"]), yaml_values)},
    optional={
        **texts_of_a_principle,
        "sources": st.one_of(st.lists(source, max_size=2), yaml_values),
        "translations": st.one_of(
            st.dictionaries(
                st.sampled_from(["ar", "fr"]),
                st.fixed_dictionaries({}, optional=texts_of_a_principle),
                max_size=2,
            ),
            yaml_values,
        ),
        "tags": yaml_values,
        "provenance": yaml_values,
        "colour": texts,
    },
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "moderator"]), "content": text_value}
)
example = st.fixed_dictionaries(
    {"messages": st.lists(message, max_size=3)},
    optional={
        "critique_request": text_value,
        "critique": text_value,
        "revision_request": text_value,
        "revision": text_value,
        "chosen": text_value,
        "rejected": text_value,
    },
)
constitutions = st.fixed_dictionaries(
    {"name": st.one_of(st.just("t"), yaml_values), "principles": st.lists(principle, max_size=3)},
    optional={
        "version": st.one_of(st.just("1"), yaml_values),
        "description": text_value,
        "few_shot": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "critique_revision": st.lists(example, max_size=2),
                    "labeling": st.lists(example, max_size=2),
                },
            ),
            yaml_values,
        ),
        "sha256": text_value,
        "schema_version": yaml_values,
    },
)

# Constitutions that should load, so that the success path (hash, export, reload) is tested as
# often as the error paths: the mixed strategy above almost never draws one.
principle_required: dict[str, st.SearchStrategy[Any]] = {
    "id": st.sampled_from(["a", "b", "harm-1"]),
    "critique": good_text,
    "revision": good_text,
    "comparison": good_text,
}
principle_optional: dict[str, st.SearchStrategy[Any]] = {
    "sources": st.lists(st.fixed_dictionaries({"kind": st.just("custom")}), max_size=1)
}
valid_principle = st.fixed_dictionaries(principle_required, optional=principle_optional)
valid_required: dict[str, st.SearchStrategy[Any]] = {
    "name": st.sampled_from(["t", "ن"]),
    "principles": st.lists(valid_principle, min_size=1, max_size=3, unique_by=lambda p: p["id"]),
}
valid_optional: dict[str, st.SearchStrategy[Any]] = {
    "version": st.just("1"),
    "description": good_text,
}
valid_constitutions = st.fixed_dictionaries(valid_required, optional=valid_optional)

# Syntax that no dumper writes: spliced into generated files at random places.
SPLICES = [
    "&a ",
    "*a",
    "!!python/object/apply:os.system ['true'] ",
    "!!binary ",
    "!!set ",
    "<<: *a\n",
    "\x00",
    "\x1b",
    "\t",
    "\n---\n",
    "\n...\n",
    '"\\ud800"',
    "? [a, b]\n: c\n",
    "%YAML 1.1\n",
    deep(200),
    "- " * 300 + "x\n",
    "9" * 5000,  # past Python's limit for int(str)
    "a: &x [1, 1]\nb: &y [*x, *x]\nc: [*y, *y]\n",
    *NASTY_TEXT,
]


@st.composite
def files(draw: st.DrawFn) -> tuple[bytes, Any]:
    """(file content, the Python value it was written from, or None for spliced text)."""
    data: Any = draw(st.one_of(valid_constitutions, constitutions, constitutions, yaml_values))
    if draw(st.booleans()):
        try:
            text = json.dumps(data, ensure_ascii=draw(st.booleans()))
        except (TypeError, ValueError):  # dates, sets, bytes, non-text keys: YAML only
            text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    else:
        text = yaml.safe_dump(data, allow_unicode=draw(st.booleans()), sort_keys=False)
    splices = draw(
        st.lists(st.tuples(st.integers(0, len(text)), st.sampled_from(SPLICES)), max_size=3)
    )
    for at, piece in sorted(splices, reverse=True):
        text = text[:at] + piece + text[at:]
    content = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        content = draw(st.binary(max_size=40)) + content
    return content, None if splices else data


@CASES
@given(case=files())
def test_constitution_files_load_or_fail_typed_and_validate_agrees(
    case: tuple[bytes, Any],
) -> None:
    content, _ = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_bytes(content)
        loaded = _load(path)
        code, out, err = run_main(["constitution", "validate", str(path)])
        if isinstance(loaded, InputError):
            assert code == 1, err
            assert not out and err.startswith(str(path)), err
            for line in err.splitlines()[:-1]:  # every problem on its line, naming the file
                assert line.startswith(str(path)), line
                check_message(line)
        else:
            assert code == 0, err
            assert out.startswith(f"{path}: ok - ")
        assert files_under(Path(tmp)) == {"c.yaml"}


@CASES
@given(data=st.one_of(constitutions, yaml_values))
def test_parsed_values_of_any_type_validate_or_fail_typed(data: Any) -> None:
    # Python callers hand over values no YAML loader makes (sets, bytes, dates, huge numbers):
    # the schema's error messages must still be one readable paragraph.
    try:
        c = parse_constitution(data, "c.yaml")
    except CharterError as e:
        check_message(str(e))
        assert str(e).startswith("c.yaml")
    else:
        _round_trip(c)


def _load(path: Path) -> Any:
    try:
        c = read_constitution_file(path)
    except CharterError as e:
        check_message(str(e))
        assert str(e).startswith(str(path)), str(e)
        return e
    _round_trip(c)
    return c


def _round_trip(c: Any) -> None:
    for fmt in ("yaml", "json"):
        text = dump_constitution(c, fmt)
        text.encode("utf-8")
        again = parse_constitution(yaml.safe_load(text), "again")
        assert again.compute_sha256() == c.compute_sha256()


def test_the_generated_files_include_valid_constitutions() -> None:
    # A property test whose files never load would test only the error path.
    def valid(case: tuple[bytes, Any]) -> bool:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "c.yaml"
            path.write_bytes(case[0])
            return not isinstance(_load(path), CharterError)

    content, _ = find(files(), valid, settings=settings(database=None, max_examples=5000))
    assert b"principles" in content
