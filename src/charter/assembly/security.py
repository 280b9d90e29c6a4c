"""Who may do what: random tokens stored hashed, the admin token, CSRF tokens, rate limits.

Participant and admin tokens are 32 random bytes; only their SHA-256 is stored (they carry 256
bits of entropy, so a plain hash cannot be brute-forced and needs no salt or slow KDF). Forms carry
a CSRF token that is an HMAC of the session's token under a per-database secret, so a page from
another site cannot post on someone's behalf. The JSON API takes tokens from headers only, which
another site's page cannot set, so it needs no CSRF token.
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

ADMIN_SECRET = "admin_token_sha256"
CSRF_SECRET = "csrf_key"


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


def setup_admin_token(db: Database, env_token: str | None) -> str | None:
    """Store the hash of `env_token` (CHARTER_ADMIN_TOKEN); with none, and none stored yet,
    generate a token and return it so the caller prints it once. Returns None otherwise."""
    if env_token:
        _set_secret(db, ADMIN_SECRET, token_hash(env_token))
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
        refill = self.rate.per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            level, last = self._buckets.pop(key, (float(self.rate.burst), now))
            level = min(float(self.rate.burst), level + (now - last) * refill)
            if level >= 1.0:
                self._buckets[key] = (level - 1.0, now)
                wait = 0.0
            else:
                self._buckets[key] = (level, now)
                wait = (1.0 - level) / refill if refill > 0 else math.inf
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return wait
