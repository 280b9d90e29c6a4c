from __future__ import annotations

import pytest
from pydantic import ValidationError

from charter.records import (
    GenerationRecord,
    Message,
    OptionQuery,
    PromptRecord,
    Sampling,
    stable_id,
)


def test_prompt_forms_and_ids() -> None:
    p = PromptRecord(prompt="hi")
    assert p.chat() == [Message(role="user", content="hi")]
    # Same content, same id; the id is given precedence when present.
    assert p.key() == PromptRecord(messages=[Message(role="user", content="hi")]).key()
    assert PromptRecord(id="x", prompt="hi").key() == "x"


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"prompt": "a", "messages": [{"role": "user", "content": "a"}]},
        {"prompt": "   "},
        {"messages": []},
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
        {"messages": [{"role": "robot", "content": "a"}]},
        {"prompt": "a", "colour": "red"},
        {"prompt": 3},
    ],
)
def test_prompt_validation_rejects(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PromptRecord.model_validate(data)


def test_sampling_and_options_validation() -> None:
    with pytest.raises(ValidationError):
        Sampling(max_new_tokens=4, min_new_tokens=5)
    with pytest.raises(ValidationError):
        OptionQuery(prompt="q", options=["A", "A"])
    with pytest.raises(ValidationError):
        OptionQuery(prompt="q", options=["A"])


def test_stable_id_is_order_and_content_sensitive() -> None:
    assert stable_id("a", "b") != stable_id("b", "a")
    assert stable_id({"x": 1, "y": 2}) == stable_id({"y": 2, "x": 1})
    assert len(stable_id("a")) == 16


def test_generation_record_round_trips() -> None:
    rec = GenerationRecord(
        id="1",
        prompt_id="p",
        messages=[Message(role="user", content="مرحبا")],
        completion="أهلا",
        finish_reason="stop",
        prompt_tokens=3,
        completion_tokens=2,
        backend="fake",
        sampling=Sampling(),
    )
    again = GenerationRecord.model_validate_json(rec.model_dump_json())
    assert again == rec and again.schema_version == 1
