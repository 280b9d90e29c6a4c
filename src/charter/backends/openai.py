"""The OpenAI-compatible backend (`openai:<base_url>#<model>`): any server that speaks the OpenAI
HTTP API — vLLM, llama.cpp server, Ollama, hosted APIs — for scale-out generation and strong judges.

Requests go out concurrently (one `httpx.AsyncClient`, at most `concurrency` in flight), and a
429, a 5xx, a dropped connection or a timeout is retried with exponential backoff; any other 4xx is
the caller's mistake and fails at once. The API key comes from the environment (`api_key_env`,
default `OPENAI_API_KEY`, then `CHARTER_OPENAI_API_KEY`) and never appears in an error or a log.

Option scoring (`option_logprobs`) depends on what the server exposes, so it has two modes:

- **exact** (string prompts): the legacy `/completions` endpoint with `echo: true` returns the
  log-prob of every prompt token, so `prefix + option` is scored token by token, as the `hf:`
  backend does. vLLM supports this.
- **next token** (chat prompts always; string prompts when the server refuses `echo`): one token
  is generated with its `top_logprobs`, and each option gets the log-prob of the top token it
  begins with. That is exact only for options that are a single token (`A`/`B`, `Yes`/`No`).
  Options that would be scored by the same token (`yes`/`yellow` both starting with `ye`) cannot
  be told apart, and that is an error. An option whose first token is not among the top
  `top_logprobs` gets the lowest log-prob that was returned: an upper bound, not its value.

What servers offer, as far as we know (versions change; check yours):

| server           | prompt log-probs (echo) on /completions | next-token top_logprobs            |
|------------------|-----------------------------------------|------------------------------------|
| vLLM             | yes                                     | yes, up to `--max-logprobs` (20)   |
| llama.cpp server | no                                      | yes (next-token probabilities)     |
| Ollama           | no                                      | recent versions, on chat only      |
| hosted OpenAI    | no, on current models                   | chat, up to 20                     |

The backend remembers per instance whether echo worked, so a refusal costs one request, once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import os
import random
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from charter.backends.base import truncate_at_stop
from charter.errors import BackendError
from charter.records import Completion, Message, OptionQuery, Sampling
from charter.redact import redact_spec

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

T = TypeVar("T")
N = TypeVar("N", int, float)

TARGET_SHAPE = "<base_url>#<model>, e.g. http://127.0.0.1:8000/v1#my-model"
KEY_FALLBACK_ENV = "CHARTER_OPENAI_API_KEY"
RETRY_AFTER_CAP = 30.0
# Statuses that stay errors even on an echo request (auth, rate limit); any other 4xx there
# means the server does not offer echo, and option scoring falls back to the next token.
NOT_REFUSALS = {401, 403, 429}


class HTTPStatusError(BackendError):
    """A non-retryable error status; `status` lets option scoring tell a refusal of echo apart."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Secret:
    """A string that prints as `***`, so that dumping a backend's attributes shows no key."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "Secret('***')" if self.value else "Secret('')"

    __str__ = __repr__


@dataclass(frozen=True)
class _Option:
    """One option as it continues the prompt: spaces moved from the prompt's end come first."""

    name: str
    continuation: str


def _coerce(name: str, value: Any, kind: Callable[[Any], N], minimum: float) -> N:
    """An option as a number: they arrive as strings from the command line."""
    try:
        coerced = kind(value)
    except (TypeError, ValueError):
        raise BackendError(f"option {name} must be a number, got {value!r}") from None
    if coerced < minimum:
        raise BackendError(f"option {name} must be at least {minimum}, got {value!r}")
    return coerced


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, also when this thread already runs an event loop
    (a notebook, an async web app): then it runs on a fresh loop in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _gather(aws: Sequence[Awaitable[T]]) -> list[T]:
    """`asyncio.gather`, but the first failure cancels the rest instead of leaving them running."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def split_continuation(prefix: str, option: str) -> tuple[str, str]:
    """Move the prompt's trailing spaces into the option, as the `hf:` backend does: BPE
    tokenizers attach a space to the word after it, so "Answer: " + "A" is "Answer:" + " A".

    >>> split_continuation("Answer: ", "A")
    ('Answer:', ' A')
    """
    stripped = prefix.rstrip(" ")
    return stripped, prefix[len(stripped) :] + option


def match_top_tokens(options: Sequence[_Option], top: dict[str, float]) -> dict[str, float]:
    """Score options by the next-token log-probs `top` (token → log-prob); see the module doc.

    >>> top = {" A": -0.5, " B": -1.5, "C": -3.0}
    >>> match_top_tokens([_Option("A", " A"), _Option("B", " B"), _Option("D", " D")], top)
    {'A': -0.5, 'B': -1.5, 'D': -3.0}
    """
    if not top:
        raise BackendError("the server returned no top log-probs for the next token")
    floor = min(top.values())
    scores: dict[str, float] = {}
    used: dict[str, str] = {}  # the stripped token → the option it scored
    for option in options:
        want = option.continuation.strip()
        candidates = [(t, lp) for t, lp in top.items() if t.strip() and want.startswith(t.strip())]
        if not candidates:
            scores[option.name] = floor
            continue
        # The longest match wins; among equal ones (" A" and "A"), the token that continues the
        # prompt exactly, then the likelier one.
        token, logprob = max(
            candidates,
            key=lambda c: (len(c[0].strip()), option.continuation.startswith(c[0]), c[1]),
        )
        # Two options scored by the same token would be one event: their difference is unseen.
        if token.strip() in used:
            raise BackendError(
                f"options {used[token.strip()]!r} and {option.name!r} both start with the token "
                f"{token.strip()!r}, so next-token scoring cannot tell them apart; this server "
                "offers no prompt log-probs (echo), so use options that differ in their first "
                "token (e.g. 'A'/'B')"
            )
        used[token.strip()] = option.name
        scores[option.name] = float(logprob)
    return scores


class OpenAIBackend:
    """A model behind an OpenAI-compatible HTTP API. `target` is `<base_url>#<model>`.

    Options (strings from the command line are accepted): `concurrency` requests in flight,
    `timeout` seconds per request, `max_retries` and `backoff` (seconds, doubled per retry) for
    429/5xx/connection errors, `api_key_env` naming the key's environment variable, and
    `top_logprobs`, how many next-token alternatives to ask for when scoring options.
    """

    def __init__(
        self,
        target: str,
        *,
        concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        api_key_env: str = "OPENAI_API_KEY",
        top_logprobs: int = 20,
    ) -> None:
        base, sep, model = target.strip().partition("#")
        base, model = base.strip().rstrip("/"), model.strip()
        parts = urlsplit(base)
        if not sep or not model or parts.scheme not in ("http", "https") or not parts.netloc:
            raise BackendError(
                f"openai backend target {redact_spec(target)!r} must look like {TARGET_SHAPE}"
            )
        # Written into records and messages, so without the URL's credentials; requests use
        # `base_url`, which keeps them (userinfo as basic auth, query parameters as given).
        self.spec = redact_spec("openai:" + target)
        self.base_url = base
        self.model = model
        self.concurrency: int = _coerce("concurrency", concurrency, int, 1)
        self.timeout: float = _coerce("timeout", timeout, float, 0.001)
        self.max_retries: int = _coerce("max_retries", max_retries, int, 0)
        self.backoff: float = _coerce("backoff", backoff, float, 0.0)
        self.top_logprobs: int = _coerce("top_logprobs", top_logprobs, int, 1)
        self.api_key_env = str(api_key_env)
        # Kept private and out of repr: the key must never reach a message, a log or a run folder.
        self._api_key = Secret(
            os.environ.get(self.api_key_env) or os.environ.get(KEY_FALLBACK_ENV) or ""
        )
        # None: not tried yet; True: the server scores prompt tokens; False: it refused.
        self.echo_works: bool | None = None

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.spec!r})"

    # -- HTTP ----------------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        key = self._api_key.value
        return redact_spec(text.replace(key, "***") if key else text)

    def _url(self, path: str) -> str:
        """`base_url` + `/path`, with the base URL's query (`?api-version=…`) after the path."""
        parts = urlsplit(self.base_url)
        return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{path}"))

    def _client(self) -> httpx.AsyncClient:
        import httpx

        key = self._api_key.value
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(max_connections=self.concurrency),
        )

    async def _post(
        self,
        client: httpx.AsyncClient,
        limit: asyncio.Semaphore,
        path: str,
        body: dict[str, Any],
    ) -> dict[str, Any]:
        """POST with retries; the parsed JSON answer, or a BackendError a person can act on."""
        import httpx

        url = self._url(path)
        attempts = self.max_retries + 1
        last = ""
        for attempt in range(attempts):
            retry_after = 0.0
            try:
                async with limit:
                    response = await client.post(url, json=body)
            except httpx.ConnectError as e:
                last = f"could not connect ({type(e).__name__}: {e or 'connection refused'})"
            except httpx.TimeoutException as e:
                last = f"timed out after {self.timeout:g} s ({type(e).__name__})"
            except httpx.TransportError as e:
                last = f"connection failed ({type(e).__name__}: {e})"
            else:
                status = response.status_code
                if status < 400:
                    return self._json(response, url)
                message = self._error_message(response)
                if status != 429 and status < 500:
                    raise HTTPStatusError(
                        self._redact(f"POST {url} failed with HTTP {status}: {message}"), status
                    )
                last = f"HTTP {status}: {message}"
                retry_after = _retry_after(response)
            if attempt + 1 < attempts:
                delay = self.backoff * 2**attempt * (1 + 0.25 * random.random())
                delay = max(delay, retry_after)
                log.warning(
                    "POST %s: %s; retry %d/%d in %.2f s",
                    self._redact(url),
                    self._redact(last),
                    attempt + 1,
                    self.max_retries,
                    delay,
                )
                await asyncio.sleep(delay)
        hint = (
            " Check that the server is running and that the base URL is right."
            if last.startswith("could not connect")
            else ""
        )
        raise BackendError(
            self._redact(
                f"gave up on POST {url} after {attempts} attempt{'s' * (attempts != 1)}: "
                f"{last}.{hint}"
            )
        )

    def _json(self, response: httpx.Response, url: str) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise BackendError(
                self._redact(
                    f"POST {url} returned something other than a JSON object: "
                    f"{response.text[:300]!r}"
                )
            )
        return data

    @staticmethod
    def _error_message(response: httpx.Response) -> str:
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict):
            error = data.get("error")
            if isinstance(error, dict) and error.get("message"):
                return str(error["message"])
            if isinstance(error, str) and error:
                return error
            if data.get("detail"):
                return str(data["detail"])[:300]
        text = response.text.strip()
        return text[:300] if text else "(empty body)"

    async def _post_all(self, jobs: Sequence[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        limit = asyncio.Semaphore(self.concurrency)
        async with self._client() as client:
            return await _gather([self._post(client, limit, path, body) for path, body in jobs])

    def _unexpected(self, path: str, what: str, data: object) -> BackendError:
        return BackendError(
            self._redact(
                f"unexpected answer from {self.base_url}/{path}: {what} (got {str(data)[:300]})"
            )
        )

    # -- generation ----------------------------------------------------------------------------
    def generate(self, requests: Sequence[Sequence[Message]], params: Sampling) -> list[Completion]:
        jobs = [("chat/completions", self._chat_body(chat, params)) for chat in requests]
        answers = _run(self._post_all(jobs)) if jobs else []
        return [self._completion(a, params) for a in answers]

    def _chat_body(self, chat: Sequence[Message], params: Sampling) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.model_dump() for m in chat],
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.seed,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.min_new_tokens > 0:
            body["min_tokens"] = params.min_new_tokens  # a vLLM extension; others ignore it
        return body

    def _completion(self, data: dict[str, Any], params: Sampling) -> Completion:
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise self._unexpected("chat/completions", "no choices[0].message", data) from None
        # Servers that ignore `stop` (or keep the stop string) are cut here as well.
        text, stopped = truncate_at_stop(str(text), params.stop)
        usage = data.get("usage")
        if not isinstance(usage, dict):
            usage = {}
        # Anything but "length" ("stop", "eos", "tool_calls", a null) ended the answer on its own.
        hit_limit = choice.get("finish_reason") == "length" and not stopped
        return Completion(
            text=text,
            finish_reason="length" if hit_limit else "stop",
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )

    # -- option scoring ------------------------------------------------------------------------
    def option_logprobs(self, requests: Sequence[OptionQuery]) -> list[dict[str, float]]:
        return _run(self._option_logprobs(requests)) if requests else []

    async def _option_logprobs(self, requests: Sequence[OptionQuery]) -> list[dict[str, float]]:
        limit = asyncio.Semaphore(self.concurrency)
        async with self._client() as client:
            text_queries = [q for q in requests if isinstance(q.prompt, str)]
            exact: dict[int, dict[str, float]] = {}
            if text_queries and self.echo_works is not False:
                exact = await self._echo_scores(client, limit, requests)
            return await _gather(
                [
                    self._exact_or_next(client, limit, q, exact.get(i))
                    for i, q in enumerate(requests)
                ]
            )

    async def _exact_or_next(
        self,
        client: httpx.AsyncClient,
        limit: asyncio.Semaphore,
        q: OptionQuery,
        exact: dict[str, float] | None,
    ) -> dict[str, float]:
        if exact is not None:
            return exact
        return await self._next_token_scores(client, limit, q)

    async def _echo_scores(
        self, client: httpx.AsyncClient, limit: asyncio.Semaphore, requests: Sequence[OptionQuery]
    ) -> dict[int, dict[str, float]]:
        """Exact scores of every string query via echo; {} when the server refuses echo."""
        pairs = [
            (qi, option, *split_continuation(q.prompt, option))
            for qi, q in enumerate(requests)
            if isinstance(q.prompt, str)
            for option in q.options
        ]
        if self.echo_works is None:
            # Probe with one request, so a server without echo costs one refusal, not hundreds.
            first = await self._echo_one(client, limit, pairs[0][2], pairs[0][3])
            self.echo_works = first is not None
            if first is None:
                log.info("%s does not return prompt log-probs; scoring the next token", self.spec)
                return {}
            scored = [
                first,
                *await _gather([self._echo_one(client, limit, p, c) for _, _, p, c in pairs[1:]]),
            ]
        else:
            scored = await _gather([self._echo_one(client, limit, p, c) for _, _, p, c in pairs])
        out: dict[int, dict[str, float]] = {}
        incomplete: set[int] = set()
        for (qi, option, _, _), score in zip(pairs, scored, strict=True):
            if score is None:
                incomplete.add(qi)
            out.setdefault(qi, {})[option] = score if score is not None else math.nan
        return {qi: scores for qi, scores in out.items() if qi not in incomplete}

    async def _echo_one(
        self, client: httpx.AsyncClient, limit: asyncio.Semaphore, prefix: str, continuation: str
    ) -> float | None:
        """log P(continuation | prefix) from the prompt's echoed token log-probs, or None when the
        server refuses echo or leaves the continuation's log-probs out."""
        prompt = prefix + continuation
        body = {
            "model": self.model,
            "prompt": prompt,
            "echo": True,
            "logprobs": 1,
            "max_tokens": 1,
            "temperature": 0,
        }
        try:
            data = await self._post(client, limit, "completions", body)
        except HTTPStatusError as e:
            if e.status in NOT_REFUSALS:
                raise
            log.info("echo refused: %s", e)
            return None
        try:
            logprobs = data["choices"][0]["logprobs"]
            tokens, values, offsets = (
                logprobs["tokens"],
                logprobs["token_logprobs"],
                logprobs["text_offset"],
            )
        except (KeyError, IndexError, TypeError):
            return None
        total, seen = 0.0, 0
        # Only the prompt's own tokens after the prefix: the one generated token comes after.
        for _, value, offset in zip(tokens, values, offsets, strict=False):
            if not len(prefix) <= offset < len(prompt):
                continue
            if value is None:
                return None
            total += float(value)
            seen += 1
        return total if seen else None

    async def _next_token_scores(
        self, client: httpx.AsyncClient, limit: asyncio.Semaphore, q: OptionQuery
    ) -> dict[str, float]:
        if isinstance(q.prompt, str):
            prefix = q.prompt.rstrip(" ")
            options = [_Option(o, split_continuation(q.prompt, o)[1]) for o in q.options]
            path = "completions"
            body: dict[str, Any] = {
                "model": self.model,
                "prompt": prefix,
                "max_tokens": 1,
                "logprobs": self.top_logprobs,
                "temperature": 0,
            }
            data = await self._post(client, limit, path, body)
            try:
                raw = data["choices"][0]["logprobs"]["top_logprobs"][0]
                top = {str(t): float(lp) for t, lp in raw.items()}
            except (KeyError, IndexError, TypeError, AttributeError, ValueError):
                raise self._unexpected(
                    path, "no choices[0].logprobs.top_logprobs[0] for the next token", data
                ) from None
        else:
            options = [_Option(o, o) for o in q.options]
            path = "chat/completions"
            body = {
                "model": self.model,
                "messages": [m.model_dump() for m in q.prompt],
                "max_tokens": 1,
                "temperature": 0,
                "logprobs": True,
                "top_logprobs": self.top_logprobs,
            }
            data = await self._post(client, limit, path, body)
            try:
                entries = data["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
                top = {}
                for entry in entries:
                    # Tokens that decode alike (broken UTF-8 bytes) share a string: keep the best.
                    token, lp = str(entry["token"]), float(entry["logprob"])
                    top[token] = max(lp, top.get(token, -math.inf))
            except (KeyError, IndexError, TypeError, AttributeError, ValueError):
                raise self._unexpected(
                    path, "no choices[0].logprobs.content[0].top_logprobs (chat log-probs)", data
                ) from None
        return match_top_tokens(options, top)


def _retry_after(response: httpx.Response) -> float:
    """A numeric `Retry-After` header in seconds, capped; 0 when absent or a date."""
    try:
        return min(max(float(response.headers.get("retry-after", "")), 0.0), RETRY_AFTER_CAP)
    except ValueError:
        return 0.0
