"""A cap on request bodies, applied before anything parses them (413 Content Too Large).

Without it FastAPI reads a whole JSON body into memory before validating it: one
unauthenticated 200 MB POST took the server from 100 MB to 1.06 GB of resident memory. This ASGI
middleware refuses a body whose `Content-Length` is over the cap without reading a byte of it,
and counts the bytes of bodies sent without one (chunked), refusing as soon as the count passes
the cap: the app then never sees more than the cap, uvicorn's flow control stops reading from the
socket, and the 413 carries `Connection: close` so the rest of the upload is never read.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOO_LARGE_HTML = (
    "<!doctype html><meta charset=utf-8><title>413</title>"
    "<p>That was too much text to send at once. Please go back and shorten it.</p>"
    '<p dir="rtl" lang="ar">النص المُرسَل أطول من المسموح. يُرجى العودة واختصاره.</p>'
)


class BodyTooLarge(Exception):
    """Raised from `receive` when a streamed body passes the cap (the app's parsing stops)."""


def too_large_response(scope: Scope, limit: int) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The 413 answer: JSON under `/api/`, a small bilingual page elsewhere."""
    if str(scope.get("path", "")).startswith("/api/"):
        body = json.dumps({"detail": f"request body too large: at most {limit} bytes"}).encode()
        kind = b"application/json"
    else:
        body = TOO_LARGE_HTML.encode()
        kind = b"text/html; charset=utf-8"
    headers = [
        (b"content-type", kind),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    return 413, headers, body


class BodyLimit:
    """Refuses request bodies over `limit_for(scope)` bytes with 413, before they are read.

    Plain ASGI (like `SecurityHeaders`), so the vote path pays two closures, not a task.
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[Scope], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_too_large(scope, send, limit)
            return

        received = 0
        refused = False
        started = False

        async def counted() -> Message:
            nonlocal received, refused
            if refused:
                raise BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    raise BodyTooLarge
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused and not started:
                return  # the app's answer to the exception (FastAPI makes it a 400): ours instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not refused or started:
                raise
        if refused and not started:
            await _send_too_large(scope, send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server's parser refuses these before we see them
    return None


async def _send_too_large(scope: Scope, send: Send, limit: int) -> None:
    status, headers, body = too_large_response(scope, limit)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
