"""Shared by the assembly tests: an app over a fresh SQLite file, a real server in a subprocess,
and a synthetic two-camp electorate whose votes the analysis must recover."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from charter.assembly.app import create_app
from charter.assembly.deps import AssemblySettings
from charter.assembly.security import Rate

ADMIN = "test-admin-token-0123456789-abcdefghijklmnopqrstuvwxyz"  # strong enough to start
UNLIMITED = Rate(per_minute=10**9, burst=10**9)
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}
ARTIFACTS = Path(os.environ.get("CHARTER_TEST_ARTIFACTS", "tests/artifacts")) / "assembly"


def client(tmp_path: Path, url: str | None = None, **overrides: Any) -> TestClient:
    """The app in-process, over `url` (default: a fresh SQLite file in `tmp_path`)."""
    settings = AssemblySettings(
        db_url=url or f"sqlite:///{tmp_path / 'assembly.db'}", admin_token=ADMIN, seed=0,
        **overrides,
    )  # fmt: skip
    return TestClient(create_app(settings))


def create(c: TestClient | httpx.Client, seeds: list[str], **fields: Any) -> int:
    body = {"topic": "How should an AI assistant behave?", "seed_statements": seeds, **fields}
    r = c.post("/api/conversations", json=body, headers=ADMIN_HEADERS)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def join(c: TestClient | httpx.Client, cid: int) -> dict[str, str]:
    r = c.post(f"/api/conversations/{cid}/participants")
    assert r.status_code == 201, r.text
    return {"X-Participant-Token": r.json()["token"]}


def statement_ids(c: TestClient | httpx.Client, cid: int) -> list[int]:
    r = c.get(f"/api/conversations/{cid}/statements", headers=ADMIN_HEADERS)
    return [s["statement_id"] for s in r.json()]


def camp_votes(
    n_participants: int, sids: list[int], consensus: set[int], seed: int = 0
) -> list[list[tuple[int, int]]]:
    """Two camps that disagree on every statement but `consensus`, which nearly all agree
    with; each participant votes on every statement with 10% noise and some passes."""
    rng = random.Random(seed)
    half = len(sids) // 2
    out = []
    for p in range(n_participants):
        camp = 1 if p % 2 else -1
        mine = []
        for j, sid in enumerate(sids):
            side = camp if j < half else -camp
            base = 1 if sid in consensus else side
            r = rng.random()
            vote = 0 if r < 0.08 else (-base if r < 0.16 else base)
            mine.append((sid, vote))
        out.append(mine)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Server:
    base: str
    port: int
    proc: subprocess.Popen[str]


def db_url(db: Path | str) -> str:
    """A database URL, or a SQLite file's path made into one."""
    return db if isinstance(db, str) and "://" in db else f"sqlite:///{db}"


@contextmanager
def served(db: Path | str, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """`charter assembly serve` in a subprocess on a free port; yields the base URL."""
    with server_process(db, *args, env=env) as server:
        yield server.base


@contextmanager
def server_process(
    db: Path | str, *args: str, env: dict[str, str] | None = None, port: int | None = None
) -> Iterator[Server]:
    """`charter assembly serve` over `db` (a SQLite path or any URL) in a subprocess, once it
    answers; stopped (SIGTERM, then SIGKILL) at the end unless the test already killed it."""
    port = port or free_port()
    full_env = {**os.environ, "CHARTER_ADMIN_TOKEN": ADMIN, **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "charter", "assembly", "serve", "--db", db_url(db),
         "--port", str(port), *args],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
            try:
                if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start in 60 s")
            time.sleep(0.2)
        yield Server(base, port, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_cli(
    args: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`charter ARGS` in a fresh interpreter. (`tests/conftest.py` has the same; this folder's
    own conftest.py shadows that module's name, so the assembly tests import it from here.)"""
    return subprocess.run(
        [sys.executable, "-m", "charter", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
