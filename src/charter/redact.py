"""Credentials out of everything charter writes: run folders, messages, logs.

A backend spec may carry credentials (`openai:http://user:pass@host/v1?api-key=K#model`). The
backend uses them as given; everything that is written or shown goes through `redact_spec`
(text) or `redact_config` (a config or manifest mapping) first, which replace

- the password of a URL's userinfo (`user:***@`), or a bare userinfo, which is often a token
  (`https://***@host`);
- the value of every query parameter, `name=value` pair or JSON/YAML/repr entry whose name
  looks like a credential (`api-key`, `api_key`, `key`, `token`, `access_token`, `secret`,
  `password`, `auth`, `sig`, …; see `is_secret_name`);
- `Bearer …` and `Basic …` authorization values.

The replacement is `***`. A spec read back from a run folder therefore no longer holds the
secret: `check_spec` says so (`is_redacted`) instead of sending `***` to the server.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any
from urllib.parse import unquote

MASK = "***"

# Words that make a name a credential's; a name whose last word names where a credential is
# kept (`api_key_env`, `token_file`) holds no secret itself.
SECRET_WORDS = frozenset(
    {
        "key",
        "apikey",
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "pass",
        "passphrase",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "sig",
        "signature",
        "session",
        "cookie",
        "jwt",
        "bearer",
    }
)
SECRET_SUFFIXES = ("key", "token", "secret", "password", "passwd")
HOLDER_WORDS = frozenset({"env", "file", "path", "var", "variable", "name"})

_URL = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<rest>[^\s'\"<>`]*)")
_PAIR = re.compile(r"(?P<name>[A-Za-z0-9_.\-]+)=(?P<value>[^\s&#'\",;)}\]]+)")
_QUOTED = re.compile(
    r"(?P<q>['\"])(?P<name>[A-Za-z0-9_.\-]+)(?P=q)(?P<sep>\s*:\s*)(?P<vq>['\"])(?P<value>.*?)(?P=vq)"
)
_AUTH_HEADER = re.compile(r"(?i)\b(?P<kind>bearer|basic)\s+(?P<value>[A-Za-z0-9._~+/=\-]{4,})")


def is_secret_name(name: str) -> bool:
    """Whether a parameter or key named `name` holds a credential.

    >>> [is_secret_name(n) for n in ("api-key", "api_key", "key", "access_token", "AUTH")]
    [True, True, True, True, True]
    >>> [is_secret_name(n) for n in ("model", "max_tokens", "api_key_env", "top_logprobs")]
    [False, False, False, False]
    """
    words = [w for w in re.split(r"[^a-z0-9]+", unquote(name).lower()) if w]
    if not words or words[-1] in HOLDER_WORDS:
        return False
    return any(w in SECRET_WORDS for w in words) or "".join(words).endswith(SECRET_SUFFIXES)


def redact_spec(text: str, *, pairs: bool = True) -> str:
    """`text` (a spec, a URL, a message, a log line) with every credential replaced by `***`.

    `pairs=False` leaves `name=value` and `'name': 'value'` outside URLs alone: for tracebacks,
    whose source lines (`sorted(xs, key=len)`) are code, not credentials.

    >>> redact_spec("openai:http://user:pass@host:8000/v1?api-key=K&x=1#model")
    'openai:http://user:***@host:8000/v1?api-key=***&x=1#model'
    >>> redact_spec("POST https://tok3n@api.example.com/v1/chat?token=abc failed")
    'POST https://***@api.example.com/v1/chat?token=*** failed'
    >>> redact_spec("openai:http://127.0.0.1:8000/v1#m")
    'openai:http://127.0.0.1:8000/v1#m'
    """
    if not text:
        return text
    text = _URL.sub(_redact_url, text)
    if pairs:
        text = _PAIR.sub(lambda m: _masked(m, "value"), text)
        text = _QUOTED.sub(lambda m: _masked(m, "value"), text)
    return _AUTH_HEADER.sub(lambda m: f"{m['kind']} {MASK}", text)


def _masked(m: re.Match[str], group: str) -> str:
    if not is_secret_name(m["name"]) or m[group] == MASK:
        return m[0]
    start, end = m.span(group)
    return m[0][: start - m.start()] + MASK + m[0][end - m.start() :]


def _redact_url(m: re.Match[str]) -> str:
    rest = m["rest"]
    cut = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=-1)
    authority, tail = (rest, "") if cut < 0 else (rest[:cut], rest[cut:])
    userinfo, at, host = authority.rpartition("@")
    if at and userinfo:
        user, colon, password = userinfo.partition(":")
        authority = f"{user}:{MASK}@{host}" if colon and password else f"{MASK}@{host}"
        if colon and not password:
            authority = f"{user}:@{host}"
    query_at = tail.find("?")
    if query_at >= 0:
        end = tail.find("#", query_at)
        end = len(tail) if end < 0 else end
        query = re.split(r"([&;])", tail[query_at + 1 : end])
        for i, part in enumerate(query):
            name, eq, value = part.partition("=")
            if eq and value and is_secret_name(name):
                query[i] = f"{name}={MASK}"
        tail = tail[: query_at + 1] + "".join(query) + tail[end:]
    return m["scheme"] + authority + tail


def redact_config(value: Any) -> Any:
    """A copy of a config (mappings, lists, text) with every credential replaced by `***`:
    the value of each key named like one (`is_secret_name`) and every secret inside text.

    >>> redact_config({"backend": "openai:http://u:p@h/v1#m", "backend_options": {"api_key": "sk"}})
    {'backend': 'openai:http://u:***@h/v1#m', 'backend_options': {'api_key': '***'}}
    """
    if isinstance(value, dict):
        return {k: MASK if _secret_value(k, v) else redact_config(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_config(v) for v in value]
    if isinstance(value, str):
        return redact_spec(value)
    return value


def _secret_value(key: object, value: object) -> bool:
    if not isinstance(key, str) or not is_secret_name(key):
        return False
    return isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != ""


def is_redacted(spec: str) -> bool:
    """Whether `spec` holds a credential that `redact_spec` replaced (read back from a run).

    >>> is_redacted("openai:http://u:***@h/v1#m"), is_redacted("openai:http://h/v1#m")
    (True, False)
    """
    return MASK in spec and redact_spec(spec.replace(MASK, "x")) != spec.replace(MASK, "x")


# -- logs ------------------------------------------------------------------------------------
class RedactingFilter(logging.Filter):
    """A handler filter that redacts each record's message (after %-formatting its args)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_spec(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time (tests swap it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def install_log_redaction() -> None:
    """Send charter's warnings to stderr, as Python's last-resort handler would, but redacted."""
    logger = logging.getLogger("charter")
    if any(isinstance(h, _StderrHandler) for h in logger.handlers):
        return
    handler = _StderrHandler()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.propagate = False
