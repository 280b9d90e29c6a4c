"""The assembly's JSON API and pages through FastAPI's TestClient, over a real SQLite file."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from assembly_helpers import (
    ADMIN,
    ADMIN_HEADERS,
    UNLIMITED,
    camp_votes,
    client,
    create,
    join,
    statement_ids,
)
from assembly_postgres import database_url_fixture  # noqa: F401
from fastapi.testclient import TestClient

from charter.assembly.db import vote_history
from charter.collective import analyze, ingest
from charter.constitution.load import parse_constitution

SEEDS = [f"Statement number {i}" for i in range(1, 7)]


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _export(c: TestClient, cid: int, name: str) -> str:
    r = c.get(f"/api/conversations/{cid}/export/{name}", headers=ADMIN_HEADERS)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    return r.text


def test_admin_routes_need_the_admin_token(tmp_path: Path) -> None:
    c = client(tmp_path)
    body = {"topic": "t", "seed_statements": []}
    assert c.post("/api/conversations", json=body).status_code == 401
    bad = {"Authorization": "Bearer wrong"}
    assert c.post("/api/conversations", json=body, headers=bad).status_code == 401
    cid = create(c, ["a"])
    for name in ("comments.csv", "votes.csv", "participants-votes.csv"):
        assert c.get(f"/api/conversations/{cid}/export/{name}").status_code == 401
    assert c.get(f"/admin/c/{cid}").status_code == 401


def test_participant_flow_next_vote_replace_and_204(tmp_path: Path, database_url: str) -> None:
    c = client(tmp_path, database_url)
    cid = create(c, SEEDS)
    me = join(c, cid)
    seen = []
    while True:
        r = c.get(f"/api/conversations/{cid}/next", headers=me)
        if r.status_code == 204:
            break
        sid = r.json()["statement_id"]
        assert sid not in seen
        seen.append(sid)
        r = c.post(f"/api/conversations/{cid}/votes", json={"statement_id": sid, "vote": 1},
                   headers=me)  # fmt: skip
        assert r.json() == {"replaced": False}
    assert sorted(seen) == statement_ids(c, cid)
    assert c.get(f"/api/conversations/{cid}/progress", headers=me).json() == {
        "voted": 6,
        "total": 6,
    }
    # a second vote on the same statement replaces the first; both stay in the history
    r = c.post(f"/api/conversations/{cid}/votes", json={"statement_id": seen[0], "vote": -1},
               headers=me)  # fmt: skip
    assert r.json() == {"replaced": True}
    votes = _rows(_export(c, cid, "votes.csv"))
    assert len(votes) == 6
    assert {v["comment-id"]: v["vote"] for v in votes}[str(seen[0])] == "-1"
    comments = {r["comment-id"]: r for r in _rows(_export(c, cid, "comments.csv"))}
    assert (comments[str(seen[0])]["agrees"], comments[str(seen[0])]["disagrees"]) == ("0", "1")
    db = c.app.state.assembly.db  # type: ignore[attr-defined]
    with db.read() as conn:
        history = conn.execute(vote_history.select().order_by(vote_history.c.id)).all()
    assert len(history) == 7
    assert [h.vote for h in history if h.statement_id == seen[0]] == [1, -1]


def test_tokens_are_per_conversation_and_checked(tmp_path: Path, database_url: str) -> None:
    c = client(tmp_path, database_url)
    a, b = create(c, ["x"]), create(c, ["y"])
    me = join(c, a)
    assert c.get(f"/api/conversations/{b}/next", headers=me).status_code == 401
    assert c.get(f"/api/conversations/{a}/next").status_code == 401
    bogus = {"X-Participant-Token": "nope"}
    assert c.get(f"/api/conversations/{a}/next", headers=bogus).status_code == 401
    # a statement of another conversation cannot be voted on
    other = statement_ids(c, b)[0]
    r = c.post(f"/api/conversations/{a}/votes", json={"statement_id": other, "vote": 1},
               headers=me)  # fmt: skip
    assert r.status_code == 404


def test_bad_bodies_are_422_not_500(tmp_path: Path, database_url: str) -> None:
    c = client(tmp_path, database_url)
    cid = create(c, ["x"])
    me = join(c, cid)
    url = f"/api/conversations/{cid}"
    for body in ({"statement_id": 1, "vote": 2}, {"statement_id": 2**40, "vote": 1},
                 {"statement_id": 1, "vote": 1, "extra": 0}):  # fmt: skip
        assert c.post(f"{url}/votes", json=body, headers=me).status_code == 422

    def post_json(path: str, body: object, headers: dict[str, str]) -> int:
        # json.dumps escapes a lone surrogate as \udfff; httpx would refuse to encode it
        raw = json.dumps(body).encode()
        headers = {**headers, "Content-Type": "application/json"}
        return c.post(path, content=raw, headers=headers).status_code

    for text in ("", "   ", "x" * 301, "bad\x00byte", "lone \ud800 surrogate"):
        assert post_json(f"{url}/statements", {"text": text}, me) == 422
    # PostgreSQL cannot store NUL in text; neither database a lone surrogate
    for description in ("nul\x00byte", "lone \udfff"):
        conversation = {"topic": "t", "description": description}
        assert post_json("/api/conversations", conversation, ADMIN_HEADERS) == 422
    assert c.post(f"{url}/statements", json={"text": "x" * 300}, headers=me).status_code == 201
    assert c.post(f"{url}/statements", json={"text": "x" * 300}, headers=me).status_code == 409


def test_strict_moderation_and_authors_not_shown_their_own(
    tmp_path: Path, database_url: str
) -> None:
    c = client(tmp_path, database_url)
    cid = create(c, ["seed"])
    author, other = join(c, cid), join(c, cid)
    url = f"/api/conversations/{cid}"
    r = c.post(f"{url}/statements", json={"text": "A participant's idea"}, headers=author)
    new = r.json()["statement_id"]
    seed = statement_ids(c, cid)[0]
    c.post(f"{url}/votes", json={"statement_id": seed, "vote": 0}, headers=other)
    assert c.get(f"{url}/next", headers=other).status_code == 204  # pending: not shown
    r = c.put(f"{url}/statements/{new}/moderation", json={"moderated": 1}, headers=ADMIN_HEADERS)
    assert r.status_code == 204
    assert c.get(f"{url}/next", headers=other).json()["statement_id"] == new
    c.post(f"{url}/votes", json={"statement_id": seed, "vote": 0}, headers=author)
    assert c.get(f"{url}/next", headers=author).status_code == 204  # never their own
    c.put(f"{url}/statements/{new}/moderation", json={"moderated": -1}, headers=ADMIN_HEADERS)
    assert c.get(f"{url}/next", headers=other).status_code == 204
    vote = {"statement_id": new, "vote": 1}
    assert c.post(f"{url}/votes", json=vote, headers=other).status_code == 404


def test_invite_codes_are_single_use(tmp_path: Path, database_url: str) -> None:
    c = client(tmp_path, database_url)
    cid = create(c, ["x"], invite_only=True)
    url = f"/api/conversations/{cid}"
    assert c.post(f"{url}/participants").status_code == 403
    codes = c.post(f"{url}/invites", json={"count": 2}, headers=ADMIN_HEADERS).json()["codes"]
    assert len(set(codes)) == 2
    assert c.post(f"{url}/participants", json={"invite_code": codes[0]}).status_code == 201
    assert c.post(f"{url}/participants", json={"invite_code": codes[0]}).status_code == 403
    assert c.post(f"{url}/participants", json={"invite_code": "guess"}).status_code == 403
    assert c.post(f"{url}/participants", json={"invite_code": codes[1]}).status_code == 201


def test_rate_limits_answer_429_with_retry_after(tmp_path: Path) -> None:
    from charter.assembly.security import Rate

    c = client(tmp_path, participant_rate=Rate(per_minute=6, burst=3))
    cid = create(c, ["a", "b", "c", "d"])
    me = join(c, cid)
    sids = statement_ids(c, cid)
    codes = [
        c.post(f"/api/conversations/{cid}/votes", json={"statement_id": s, "vote": 1},
               headers=me).status_code
        for s in sids
    ]  # fmt: skip
    assert codes == [200, 200, 200, 429]
    r = c.post(f"/api/conversations/{cid}/votes", json={"statement_id": sids[3], "vote": 1},
               headers=me)  # fmt: skip
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert len(_rows(_export(c, cid, "votes.csv"))) == 3  # the refused vote was not stored
    # another participant is not slowed down by this one
    assert c.post(f"/api/conversations/{cid}/votes", json={"statement_id": sids[3], "vote": 1},
                  headers=join(c, cid)).status_code == 200  # fmt: skip


def _camp_conversation(c: TestClient, n: int = 60) -> tuple[int, list[int], set[int]]:
    seeds = [f"Opinion {i} about assistants" for i in range(1, 11)]
    seeds += ["The assistant should be honest.", "The assistant should respect privacy."]
    cid = create(c, seeds)
    sids = statement_ids(c, cid)
    consensus = set(sids[-2:])
    for votes in camp_votes(n, sids, consensus):
        me = join(c, cid)
        for sid, v in votes:
            r = c.post(f"/api/conversations/{cid}/votes", json={"statement_id": sid, "vote": v},
                       headers=me)  # fmt: skip
            assert r.status_code == 200
    return cid, sids, consensus


def test_export_reingests_to_the_same_gic_as_the_live_analysis(
    tmp_path: Path, database_url: str
) -> None:
    c = client(tmp_path, database_url, address_rate=UNLIMITED, join_rate=UNLIMITED)
    cid, sids, consensus = _camp_conversation(c)
    live = c.get(f"/api/conversations/{cid}/analysis", headers=ADMIN_HEADERS).json()
    summary = live["summary"]
    assert summary is not None, live
    assert len(summary["groups"]) == 2
    assert {g["size"] for g in summary["groups"]} == {30}
    assert set(summary["top_gic"][:2]) == {str(s) for s in consensus}
    live_gic = {s["statement_id"]: s["gic"] for s in summary["statements"]}

    folder = tmp_path / "export"
    folder.mkdir()
    for name in ("comments.csv", "votes.csv", "participants-votes.csv"):
        (folder / name).write_text(_export(c, cid, name), encoding="utf-8")
    conv = ingest(folder)
    assert conv.report.format == "polis-export"
    assert (conv.report.n_participants, conv.report.n_votes) == (60, 60 * len(sids))
    result = analyze(conv)
    offline = dict(zip(result.matrix.statement_ids, result.gic.tolist(), strict=True))
    assert offline.keys() == live_gic.keys()
    np.testing.assert_allclose([offline[k] for k in live_gic], list(live_gic.values()), rtol=1e-12)
    # the wide file's group ids are the live groups
    wide = _rows((folder / "participants-votes.csv").read_text())
    assert {r["group-id"] for r in wide} == {"0", "1"}
    assert len(wide) == 60


@pytest.mark.slow
def test_draft_from_the_live_analysis_is_a_valid_constitution(tmp_path: Path) -> None:
    c = client(tmp_path, address_rate=UNLIMITED, join_rate=UNLIMITED)
    cid, _, consensus = _camp_conversation(c, n=40)
    r = c.post(f"/api/conversations/{cid}/draft", json={"min_gic": 0.5}, headers=ADMIN_HEADERS)
    assert r.status_code == 200, r.text
    constitution = parse_constitution(yaml.safe_load(r.text), "draft")
    cited = {s.ref for p in constitution.principles for s in p.sources}
    assert cited == {str(s) for s in consensus}
    r = c.post(f"/api/conversations/{cid}/draft", json={"min_gic": 1.0}, headers=ADMIN_HEADERS)
    assert r.status_code == 409 and "lower the threshold" in r.json()["detail"]


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "no CSRF token in the form"
    return match.group(1)


def test_pages_vote_with_csrf_and_escape_user_text(tmp_path: Path, database_url: str) -> None:
    c = client(tmp_path, database_url)
    cid = create(c, ["<script>alert(1)</script> & friends"], strict_moderation=False)
    page = c.get(f"/c/{cid}")
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; friends" in page.text
    assert "<script>alert" not in page.text
    sid = statement_ids(c, cid)[0]
    form = {"statement_id": str(sid), "vote": "1"}
    assert c.post(f"/c/{cid}/vote", data=form).status_code == 403  # no CSRF token
    assert c.post(f"/c/{cid}/vote", data={**form, "csrf": "0" * 64}).status_code == 403
    r = c.post(f"/c/{cid}/vote", data={**form, "csrf": _csrf(page.text)}, follow_redirects=False)
    assert r.status_code == 303 and f"charter_p{cid}" in r.cookies
    after = c.get(r.headers["location"])
    assert "1 of 1" in after.text
    assert len(_rows(_export(c, cid, "votes.csv"))) == 1
    # a statement from the page form, with markup, stays text
    r = c.post(f"/c/{cid}/statements", data={"csrf": _csrf(after.text), "text": "<b>bold</b>"})
    assert r.status_code == 200
    stranger = TestClient(c.app)  # not strict: shown to others at once, never to its author
    assert "&lt;b&gt;bold&lt;/b&gt;" in stranger.get(f"/c/{cid}").text
    assert "Content-Security-Policy" in page.headers


def test_arabic_conversation_is_right_to_left_and_switchable(tmp_path: Path) -> None:
    c = client(tmp_path)
    cid = create(c, ["ينبغي أن يكون المساعد صادقًا."], language="ar")
    page = c.get(f"/c/{cid}")
    assert '<html lang="ar" dir="rtl">' in page.text
    assert "أوافق" in page.text and "ينبغي أن يكون المساعد صادقًا." in page.text
    english = c.get(f"/c/{cid}?lang=en")
    assert '<html lang="en" dir="ltr">' in english.text and "Agree" in english.text
    assert '<html lang="en" dir="ltr">' in c.get(f"/c/{cid}").text  # the choice is remembered


def test_admin_pages_login_create_moderate_and_export(tmp_path: Path, database_url: str) -> None:
    c = client(tmp_path, database_url)
    login = c.get("/admin")
    token = _csrf(login.text)
    r = c.post("/admin/login", data={"csrf": token, "token": "wrong"})
    assert r.status_code == 401
    r = c.post("/admin/login", data={"csrf": token, "token": ADMIN})
    assert r.status_code == 200 and "New conversation" in r.text
    r = c.post("/admin/conversations", data={"csrf": token, "topic": "Pages", "language": "en",
               "seeds": "one\ntwo\n\n", "strict_moderation": "1"})  # fmt: skip
    assert r.status_code == 200 and "Share this link" in r.text
    cid = int(re.search(r"/c/(\d+)", r.text).group(1))  # type: ignore[union-attr]
    me = join(c, cid)
    sid = c.post(f"/api/conversations/{cid}/statements", json={"text": "from a participant"},
                 headers=me).json()["statement_id"]  # fmt: skip
    page = c.get(f"/admin/c/{cid}")
    assert "from a participant" in page.text
    r = c.post(f"/admin/c/{cid}/moderate",
               data={"csrf": token, "statement_id": str(sid), "moderated": "1"})  # fmt: skip
    assert r.status_code == 200
    comments = _rows(c.get(f"/admin/c/{cid}/export/comments.csv").text)
    assert [(x["comment-body"], x["moderated"]) for x in comments] == [
        ("one", "1"), ("two", "1"), ("from a participant", "1")
    ]  # fmt: skip
    assert c.get(f"/admin/c/{cid}/analysis").status_code == 200


def test_generated_admin_token_is_printed_once_and_stored_hashed(tmp_path: Path) -> None:
    from charter.assembly.db import Database, secrets_table
    from charter.assembly.security import AdminCheck, setup_admin_token

    db = Database(f"sqlite:///{tmp_path / 'a.db'}")
    db.create_all()
    token = setup_admin_token(db, None)
    assert token is not None and len(token) >= 40
    assert setup_admin_token(db, None) is None  # printed once only
    with db.read() as conn:
        stored = [r.value for r in conn.execute(secrets_table.select())]
    assert token not in stored
    assert AdminCheck(db).ok(token) and not AdminCheck(db).ok(token + "x")
    setup_admin_token(db, ADMIN)  # CHARTER_ADMIN_TOKEN replaces it
    assert AdminCheck(db).ok(ADMIN) and not AdminCheck(db).ok(token)
