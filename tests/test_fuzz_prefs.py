"""Property tests of the training-data loaders (`charter.train.data`): the preference JSONL that
`charter label` writes and `charter train dpo|rm` reads, and the SFT JSONL of `charter train sft`.

Every generated file either loads into rows that turn into TRL's dicts, or fails with a typed
`CharterError` naming the file; the loaders write nothing.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from charter.errors import CharterError
from charter.train.data import (
    load_preference_rows,
    load_sft_rows,
    preference_example,
    sft_example,
)
from fuzzing import CASES, check_message, deep, dumps, files_under, json_values, texts

ROLES = ["user", "assistant", "system"]
message = st.one_of(
    st.fixed_dictionaries(
        {"role": st.sampled_from(ROLES), "content": texts},
        optional={"extra": texts},
    ),
    st.fixed_dictionaries({}, optional={"role": json_values, "content": json_values}),
)
chats = st.one_of(st.lists(message, max_size=3), json_values)
labels = st.one_of(st.floats(allow_nan=True), st.integers(-2, 2), json_values, st.just(0.5))
preference = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(texts, json_values),
        "prompt": chats,
        "chosen": chats,
        "rejected": chats,
        "p_chosen": labels,
        "votes": json_values,  # written by `charter label`; training ignores it
    },
)
sft = st.fixed_dictionaries(
    {}, optional={"id": st.one_of(texts, json_values), "messages": chats, "meta": json_values}
)


@st.composite
def jsonl(draw: st.DrawFn, record: st.SearchStrategy[Any]) -> bytes:
    out = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["record", "record", "record", "deep", "raw"]))
        if kind == "record":
            out.append(dumps(draw(record), draw(st.booleans())).encode("utf-8"))
        elif kind == "deep":
            out.append(f'{{"prompt": {deep(draw(st.integers(0, 3000)))}}}'.encode())
        else:
            out.append(draw(st.one_of(st.binary(max_size=16), texts.map(_encode))))
    return b"\n".join(out) + b"\n"


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _check_loader(content: bytes, load: Any, example: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.jsonl"
        path.write_bytes(content)
        try:
            rows = load(path)
        except CharterError as e:
            check_message(str(e))
            assert str(path) in str(e)
        else:
            assert rows
            for row in rows:  # what TRL gets must be plain, writable JSON
                json.dumps(example(row), ensure_ascii=False).encode("utf-8")
        assert files_under(Path(tmp)) == {"data.jsonl"}


@CASES
@given(content=jsonl(preference), need_p=st.booleans())
def test_preference_rows_load_or_fail_typed(content: bytes, need_p: bool) -> None:
    _check_loader(content, lambda p: load_preference_rows(p, need_p=need_p), preference_example)


@CASES
@given(content=jsonl(sft))
def test_sft_rows_load_or_fail_typed(content: bytes) -> None:
    _check_loader(content, load_sft_rows, sft_example)
