"""Property tests of `charter constitution import` (issue #18.6): the CAI paper's five JSON files
(`--format anthropic`) and llm-swarm's constitution JSON (`--format hf`).

Generated files are near-valid documents of each file's shape with hostile values put in
(empty `critic`, `"prompt": []`, `corrects` without `incorrects`, `system_chat: 5`, no
principles: each once crashed the importer), plus hostile JSON of any shape. Each import either
succeeds and writes a constitution that loads back with the same hash, or exits 2 with one
paragraph and writes nothing.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from charter.constitution.importers import ANTHROPIC_FILES
from charter.constitution.load import load_constitution
from fuzzing import CASES, NASTY_TEXT, check_message, dumps, files_under, json_values, run_main

good = st.sampled_from(["Identify harm.", "Rewrite it kindly.", "Which is more helpful?", "ن"])
value: st.SearchStrategy[Any] = st.one_of(
    good, good, json_values, st.sampled_from(NASTY_TEXT), st.just([])
)
transcript = st.one_of(
    st.builds(
        lambda a, b, c, d: (
            f"\n\nHuman: hi\n\nAssistant: yo\n\nCritiqueRequest: {a}\n\nCritique: {b}"
            f"\n\nRevisionRequest: {c}\n\nRevision: {d}"
        ),
        good, good, good, good,
    ),
    value,
)  # fmt: skip
principle_entry = st.fixed_dictionaries({}, optional={"prompt": value, "edit_request": value})
label_entry = st.fixed_dictionaries(
    {"prompt": value}, optional={"corrects": value, "incorrects": value}
)
SHAPES: dict[str, st.SearchStrategy[Any]] = {
    "critique_revision": st.dictionaries(
        st.sampled_from(["harm", "p1", ""]), principle_entry, max_size=3
    ),
    "comparison": st.one_of(
        st.lists(value, max_size=3), st.dictionaries(st.sampled_from(["a", "b"]), value)
    ),
    "critique_revision_examples": st.lists(transcript, max_size=2),
    "label_examples": st.lists(label_entry, max_size=2),
}
swarm = st.fixed_dictionaries(
    {},
    optional={
        "constitutions": st.one_of(
            st.lists(
                st.fixed_dictionaries({}, optional={"critic": value, "revision": value}), max_size=3
            ),
            value,
        ),
        "system_chat": st.one_of(
            st.lists(
                st.lists(
                    st.fixed_dictionaries(
                        {"role": st.sampled_from(["user", "assistant", "x"]), "content": value}
                    ),
                    max_size=3,
                ),
                max_size=2,
            ),
            value,
        ),
    },
)


def write(path: Path, data: Any, raw: bytes | None, ascii_only: bool) -> None:
    path.write_bytes(raw if raw is not None else dumps(data, ascii_only).encode("utf-8"))


def imported(root: Path, args: list[str]) -> None:
    out = root / "out" / "c.yaml"
    before = files_under(root)
    code, _, err = run_main(["constitution", "import", *args, "--out", str(out)])
    assert code in (0, 2), err
    if code == 2:
        assert err.startswith("charter: error: "), err
        check_message(err.strip().removeprefix("charter: error: "))
        assert files_under(root) == before  # nothing written, not even the folder
    else:
        c = load_constitution(str(out))
        assert c.principles and len(c.compute_sha256()) == 64


@CASES
@given(
    chosen=st.lists(st.sampled_from(sorted(ANTHROPIC_FILES)), min_size=1, max_size=3, unique=True),
    data=st.data(),
    ascii_only=st.booleans(),
)
def test_anthropic_files_import_or_fail_typed(
    chosen: list[str], data: st.DataObject, ascii_only: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "paper"
        folder.mkdir()
        for name in chosen:
            shape = SHAPES[ANTHROPIC_FILES[name]]
            content = data.draw(st.one_of(shape, shape, shape, json_values))
            raw = data.draw(st.one_of(st.none(), st.none(), st.binary(max_size=20)))
            write(folder / name, content, raw, ascii_only)
        as_folder = data.draw(st.booleans())
        sources = [str(folder)] if as_folder else [str(folder / n) for n in chosen]
        imported(root, ["--format", "anthropic", *sources])


@CASES
@given(
    content=st.one_of(swarm, swarm, json_values),
    raw=st.one_of(st.none(), st.binary(max_size=20)),
    ascii_only=st.booleans(),
)
def test_llm_swarm_json_imports_or_fails_typed(
    content: Any, raw: bytes | None, ascii_only: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write(root / "swarm.json", content, raw, ascii_only)
        imported(root, ["--format", "hf", str(root / "swarm.json")])


def test_the_generated_imports_include_successes() -> None:
    """A property whose files never import would test only the error path."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        doc = {"constitutions": [{"critic": "Identify harm.", "revision": "Rewrite it."}]}
        (root / "swarm.json").write_text(json.dumps(doc))
        imported(root, ["--format", "hf", str(root / "swarm.json")])
        assert (root / "out" / "c.yaml").exists()
