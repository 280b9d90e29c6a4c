from __future__ import annotations

import math

import pytest

from charter.backends import check_spec, load_backend
from charter.backends.fake import FakeBackend
from charter.errors import BackendError
from charter.records import Message, OptionQuery, Sampling


def chat(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


def test_scripted_answers_then_default_and_call_log() -> None:
    fake = FakeBackend(answers=["one", "two STOP three"])
    out = fake.generate([chat("a"), chat("b"), chat("c")], Sampling(stop=["STOP"]))
    assert [c.text for c in out[:2]] == ["one", "two "]
    assert out[2].text.startswith("Fake answer") and out[2].text.endswith("to: c")
    assert out[1].finish_reason == "stop"
    assert fake.calls[0].method == "generate" and len(fake.calls[0].requests) == 3
    # The default answer is a pure function of the chat.
    assert FakeBackend().generate([chat("c")], Sampling())[0].text == out[2].text


def test_length_limit_and_logprobs() -> None:
    fake = FakeBackend(answers=["w " * 10])
    c = fake.generate([chat("x")], Sampling(max_new_tokens=3))[0]
    assert c.finish_reason == "length" and c.completion_tokens == 3
    q = OptionQuery(prompt="Which?", options=["(A)", "(B)"])
    scores = FakeBackend().option_logprobs([q, q])
    assert scores[0] == scores[1]
    assert sum(math.exp(v) for v in scores[0].values()) < 1
    scripted = FakeBackend(logprobs={"(A)": -0.1, "(B)": -2.0}).option_logprobs([q])
    assert scripted == [{"(A)": -0.1, "(B)": -2.0}]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("gpt5", "unknown backend spec"),
        ("hf", "incomplete"),
        ("hf:", "incomplete"),
        ("fake:extra", "takes no argument"),
        ("openai:", "incomplete"),
    ],
)
def test_bad_specs(spec: str, match: str) -> None:
    with pytest.raises(BackendError, match=match):
        check_spec(spec)


def test_load_backend_options() -> None:
    fake = load_backend("fake", delay=0)
    assert isinstance(fake, FakeBackend) and fake.spec == "fake"
    # Defaults go only to backends that take them; unknown explicit options are errors.
    assert isinstance(load_backend("fake", defaults={"batch_size": 4}), FakeBackend)
    with pytest.raises(BackendError, match="bad option"):
        load_backend("fake", batch_size=4)
