"""Shared by the assembly tests: an app over a fresh SQLite file, a real server in a subprocess,
and a synthetic two-camp electorate whose votes the analysis must recover."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from charter.assembly.app import AssemblySettings, create_app

ADMIN = "test-admin-token"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}
ARTIFACTS = Path(os.environ.get("CHARTER_TEST_ARTIFACTS", "tests/artifacts")) / "assembly"


def client(tmp_path: Path, **overrides: Any) -> TestClient:
    settings = AssemblySettings(
        db_url=f"sqlite:///{tmp_path / 'assembly.db'}", admin_token=ADMIN, seed=0, **overrides
    )
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


@contextmanager
def served(db: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """`charter assembly serve` in a subprocess on a free port; yields the base URL."""
    port = free_port()
    full_env = {**os.environ, "CHARTER_ADMIN_TOKEN": ADMIN, **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "charter", "assembly", "serve", "--db", f"sqlite:///{db}",
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
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
