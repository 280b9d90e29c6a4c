"""The README's walk-through as a test: `charter assembly serve` on a fresh database, a
conversation over HTTP, the Polis export, then `charter collective ingest`, `analyze` and
`draft`, and the drafted constitution loaded as `--constitution collective:DIR` loads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from assembly_helpers import ADMIN_HEADERS, camp_votes, free_port, run_cli, served

from charter.constitution.load import load_constitution


def test_serve_prints_a_generated_admin_token_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CHARTER_ADMIN_TOKEN"}
    db = f"sqlite:///{tmp_path / 'fresh.db'}"

    def first_lines() -> str:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "charter", "assembly", "serve", "--db", db, "--port", str(port)],
            env=env, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=10)
        return err

    first = first_lines()
    assert "admin token (shown once" in first
    token = first.split("keep it): ")[1].split()[0]
    assert "admin token" not in first_lines()  # the second start does not print it again
    assert token not in (tmp_path / "fresh.db").read_bytes().decode("latin-1")  # only its hash


@pytest.mark.slow
def test_export_ingest_analyze_draft_run_end_to_end(tmp_path: Path) -> None:
    with served(
        tmp_path / "assembly.db", "--address-rate", "1000000", "--join-rate", "1000000"
    ) as base:
        seeds = [f"Opinion {i}" for i in range(1, 9)] + [
            "The assistant should tell the truth.",
            "The assistant should protect people's privacy.",
        ]
        with httpx.Client(base_url=base, headers=ADMIN_HEADERS) as admin:
            cid = admin.post("/api/conversations", json={"topic": "e2e", "seed_statements": seeds})
            cid = cid.json()["id"]
            sids = [
                s["statement_id"] for s in admin.get(f"/api/conversations/{cid}/statements").json()
            ]
        with httpx.Client(base_url=base) as http:
            for votes in camp_votes(40, sids, set(sids[-2:]), seed=1):
                me = {
                    "X-Participant-Token": http.post(
                        f"/api/conversations/{cid}/participants"
                    ).json()["token"]
                }
                for sid, v in votes:
                    http.post(
                        f"/api/conversations/{cid}/votes",
                        json={"statement_id": sid, "vote": v},
                        headers=me,
                    ).raise_for_status()
        export = tmp_path / "export"
        export.mkdir()
        with httpx.Client(base_url=base, headers=ADMIN_HEADERS, timeout=120) as admin:
            for name in ("comments.csv", "votes.csv", "participants-votes.csv"):
                got = admin.get(f"/api/conversations/{cid}/export/{name}")
                (export / name).write_text(got.text, encoding="utf-8")
            live = admin.get(f"/api/conversations/{cid}/analysis").json()["summary"]

    ingested, analysis = tmp_path / "ingested", tmp_path / "analysis"
    r = run_cli(["collective", "ingest", str(export), "--out", str(ingested)])
    assert r.returncode == 0, r.stderr
    assert "400 votes" in r.stdout
    r = run_cli(["collective", "analyze", str(ingested), "--out", str(analysis), "--no-figures"])
    assert r.returncode == 0, r.stderr
    offline = json.loads((analysis / "analysis.json").read_text())
    assert {s["statement_id"]: s["gic"] for s in offline["statements"]} == pytest.approx(
        {s["statement_id"]: s["gic"] for s in live["statements"]}, rel=1e-12
    )
    assert [g["size"] for g in offline["groups"]] == [g["size"] for g in live["groups"]]
    r = run_cli(
        ["collective", "draft", str(analysis), "--min-gic", "0.5"], env={"HF_HUB_OFFLINE": "1"}
    )
    assert r.returncode == 0, r.stderr
    constitution = load_constitution(f"collective:{analysis}")
    assert {s.ref for p in constitution.principles for s in p.sources} == {
        str(s) for s in sids[-2:]
    }
