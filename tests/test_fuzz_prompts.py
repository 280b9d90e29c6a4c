"""Property tests of the prompt JSONL loader through `charter generate`, as a user runs it.

Every generated file either loads (and the command writes its run folder) or fails with a typed
`CharterError`: exit status 2, one paragraph naming the file, and no run folder left behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from charter.data import load_prompts
from charter.errors import CharterError
from fuzzing import CASES, check_message, deep, dumps, json_values, run_main, texts

roles = st.one_of(st.sampled_from(["user", "assistant", "system"]), json_values)
messages = st.lists(
    st.fixed_dictionaries(
        {},
        optional={"role": roles, "content": st.one_of(texts, json_values), "name": texts},
    ),
    max_size=3,
)
records: st.SearchStrategy[Any] = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.one_of(texts, json_values),
            "prompt": st.one_of(texts, json_values),
            "messages": st.one_of(messages, json_values),
            "meta": st.one_of(
                st.fixed_dictionaries(
                    {}, optional={"split": st.one_of(st.sampled_from(["train", "eval"]), texts)}
                ),
                json_values,
            ),
            "schema_version": json_values,
            "promt": texts,
        },
    ),
    json_values,
)


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["record", "record", "record", "deep", "raw", "bytes", "blank"]))
    if kind == "record":
        return dumps(draw(records), draw(st.booleans())).encode("utf-8")
    if kind == "deep":
        n = draw(st.integers(0, 3000))
        return f'{{"prompt": "x", "meta": {{"a": {deep(n)}}}}}'.encode()
    if kind == "raw":
        return draw(texts).encode("utf-8", "surrogatepass")
    if kind == "bytes":
        return draw(st.binary(max_size=20))
    return b"   "


prompt_files = st.lists(lines(), min_size=0, max_size=4).map(lambda xs: b"\n".join(xs) + b"\n")


@CASES
@given(content=prompt_files)
def test_generate_with_any_prompts_file_is_typed_and_leaves_nothing_on_failure(
    content: bytes,
) -> None:
    # The parsing is under test, not durability or provenance: skip the fsyncs and the package
    # metadata scan that make each successful run cost ~40 ms.
    with (
        tempfile.TemporaryDirectory() as tmp,
        mock.patch.object(os, "fsync", lambda fd: None),
        mock.patch("charter.runs.package_versions", lambda: {"charter": "test"}),
    ):
        prompts, out = Path(tmp) / "p.jsonl", Path(tmp) / "out"
        prompts.write_bytes(content)
        try:
            load_prompts(prompts)
            loads = True
        except CharterError as e:
            check_message(str(e))
            assert str(prompts) in str(e)
            loads = False
        code, _, err = run_main(
            [
                *("generate", "--model", "fake", "--prompts", str(prompts)),
                *("--out", str(out), "--no-progress", "--max-new-tokens", "4"),
            ]
        )
        if loads:
            assert code == 0, err
            assert (out / "generations.jsonl").exists()
        else:
            assert code == 2, err
            assert err.startswith("charter: error: ") and str(prompts) in err, err
            check_message(err.removesuffix("\n"))
            assert not out.exists(), sorted(p.name for p in out.iterdir())
