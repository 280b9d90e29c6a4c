"""The `openai:` backend against a real local HTTP server (tests/openai_server.py), never a patched
client: scripted answers and failures for the transport, and a tiny random model behind the server
for log-probs, compared with the `hf:` backend's own scoring of the same model."""

from __future__ import annotations

import asyncio
import logging
import math
import pathlib
import sys
import time
from collections.abc import Iterator

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))

from charter.backends import load_backend
from charter.backends.gguf_convert import make_tiny_random_model
from charter.backends.hf import HFBackend
from charter.backends.openai import OpenAIBackend
from charter.errors import BackendError
from charter.records import Message, OptionQuery, Sampling
from openai_server import FakeOpenAI, free_port, serve

KEY = "sk-test-0123456789abcdef"
GREEDY = Sampling(max_new_tokens=8, temperature=0.0)


@pytest.fixture(scope="module", autouse=True)
def offline() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(autouse=True)
def no_ambient_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # A key from the developer's shell must not travel to the test server.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("CHARTER_OPENAI_API_KEY", raising=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, offline: None) -> HFBackend:
    return HFBackend(str(make_tiny_random_model(tmp_path_factory.mktemp("tiny"))), device="cpu")


def chat(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


def backend(base: str, **options: object) -> OpenAIBackend:
    options.setdefault("backoff", 0.01)
    return OpenAIBackend(f"{base}#test-model", **options)  # type: ignore[arg-type]


# -- construction ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "target", ["http://127.0.0.1:8000/v1", "ftp://host/v1#m", "localhost#m", "#m"]
)
def test_bad_target_names_the_expected_shape(target: str) -> None:
    with pytest.raises(BackendError, match="<base_url>#<model>"):
        OpenAIBackend(target)


def test_options_from_the_command_line_are_coerced() -> None:
    b = load_backend("openai:http://127.0.0.1:8000/v1/#org/model", concurrency="3", timeout="2.5")
    assert isinstance(b, OpenAIBackend)
    assert (b.base_url, b.model, b.concurrency, b.timeout) == (
        "http://127.0.0.1:8000/v1",
        "org/model",
        3,
        2.5,
    )
    assert b.spec == "openai:http://127.0.0.1:8000/v1/#org/model"
    with pytest.raises(BackendError, match="concurrency"):
        OpenAIBackend("http://h/v1#m", concurrency="many")  # type: ignore[arg-type]


# -- generation --------------------------------------------------------------------------------
def test_generate_serves_answers_in_order_and_cuts_at_stop() -> None:
    server = FakeOpenAI(
        answers=["first answer", "second END hidden", "third"], finish_reason="length"
    )
    with serve(server.app()) as base:
        params = Sampling(max_new_tokens=5, temperature=0.3, seed=7, stop=["END"])
        out = backend(base, concurrency=1).generate([chat("a b"), chat("c"), chat("d")], params)
    assert [c.text for c in out] == ["first answer", "second ", "third"]
    # The server said "length"; a stop string cut on our side means the answer did stop.
    assert [c.finish_reason for c in out] == ["length", "stop", "length"]
    assert (out[0].prompt_tokens, out[0].completion_tokens) == (2, 2)
    body = server.bodies[0][1]
    assert body["model"] == "test-model"
    assert body["messages"] == [{"role": "user", "content": "a b"}]
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"]) == (
        5,
        0.3,
        1.0,
        7,
    )
    assert body["stop"] == ["END"] and "min_tokens" not in body


def test_generate_sends_min_tokens_only_when_asked() -> None:
    server = FakeOpenAI()
    with serve(server.app()) as base:
        backend(base).generate([chat("x")], Sampling(max_new_tokens=9, min_new_tokens=3))
    body = server.bodies[0][1]
    assert body["min_tokens"] == 3 and "stop" not in body


def test_results_keep_input_order_when_answers_arrive_out_of_order() -> None:
    n = 6
    server = FakeOpenAI(
        answers=lambda body: "answer to " + body["messages"][-1]["content"],
        # The first request is the slowest, so answers arrive in reverse.
        delay=lambda body: 0.03 * (n - int(body["messages"][-1]["content"])),
    )
    with serve(server.app()) as base:
        out = backend(base, concurrency=n).generate([chat(str(i)) for i in range(n)], GREEDY)
    assert [c.text for c in out] == [f"answer to {i}" for i in range(n)]


@pytest.mark.parametrize("concurrency", [1, 3])
def test_concurrency_limit_is_respected(concurrency: int) -> None:
    server = FakeOpenAI(delay=0.05)
    with serve(server.app()) as base:
        out = backend(base, concurrency=concurrency).generate([chat("x")] * 9, GREEDY)
    assert len(out) == 9 and server.requests == 9
    assert server.max_in_flight == concurrency


def test_generate_works_inside_a_running_event_loop() -> None:
    server = FakeOpenAI(answers=["from a loop"])
    with serve(server.app()) as base:
        b = backend(base)

        async def main() -> str:
            return b.generate([chat("x")], GREEDY)[0].text

        assert asyncio.run(main()) == "from a loop"


def test_empty_batch_makes_no_request() -> None:
    server = FakeOpenAI()
    with serve(server.app()) as base:
        assert backend(base).generate([], GREEDY) == []
        assert backend(base).option_logprobs([]) == []
    assert server.requests == 0


# -- retries and errors ------------------------------------------------------------------------
def test_a_single_503_is_retried() -> None:
    server = FakeOpenAI(answers=["fine"])
    server.fail_next(1, 503)
    with serve(server.app()) as base:
        out = backend(base).generate([chat("x")], GREEDY)
    assert out[0].text == "fine"
    assert server.requests == 2


def test_retry_after_is_honoured() -> None:
    server = FakeOpenAI(answers=["fine"])
    server.fail_next(1, 429, retry_after="0.4")
    with serve(server.app()) as base:
        started = time.perf_counter()
        out = backend(base, backoff=0.0).generate([chat("x")], GREEDY)
        waited = time.perf_counter() - started
    assert out[0].text == "fine" and server.requests == 2
    assert waited >= 0.4


def test_repeated_500s_give_up_after_max_retries() -> None:
    server = FakeOpenAI()
    server.always_fail(500, message="engine is dead")
    with serve(server.app()) as base:
        started = time.perf_counter()
        with pytest.raises(BackendError) as info:
            backend(base, max_retries=3).generate([chat("x")], GREEDY)
        elapsed = time.perf_counter() - started
    message = str(info.value)
    assert "after 4 attempts" in message
    assert f"{base}/chat/completions" in message
    assert "HTTP 500" in message and "engine is dead" in message
    assert server.requests == 4
    assert elapsed < 3


def test_a_400_fails_at_once_with_the_servers_message() -> None:
    server = FakeOpenAI()
    server.fail_next(1, 400, message="'temperature' must be at most 2")
    with serve(server.app()) as base, pytest.raises(BackendError) as info:
        backend(base).generate([chat("x")], GREEDY)
    message = str(info.value)
    assert "400" in message and "'temperature' must be at most 2" in message
    assert f"{base}/chat/completions" in message
    assert server.requests == 1


def test_a_plain_text_error_body_is_shortened() -> None:
    server = FakeOpenAI()
    server.fail_next(1, 404, message="no such route " + "x" * 1000, plain=True)
    with serve(server.app()) as base, pytest.raises(BackendError, match="HTTP 404") as info:
        backend(base).generate([chat("x")], GREEDY)
    assert "no such route " + "x" * 200 in str(info.value)
    assert "x" * 300 not in str(info.value)
    assert server.requests == 1


def test_unreachable_server_names_the_url() -> None:
    base = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(BackendError) as info:
        backend(base, max_retries=1).generate([chat("x")], GREEDY)
    message = str(info.value)
    assert f"{base}/chat/completions" in message
    assert "could not connect" in message and "\n" not in message


def test_a_slow_server_times_out_and_is_retried() -> None:
    server = FakeOpenAI(delay=0.5)
    with serve(server.app()) as base, pytest.raises(BackendError, match="timed out"):
        backend(base, timeout=0.1, max_retries=1).generate([chat("x")], GREEDY)
    assert server.requests == 2


def test_api_key_is_sent_but_never_shown(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CHARTER_TEST_KEY", KEY)
    server = FakeOpenAI(answers=["ok"], leak_auth=True)
    with serve(server.app()) as base:
        b = backend(base, api_key_env="CHARTER_TEST_KEY", max_retries=1)
        b.generate([chat("x")], GREEDY)
        assert server.auth == [f"Bearer {KEY}"]
        server.always_fail(503)  # retried, then given up: both logged and raised
        with caplog.at_level(logging.DEBUG), pytest.raises(BackendError) as retried:
            b.generate([chat("x")], GREEDY)
        server.failures.clear()
        server.fail_next(1, 401)
        with pytest.raises(BackendError) as refused:
            b.generate([chat("x")], GREEDY)
    for text in (str(retried.value), str(refused.value), caplog.text, repr(b), str(vars(b))):
        assert KEY not in text
    assert "401" in str(refused.value) and "Bearer ***" in str(refused.value)
    assert "retry 1/1" in caplog.text


def test_the_fallback_key_variable_is_read_and_no_key_sends_no_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeOpenAI()
    with serve(server.app()) as base:
        backend(base).generate([chat("x")], GREEDY)
        monkeypatch.setenv("CHARTER_OPENAI_API_KEY", KEY)
        backend(base).generate([chat("x")], GREEDY)
    assert server.auth == [None, f"Bearer {KEY}"]


# -- option scoring, scripted next-token log-probs ---------------------------------------------
def test_next_token_scores_take_the_top_token_and_an_upper_bound_for_missing_ones() -> None:
    top = {" A": math.log(0.5), "A": math.log(0.1), " B": math.log(0.2), "Z": math.log(0.01)}
    server = FakeOpenAI(top=top)
    q = OptionQuery(prompt="Answer: ", options=["A", "B", "C"])
    with serve(server.app()) as base:
        b = backend(base, top_logprobs=4)
        first = b.option_logprobs([q])
        second = b.option_logprobs([q])
    # " A" continues "Answer:" exactly (the trailing space moves into the option), so it wins.
    expected = {"A": math.log(0.5), "B": math.log(0.2), "C": math.log(0.01)}
    assert first == second
    assert first[0] == pytest.approx(expected)
    # echo was refused once, then never asked again; the next-token request has no trailing space.
    assert [bool(body.get("echo")) for _, body in server.bodies] == [True, False, False]
    assert server.bodies[1][1]["prompt"] == "Answer:"
    assert server.bodies[1][1]["logprobs"] == 4
    assert b.echo_works is False


def test_next_token_scoring_refuses_options_sharing_a_first_token() -> None:
    server = FakeOpenAI(top={"ye": -0.5, "no": -1.0})
    q = OptionQuery(prompt="Q?", options=["yes", "yellow"])
    with serve(server.app()) as base, pytest.raises(BackendError) as info:
        backend(base).option_logprobs([q])
    assert "cannot tell them apart" in str(info.value) and "'A'/'B'" in str(info.value)


def test_missing_chat_logprobs_is_a_clear_error() -> None:
    server = FakeOpenAI()
    with serve(server.app()) as base:
        b = backend(base)
        with pytest.raises(BackendError, match="top_logprobs"):
            # A server that ignores `logprobs` (no top tokens scripted here) answers without them.
            b.option_logprobs([OptionQuery(prompt=chat("Q?"), options=["A", "B"])])


# -- option scoring against a real (tiny) model ------------------------------------------------
STRING_QUERIES = [
    OptionQuery(prompt="The answer is", options=[" yes", " no", " maybe"]),
    OptionQuery(prompt="Pick one: ", options=["(A)", "(B)"]),
    OptionQuery(prompt="Q: 2+2?\nA:", options=[" 4", " 5", " four"]),
]


def test_echo_scores_equal_the_hf_backend(tiny: HFBackend) -> None:
    server = FakeOpenAI(backend=tiny)
    with serve(server.app()) as base:
        b = backend(base, concurrency=4)
        got = b.option_logprobs(STRING_QUERIES)
    want = tiny.option_logprobs(STRING_QUERIES)
    assert b.echo_works is True
    assert all(body.get("echo") for _, body in server.bodies)
    assert server.requests == sum(len(q.options) for q in STRING_QUERIES)
    for g, w in zip(got, want, strict=True):
        assert list(g) == list(w)
        assert g == pytest.approx(w, abs=1e-4)
        assert all(math.isfinite(v) for v in g.values())
        assert sum(math.exp(v) for v in g.values()) <= 1 + 1e-6


def test_without_echo_single_token_options_match_the_models_next_token(tiny: HFBackend) -> None:
    queries = [
        OptionQuery(prompt="Question: which?\nAnswer:", options=["A", "B"]),
        OptionQuery(prompt="Is it? (y/n)", options=["y", "n", "?"]),
    ]
    server = FakeOpenAI(backend=tiny, echo=False)
    with serve(server.app()) as base:
        # A vocabulary-sized top list, so that every option is there and its score exact.
        b = backend(base, top_logprobs=len(tiny.tokenizer))
        got = b.option_logprobs(queries)
        again = b.option_logprobs(queries)
    want = tiny.option_logprobs(queries)
    for g, w in zip(got, want, strict=True):
        assert all(math.isfinite(v) for v in g.values())
        assert g == pytest.approx(w, abs=1e-4)
    assert again == got
    assert sum(bool(body.get("echo")) for _, body in server.bodies) == 1  # one refusal, once
    assert b.echo_works is False


def test_without_echo_a_short_top_list_gives_upper_bounds(tiny: HFBackend) -> None:
    q = OptionQuery(prompt="Question: which?\nAnswer:", options=["A", "B", "C"])
    server = FakeOpenAI(backend=tiny, echo=False)
    with serve(server.app()) as base:
        got = backend(base, top_logprobs=1).option_logprobs([q])[0]
    want = tiny.option_logprobs([q])[0]
    # One token came back; options that are not it get its log-prob, which bounds theirs.
    assert len(set(got.values())) == 1
    for option in q.options:
        assert math.isfinite(got[option])
        assert got[option] >= want[option] - 1e-4


def test_without_echo_options_sharing_a_first_token_are_refused(tiny: HFBackend) -> None:
    server = FakeOpenAI(backend=tiny, echo=False)
    q = OptionQuery(prompt="Say", options=[" yes", " yellow"])
    with serve(server.app()) as base, pytest.raises(BackendError, match="cannot tell them apart"):
        backend(base, top_logprobs=len(tiny.tokenizer)).option_logprobs([q])


def test_chat_prompts_use_chat_top_logprobs(tiny: HFBackend) -> None:
    queries = [
        OptionQuery(prompt=chat("Pick A or B."), options=["A", "B"]),
        OptionQuery(prompt="The answer is", options=[" yes", " no"]),
    ]
    server = FakeOpenAI(backend=tiny)
    with serve(server.app()) as base:
        got = backend(base, top_logprobs=len(tiny.tokenizer)).option_logprobs(queries)
    want = tiny.option_logprobs(queries)
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx(w, abs=1e-4)
    chat_bodies = [body for path, body in server.bodies if path == "chat/completions"]
    assert len(chat_bodies) == 1
    assert chat_bodies[0]["logprobs"] is True
    assert chat_bodies[0]["top_logprobs"] == len(tiny.tokenizer)
    assert chat_bodies[0]["max_tokens"] == 1


def test_generate_through_the_server_equals_the_model(tiny: HFBackend) -> None:
    chats = [chat("Hello there"), chat("Write a word.")]
    server = FakeOpenAI(backend=tiny)
    with serve(server.app()) as base:
        got = backend(base).generate(chats, GREEDY)
    want = tiny.generate(chats, GREEDY)
    assert [c.text for c in got] == [c.text for c in want]
    assert [c.completion_tokens for c in got] == [c.completion_tokens for c in want]
