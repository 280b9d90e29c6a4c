"""A local OpenAI-compatible HTTP server for testing the `openai:` backend over real HTTP.

`FakeOpenAI` speaks `/v1/chat/completions`, `/v1/completions` and `/v1/models` in two modes:

- scripted (no `backend`): answers come from a queue or a function of the request; failures can
  be injected (`fail_next`, `always_fail`), and the server keeps what it saw (request bodies,
  `Authorization` headers, the most requests in flight at once). It ignores `stop`, so what a test
  sees of stop strings is the client's own cut. `/completions` refuses `echo` and returns the
  scripted `top` log-probs for the next token.
- model-backed (`backend=HFBackend(...)`): chats are answered by `backend.generate`; log-probs
  are computed for real from the model, with one forward pass over the prompt: echoed prompt
  tokens (the first one's log-prob null, as vLLM does), `text_offset` from the fast tokenizer's
  offsets, and `top_logprobs` for the next token. `/completions` always generates exactly one
  (greedy) token. `echo=False` answers echo requests with 400, as servers without prompt
  log-probs do.

`serve(app)` runs an app with uvicorn in a background thread on a free port of 127.0.0.1 and
yields its base URL (`http://127.0.0.1:<port>/v1`).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from charter.records import Message, Sampling

if TYPE_CHECKING:
    import torch

    from charter.backends.hf import HFBackend

Body = dict[str, Any]


@dataclass
class Failure:
    """How the next requests fail: `count` more times (None: always)."""

    status: int
    count: int | None = 1
    message: str = "injected failure"
    retry_after: str | None = None
    plain: bool = False  # a text body instead of OpenAI's {"error": {"message": ...}}


@dataclass
class FakeOpenAI:
    """The server's script and what it observed; `app()` builds the FastAPI app around it."""

    answers: list[str] | Callable[[Body], str] = field(default_factory=list)
    backend: HFBackend | None = None
    echo: bool = True
    delay: float | Callable[[Body], float] = 0.0
    finish_reason: str = "stop"
    top: dict[str, float] = field(default_factory=dict)
    leak_auth: bool = False  # put the Authorization header into error messages (a rude server)
    model: str = "test-model"
    failures: list[Failure] = field(default_factory=list)
    bodies: list[tuple[str, Body]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    @property
    def requests(self) -> int:
        return len(self.bodies)

    def paths(self) -> list[str]:
        return [path for path, _ in self.bodies]

    def fail_next(self, count: int, status: int, **kwargs: Any) -> None:
        self.failures.append(Failure(status, count, **kwargs))

    def always_fail(self, status: int, **kwargs: Any) -> None:
        self.failures.append(Failure(status, None, **kwargs))

    # -- the app ---------------------------------------------------------------------------------
    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        async def models() -> Body:
            return {"object": "list", "data": [{"id": self.model, "object": "model"}]}

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Response:
            return await self._handle("chat/completions", request, self._chat)

        @app.post("/v1/completions")
        async def completions(request: Request) -> Response:
            return await self._handle("completions", request, self._completions)

        return app

    async def _handle(
        self, path: str, request: Request, answer: Callable[[Body], Body | Response]
    ) -> Response:
        body: Body = await request.json()
        self.bodies.append((path, body))
        auth = request.headers.get("authorization")
        self.auth.append(auth)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            delay = self.delay(body) if callable(self.delay) else self.delay
            if delay:
                await asyncio.sleep(delay)
            failure = self._next_failure()
            if failure is not None:
                return self._failure_response(failure, auth)
            result = answer(body)
            return result if isinstance(result, Response) else JSONResponse(result)
        finally:
            self.in_flight -= 1

    def _next_failure(self) -> Failure | None:
        while self.failures:
            failure = self.failures[0]
            if failure.count is None:
                return failure
            if failure.count > 0:
                failure.count -= 1
                return failure
            self.failures.pop(0)
        return None

    def _failure_response(self, failure: Failure, auth: str | None) -> Response:
        message = failure.message + (f" (you sent {auth})" if self.leak_auth else "")
        headers = {"Retry-After": failure.retry_after} if failure.retry_after else None
        if failure.plain:
            return PlainTextResponse(message, status_code=failure.status, headers=headers)
        error = {"message": message, "type": "invalid_request_error", "code": failure.status}
        return JSONResponse({"error": error}, status_code=failure.status, headers=headers)

    @staticmethod
    def _refuse(message: str) -> Response:
        error = {"message": message, "type": "invalid_request_error"}
        return JSONResponse({"error": error}, status_code=400)

    # -- chat ------------------------------------------------------------------------------------
    def _chat(self, body: Body) -> Body | Response:
        messages = [Message(**m) for m in body["messages"]]
        logprobs: Body | None = None
        if self.backend is not None and body.get("logprobs"):
            text, logprobs = self._chat_logprobs(messages, int(body.get("top_logprobs") or 0))
            finish, used = "length", (0, 1)
        elif self.backend is not None:
            params = Sampling(
                max_new_tokens=int(body.get("max_tokens") or 16),
                min_new_tokens=int(body.get("min_tokens") or 0),
                temperature=float(body.get("temperature", 1.0)),
                top_p=float(body.get("top_p", 1.0)),
                seed=int(body.get("seed") or 0),
                stop=list(body.get("stop") or []),
            )
            done = self.backend.generate([messages], params)[0]
            text, finish = done.text, done.finish_reason
            used = (done.prompt_tokens, done.completion_tokens)
        else:
            if body.get("logprobs") and self.top:
                logprobs = {"content": [{"token": "", "logprob": 0.0, "top_logprobs": self._top()}]}
            text = self._scripted_answer(body)
            finish = self.finish_reason
            used = (sum(len(m.content.split()) for m in messages), len(text.split()))
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish,
            "logprobs": logprobs,
        }
        return self._envelope("chat.completion", choice, used)

    def _scripted_answer(self, body: Body) -> str:
        if callable(self.answers):
            return self.answers(body)
        return self.answers.pop(0) if self.answers else "ok"

    def _top(self) -> list[Body]:
        return [
            {"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in self.top.items()
        ]

    def _envelope(self, kind: str, choice: Body, used: tuple[int, int]) -> Body:
        return {
            "id": f"cmpl-{self.requests}",
            "object": kind,
            "created": int(time.time()),
            "model": self.model,
            "choices": [choice],
            "usage": {
                "prompt_tokens": used[0],
                "completion_tokens": used[1],
                "total_tokens": sum(used),
            },
        }

    # -- completions -----------------------------------------------------------------------------
    def _completions(self, body: Body) -> Body | Response:
        prompt = body["prompt"]
        if not isinstance(prompt, str):
            return self._refuse("this test server takes one string prompt")
        echo = bool(body.get("echo"))
        if echo and (self.backend is None or not self.echo):
            return self._refuse("echo with logprobs is not supported by this server")
        k = body.get("logprobs")
        if self.backend is None:
            top = dict(list(self.top.items())[: int(k or 0)])
            token = max(top, key=lambda t: top[t]) if top else "ok"
            logprobs = {
                "tokens": [token],
                "token_logprobs": [top.get(token, 0.0)],
                "top_logprobs": [top],
                "text_offset": [len(prompt)],
            }
            choice = {"index": 0, "text": token, "finish_reason": "length", "logprobs": logprobs}
            return self._envelope("text_completion", choice, (len(prompt.split()), 1))
        return self._model_completion(prompt, echo, None if k is None else int(k))

    def _model_completion(self, prompt: str, echo: bool, k: int | None) -> Body | Response:
        assert self.backend is not None
        tok = self.backend.tokenizer
        enc = tok(prompt, add_special_tokens=True, return_offsets_mapping=True)
        ids: list[int] = enc["input_ids"]
        if not ids:
            return self._refuse("empty prompt")
        logp = self._logprobs(ids)  # [len(ids), vocab]: row i predicts token i + 1
        next_id = int(logp[-1].argmax())
        next_token = self._decode(next_id)
        tokens = [next_token]
        values: list[float | None] = [float(logp[-1, next_id])]
        offsets = [len(prompt)]
        tops: list[dict[str, float] | None] = [self._top_k(logp[-1], k or 1)]
        if echo:
            tokens = [self._decode(i) for i in ids] + tokens
            values = [None] + [float(logp[j - 1, ids[j]]) for j in range(1, len(ids))] + values
            offsets = [int(start) for start, _ in enc["offset_mapping"]] + offsets
            tops = [None] + [self._top_k(logp[j - 1], k or 1) for j in range(1, len(ids))] + tops
        logprobs = None
        if k is not None:
            logprobs = {
                "tokens": tokens,
                "token_logprobs": values,
                "top_logprobs": tops,
                "text_offset": offsets,
            }
        text = (prompt if echo else "") + next_token
        choice = {"index": 0, "text": text, "finish_reason": "length", "logprobs": logprobs}
        return self._envelope("text_completion", choice, (len(ids), 1))

    def _chat_logprobs(self, messages: list[Message], k: int) -> tuple[str, Body]:
        assert self.backend is not None
        ids = self.backend.encode(self.backend.render(messages), rendered_chat=True)
        last = self._logprobs(ids)[-1]
        next_id = int(last.argmax())
        token = self._decode(next_id)
        top = [
            {"token": t, "logprob": lp, "bytes": list(t.encode())}
            for t, lp in self._top_k(last, k).items()
        ]
        content = [{"token": token, "logprob": float(last[next_id]), "top_logprobs": top}]
        return token, {"content": content}

    def _logprobs(self, ids: list[int]) -> torch.Tensor:
        import torch

        assert self.backend is not None
        model = self.backend.model
        with torch.inference_mode():
            logits = model(torch.tensor([ids], device=self.backend.device)).logits[0].float()
        return torch.log_softmax(logits, dim=-1).cpu()

    def _decode(self, token_id: int) -> str:
        assert self.backend is not None
        return str(self.backend.tokenizer.decode([token_id]))

    def _top_k(self, row: torch.Tensor, k: int) -> dict[str, float]:
        assert self.backend is not None
        values, indices = row.topk(min(k, row.shape[-1]))
        out: dict[str, float] = {}
        for value, index in zip(values.tolist(), indices.tolist(), strict=True):
            # Tokens that decode alike (partial UTF-8 bytes) collide; the likeliest one stays.
            out.setdefault(self._decode(index), float(value))
        return out


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run `app` on a free port of 127.0.0.1 in a background thread; yield its `/v1` base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the test OpenAI server did not start")
        time.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (for connection-refused tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port
