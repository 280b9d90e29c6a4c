"""Who may do what: random tokens stored hashed, the admin token, CSRF tokens, rate limits.

Participant and admin tokens are 32 random bytes; only their SHA-256 is stored (they carry 256
bits of entropy, so a plain hash cannot be brute-forced and needs no salt or slow KDF). Forms carry
a CSRF token that is an HMAC of the session's token under a per-database secret, so a page from
another site cannot post on someone's behalf. The JSON API takes tokens from headers only, which
another site's page cannot set, so it needs no CSRF token.

An admin token given by the operator (CHARTER_ADMIN_TOKEN) must be at least 32 characters with
at least 10 different ones; a weaker one stops the server at start with a message saying how to
make a good one. Rate limits are token buckets in memory, per process (see `Rate`).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import select

from charter.assembly.db import Database, secrets_table
from charter.errors import ConfigError

ADMIN_SECRET = "admin_token_sha256"
CSRF_SECRET = "csrf_key"
MIN_ADMIN_TOKEN_CHARS = 32
MIN_ADMIN_TOKEN_DISTINCT = 10


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _get_secret(db: Database, name: str) -> str | None:
    with db.read() as conn:
        value = conn.execute(
            select(secrets_table.c.value).where(secrets_table.c.name == name)
        ).scalar_one_or_none()
    return None if value is None else str(value)


def _set_secret(db: Database, name: str, value: str) -> None:
    with db.write() as conn:
        conn.execute(secrets_table.delete().where(secrets_table.c.name == name))
        conn.execute(secrets_table.insert().values(name=name, value=value))


def check_admin_token(token: str) -> None:
    """Refuse a guessable admin token: fewer than 32 characters, or fewer than 10 different ones
    (`aaaa...`, `abcabc...`). 32 random URL-safe characters carry 192 bits; a short or repetitive
    token is the one thing between the internet and every admin action, so the server refuses to
    start with one rather than warn.

    >>> check_admin_token(new_token())
    >>> check_admin_token("a")
    Traceback (most recent call last):
    ...
    charter.errors.ConfigError: CHARTER_ADMIN_TOKEN is too weak (1 characters, 1 different): ...
    """
    distinct = len(set(token))
    if len(token) < MIN_ADMIN_TOKEN_CHARS or distinct < MIN_ADMIN_TOKEN_DISTINCT:
        raise ConfigError(
            f"CHARTER_ADMIN_TOKEN is too weak ({len(token)} characters, {distinct} different): "
            f"use at least {MIN_ADMIN_TOKEN_CHARS} random characters, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`, or unset it and "
            "the server generates one and prints it once"
        )


def setup_admin_token(db: Database, env_token: str | None) -> str | None:
    """Store the hash of `env_token` (CHARTER_ADMIN_TOKEN, refused when weak: see
    `check_admin_token`); with none, and none stored yet, generate a token and return it so
    the caller prints it once. Returns None otherwise."""
    if env_token:
        check_admin_token(env_token)
        digest = token_hash(env_token)
        if _get_secret(db, ADMIN_SECRET) != digest:  # no write at each start
            _set_secret(db, ADMIN_SECRET, digest)
        return None
    if _get_secret(db, ADMIN_SECRET) is not None:
        return None
    token = new_token()
    _set_secret(db, ADMIN_SECRET, token_hash(token))
    return token


def csrf_key(db: Database) -> bytes:
    """The database's CSRF key, made on first use (so tokens survive a restart)."""
    key = _get_secret(db, CSRF_SECRET)
    if key is None:
        key = secrets.token_hex(32)
        _set_secret(db, CSRF_SECRET, key)
    return bytes.fromhex(key)


class AdminCheck:
    """Compares a presented admin token with the stored hash, in constant time."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ok(self, token: str | None) -> bool:
        if not token:
            return False
        stored = _get_secret(self.db, ADMIN_SECRET)
        return stored is not None and hmac.compare_digest(stored, token_hash(token))


def csrf_token(key: bytes, session: str) -> str:
    return hmac.new(key, session.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def csrf_ok(key: bytes, session: str | None, presented: str | None) -> bool:
    if not session or not presented:
        return False
    return hmac.compare_digest(csrf_token(key, session), presented)


@dataclass(frozen=True)
class Rate:
    """`per_minute` requests on average, bursts of up to `burst`."""

    per_minute: float
    burst: int


class RateLimiter:
    """Token buckets keyed by participant or address, kept for the most recent keys only."""

    def __init__(self, rate: Rate, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, key: str) -> float:
        """0 when the request may go ahead (and is counted), else seconds to wait."""
        with self._lock:
            now = time.monotonic()
            level = self._level(key, now)
            if level < 1.0:
                return self._wait(level)
            self._store(key, level - 1.0, now)
        return 0.0

    def wait(self, key: str) -> float:
        """Seconds until `key` may make a request (0: now), counting nothing."""
        with self._lock:
            return self._wait(self._level(key, time.monotonic()))

    def take(self, key: str) -> None:
        """Count one request of `key`, allowed or not (used after `wait` said 0 for every limit
        that applies, so that a request refused by one limit is not counted by the others)."""
        with self._lock:
            now = time.monotonic()
            self._store(key, max(0.0, self._level(key, now) - 1.0), now)

    def _level(self, key: str, now: float) -> float:
        level, last = self._buckets.get(key, (float(self.rate.burst), now))
        return min(float(self.rate.burst), level + (now - last) * self.rate.per_minute / 60.0)

    def _wait(self, level: float) -> float:
        if level >= 1.0:
            return 0.0
        refill = self.rate.per_minute / 60.0
        return (1.0 - level) / refill if refill > 0 else math.inf

    def _store(self, key: str, level: float, now: float) -> None:
        self._buckets.pop(key, None)  # most recent last: the oldest keys are dropped first
        self._buckets[key] = (level, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
