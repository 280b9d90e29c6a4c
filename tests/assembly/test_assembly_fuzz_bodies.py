"""Property tests of the assembly's JSON API bodies (issue #18.6): every POST/PUT route that takes
a body (new conversations, participants, votes, statements, moderation, invites, drafts) gets
near-valid bodies with hostile values (booleans and floats for integers, huge numbers, NUL, lone
surrogates, control characters, unknown fields), JSON of any shape, deep nesting, and raw bytes
that are not JSON at all, under any content type.

Every answer is below 500; every refusal is a 4xx with a JSON `detail`; and a refused request
leaves the database as it was (every row of every table compared before and after). One app over
one SQLite file serves the whole module, in-process.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from assembly_helpers import ADMIN_HEADERS, UNLIMITED, client, create, join
from fastapi.testclient import TestClient
from hypothesis import example, given
from hypothesis import strategies as st

from charter.assembly.schemas import MAX_ID
from fuzzing import CASES, NASTY_TEXT, deep, json_values, texts


@dataclass(frozen=True)
class Assembly:
    c: TestClient
    db: Path
    cid: int  # an open conversation with seed statements
    invite_cid: int  # an invite-only one
    sids: list[int]
    me: dict[str, str]  # a participant of `cid`


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Assembly]:
    tmp = tmp_path_factory.mktemp("fuzz-bodies")
    c = client(tmp, participant_rate=UNLIMITED, address_rate=UNLIMITED, join_rate=UNLIMITED)
    with c:
        cid = create(c, [f"Seed statement {i}" for i in range(4)], strict_moderation=False)
        invite_cid = create(c, ["Invited"], invite_only=True)
        me = join(c, cid)
        r = c.get(f"/api/conversations/{cid}/statements", headers=ADMIN_HEADERS)
        sids = [s["statement_id"] for s in r.json()]
        yield Assembly(c, tmp / "assembly.db", cid, invite_cid, sids, me)


def snapshot(db: Path) -> str:
    """A digest of every row of every table: equal digests, an unchanged database."""
    digest = hashlib.sha256()
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in sorted(tables):
            for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid'):
                digest.update(repr((table, row)).encode("utf-8", "backslashreplace"))
    return digest.hexdigest()


# -- bodies ----------------------------------------------------------------------------------
ints = st.one_of(
    st.integers(-2, 3),
    st.sampled_from([MAX_ID, MAX_ID + 1, 2**63, -(2**63) - 1, 10**30]),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["1", "0", "-1", 1.0, -1.0, 0.0, None]),
)
hostile: st.SearchStrategy[Any] = st.one_of(ints, texts, json_values)
text = st.one_of(
    st.sampled_from(["A statement.", "  padded  ", "بيان", "x" * 300, "x" * 301]),
    st.sampled_from(["a\x00b", "a\ud800b", "a\x07b", "a\nb", "\t", "\u200b"]),
    texts,
    hostile,
)


good_text = st.text(alphabet="abcdefgh ب", min_size=1, max_size=20).filter(str.strip)


def body(
    required: dict[str, Any], optional: dict[str, Any], valid: dict[str, Any]
) -> st.SearchStrategy[Any]:
    """A valid body (so that acceptance is tested too), dictionaries of the route's fields with
    hostile values (each sometimes missing) and unknown fields, or any JSON value."""
    fields = {**required, **optional}
    return st.one_of(
        st.fixed_dictionaries(valid),
        st.fixed_dictionaries(required, optional=optional),
        st.fixed_dictionaries({}, optional={**fields, "extra": hostile, "": hostile}),
        hostile,
    )


ROUTES: dict[str, tuple[str, str, st.SearchStrategy[Any]]] = {
    # name: (method, path with {cid} and {sid}, body strategy)
    "conversation": (
        "POST",
        "/api/conversations",
        body(
            {"topic": text},
            {
                "description": text,
                "language": st.one_of(st.sampled_from(["en", "ar", "fr", "EN"]), hostile),
                "seed_statements": st.one_of(st.lists(text, max_size=3), hostile),
                "strict_moderation": hostile,
                "invite_only": hostile,
            },
            {"topic": good_text, "seed_statements": st.lists(good_text, max_size=2)},
        ),
    ),
    "participant": (
        "POST",
        "/api/conversations/{cid}/participants",
        body({}, {"invite_code": st.one_of(text, st.just("x" * 101))}, {}),
    ),
    "invited": (
        "POST",
        "/api/conversations/{invite}/participants",
        body({}, {"invite_code": st.one_of(text, st.just("x" * 101))}, {"invite_code": text}),
    ),
    "vote": (
        "POST",
        "/api/conversations/{cid}/votes",
        body(
            {"statement_id": st.one_of(st.just("SID"), ints), "vote": ints},
            {},
            {"statement_id": st.just("SID"), "vote": st.sampled_from([-1, 0, 1])},
        ),
    ),
    "statement": (
        "POST",
        "/api/conversations/{cid}/statements",
        body({"text": text}, {}, {"text": good_text}),
    ),
    "moderation": (
        "PUT",
        "/api/conversations/{cid}/statements/{sid}/moderation",
        body({"moderated": ints}, {}, {"moderated": st.sampled_from([-1, 0, 1])}),
    ),
    "invites": (
        "POST",
        "/api/conversations/{cid}/invites",
        body({"count": ints}, {}, {"count": st.integers(1, 3)}),
    ),
    "draft": (
        "POST",
        "/api/conversations/{cid}/draft",
        body(
            {},
            {
                "min_gic": st.one_of(st.floats(-1, 2), hostile),
                "min_group_agree": st.one_of(st.floats(-1, 2), hostile),
                "max_principles": ints,
                "name": text,
            },
            {"min_gic": st.floats(0, 1), "name": good_text},
        ),
    ),
}
ADMIN_ROUTES = {"conversation", "moderation", "invites", "draft"}
PARTICIPANT_ROUTES = {"vote", "statement"}


def _with_ids(value: Any, sid: int) -> Any:
    """The placeholder "SID" replaced by a real statement id, so that votes can be accepted."""
    if isinstance(value, str) and value == "SID":
        return sid
    if isinstance(value, dict):
        return {k: _with_ids(v, sid) for k, v in value.items()}
    return value


@st.composite
def payloads(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """(body bytes, content type): JSON of a route's shape or of any shape, or raw bytes."""
    kind = draw(st.sampled_from(["json"] * 5 + ["deep", "raw", "text", "empty"]))
    content_type = draw(
        st.one_of(
            st.just("application/json"),
            st.just("application/json"),
            st.just("application/json"),
            st.sampled_from(
                [
                    "text/plain",
                    "application/x-www-form-urlencoded",
                    "multipart/form-data; boundary=x",
                    "application/json; charset=latin-1",
                    "",
                ]
            ),
            st.none(),
        )
    )
    if kind == "deep":
        return deep(draw(st.integers(1, 5000)), *draw(st.sampled_from(["[]", "{}"]))).encode(), (
            content_type
        )
    if kind == "raw":
        return draw(st.binary(max_size=40)), content_type
    if kind == "text":
        raw = draw(st.one_of(st.sampled_from(NASTY_TEXT), texts))
        return raw.encode("utf-8", "surrogatepass"), content_type
    if kind == "empty":
        return b"", content_type
    return b"JSON", content_type  # filled in by the test, which knows the route


requests = st.tuples(
    st.sampled_from(sorted(ROUTES)),
    st.data(),
    payloads(),
    st.sampled_from(["right", "right", "right", "wrong", "none"]),  # the credentials
)


def send(
    a: Assembly,
    route: str,
    value: Any,
    raw: bytes,
    content_type: str | None,
    credentials: str,
    sid_index: int,
) -> int:
    """Send one request; check the answer, and that a refusal changed nothing."""
    method, path, _ = ROUTES[route]
    sid = a.sids[sid_index % len(a.sids)]
    url = path.format(cid=a.cid, invite=a.invite_cid, sid=sid)
    if raw == b"JSON":
        raw = _json_bytes(_with_ids(value, sid))
    headers = {} if content_type is None else {"Content-Type": content_type}
    if credentials != "none":
        if route in ADMIN_ROUTES:
            headers.update(
                ADMIN_HEADERS if credentials == "right" else {"Authorization": "Bearer x"}
            )
        elif route in PARTICIPANT_ROUTES:
            headers.update(a.me if credentials == "right" else {"X-Participant-Token": "x"})
    before = snapshot(a.db)
    r = a.c.request(method, url, content=raw, headers=headers)
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert 400 <= r.status_code < 500
        assert r.headers["content-type"].startswith("application/json"), r.headers
        detail = r.json()["detail"]
        assert detail and isinstance(detail, str | list), r.text[:300]
        assert snapshot(a.db) == before, (route, r.status_code, r.text[:300])
    else:
        assert r.status_code in (200, 201, 204), r.status_code
    return r.status_code


def _json_bytes(value: Any) -> bytes:
    """JSON as a client sends it: UTF-8, with lone surrogates escaped (`\\ud800`)."""
    try:
        return json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True).encode("ascii")
    except ValueError:  # a recursive value: not JSON at all
        return b"{"


@CASES
@given(request=requests, sid_index=st.integers(0, 3))
def test_hostile_bodies_get_4xx_json_and_change_nothing(
    assembly: Assembly,
    request: tuple[str, st.DataObject, tuple[bytes, str | None], str],
    sid_index: int,
) -> None:
    route, data, (raw, content_type), credentials = request
    value = data.draw(ROUTES[route][2]) if raw == b"JSON" else None
    send(assembly, route, value, raw, content_type, credentials, sid_index)


# Bodies that must be refused whatever else happens: the fields a pydantic lax mode would have
# taken (`true` as 1, `1.0` as 1, "1" as 1) and text no database stores.
REFUSED: list[tuple[str, Any]] = [
    ("vote", {"statement_id": "SID", "vote": True}),
    ("vote", {"statement_id": "SID", "vote": 1.0}),
    ("vote", {"statement_id": "SID", "vote": "1"}),
    ("vote", {"statement_id": "SID", "vote": 2}),
    ("vote", {"statement_id": True, "vote": 1}),
    ("vote", {"statement_id": 2**63, "vote": 1}),
    ("vote", {"statement_id": "SID", "vote": 1, "extra": 1}),
    ("vote", [1]),
    ("vote", None),
    ("statement", {"text": "a\x00b"}),
    ("statement", {"text": "a\ud800b"}),
    ("statement", {"text": " "}),
    ("statement", {"text": "x" * 301}),
    ("moderation", {"moderated": True}),
    ("invites", {"count": 0}),
    ("invites", {"count": 1001}),
    ("invites", {"count": True}),
    ("conversation", {"topic": "t", "seed_statements": ["ok", "a\x00"]}),
    ("conversation", {"topic": "t", "language": "fr"}),
    ("participant", {"invite_code": "x" * 101}),
    ("invited", {}),
    ("invited", {"invite_code": "not-a-code"}),
    ("draft", {"min_gic": 2}),
]


@CASES
@given(
    case=st.sampled_from(REFUSED),
    content_type=st.sampled_from(["application/json", "text/plain", "", None]),
    sid_index=st.integers(0, 3),
    credentials=st.sampled_from(["right", "right", "wrong", "none"]),
)
@example(case=REFUSED[0], content_type="application/json", sid_index=0, credentials="right")
def test_bodies_that_must_be_refused_are_refused_however_they_are_sent(
    assembly: Assembly,
    case: tuple[str, Any],
    content_type: str | None,
    sid_index: int,
    credentials: str,
) -> None:
    route, value = case
    before = snapshot(assembly.db)
    status = send(assembly, route, value, b"JSON", content_type, credentials, sid_index)
    assert 400 <= status < 500
    assert snapshot(assembly.db) == before
