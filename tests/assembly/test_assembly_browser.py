"""Browser tests: Playwright driving Debian's Chromium against `charter assembly serve`.

A participant votes and submits a statement; an admin signs in, moderates and downloads the
export; an Arabic conversation is laid out right to left. Screenshots go to
`ARTIFACTS/*.png` (`CHARTER_TEST_ARTIFACTS`, default `tests/artifacts`). Skipped, saying why,
when Chromium or Playwright is missing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from assembly_helpers import ADMIN, ADMIN_HEADERS, ARTIFACTS, camp_votes, served

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (Debian's `chromium` package)"
)
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("browser") / "assembly.db"
    with served(db, "--address-rate", "1000000", "--join-rate", "1000000") as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield b
        finally:
            b.close()


def _create(base: str, **fields: Any) -> int:
    r = httpx.post(f"{base}/api/conversations", json=fields, headers=ADMIN_HEADERS)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_participant_votes_and_submits_a_statement(server: str, browser: Any) -> None:
    seeds = ["Assistants should explain their refusals.", "Assistants should never guess."]
    cid = _create(server, topic="Browser: participant", seed_statements=seeds)
    page = browser.new_page()
    page.goto(f"{server}/c/{cid}")
    assert page.locator("#progress").inner_text() == "You have voted on 0 of 2 statements."
    first = page.locator("#statement-text").inner_text()
    assert first in seeds
    page.get_by_role("button", name="Agree", exact=True).click()
    page.wait_for_url(f"**/c/{cid}?note=voted")
    assert page.locator("#progress").inner_text() == "You have voted on 1 of 2 statements."
    second = page.locator("#statement-text").inner_text()
    assert {first, second} == set(seeds)
    page.get_by_role("button", name="Pass / unsure").click()
    page.wait_for_url(f"**/c/{cid}?note=voted")
    assert page.locator("#done").is_visible()
    page.locator("#text").fill("Assistants should say <when> they are unsure.")
    page.get_by_role("button", name="Submit statement").click()
    page.wait_for_url(f"**/c/{cid}?note=submitted")
    assert "once a moderator approves it" in page.locator(".note").inner_text()
    _shot(page, "participant")
    votes = httpx.get(
        f"{server}/api/conversations/{cid}/export/votes.csv", headers=ADMIN_HEADERS
    ).text
    rows = list(csv.DictReader(io.StringIO(votes)))
    assert sorted(r["vote"] for r in rows) == ["0", "1"]
    assert len({r["voter-id"] for r in rows}) == 1
    page.close()


def test_admin_moderates_and_exports(server: str, browser: Any, tmp_path: Path) -> None:
    cid = _create(server, topic="Browser: admin", seed_statements=["A seed statement."])
    token = httpx.post(f"{server}/api/conversations/{cid}/participants").json()["token"]
    r = httpx.post(
        f"{server}/api/conversations/{cid}/statements",
        json={"text": "Please moderate me & my <b>markup</b>."},
        headers={"X-Participant-Token": token},
    )
    sid = r.json()["statement_id"]
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.goto(f"{server}/admin")
    page.locator("input[name=token]").fill(ADMIN)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Browser: admin").click()
    pending = page.locator(f"#s{sid}")
    assert pending.locator(".text").inner_text() == "Please moderate me & my <b>markup</b>."
    pending.get_by_role("button", name="Accept").click()
    page.wait_for_url(f"**/admin/c/{cid}?note=moderated")
    assert page.get_by_text("Nothing waiting.").is_visible()
    _shot(page, "admin")
    with page.expect_download() as info:
        page.get_by_role("link", name="comments.csv").click()
    path = tmp_path / "comments.csv"
    info.value.save_as(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert [(r["comment-body"], r["moderated"]) for r in rows] == [
        ("A seed statement.", "1"),
        ("Please moderate me & my <b>markup</b>.", "1"),
    ]
    context.close()


def test_arabic_conversation_renders_right_to_left(server: str, browser: Any) -> None:
    cid = _create(
        server,
        topic="كيف ينبغي أن يتصرف المساعد؟",
        language="ar",
        seed_statements=["ينبغي أن يكون المساعد صادقًا دائمًا."],
    )
    page = browser.new_page()
    page.goto(f"{server}/c/{cid}")
    assert page.evaluate("document.documentElement.dir") == "rtl"
    assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
    agree = page.get_by_role("button", name="أوافق", exact=True).bounding_box()
    disagree = page.get_by_role("button", name="لا أوافق").bounding_box()
    assert agree["x"] > disagree["x"]  # the first button sits on the right
    heading = page.locator("h1").bounding_box()
    width = page.viewport_size["width"]
    assert heading["x"] + heading["width"] > width / 2  # text starts from the right
    _shot(page, "arabic-rtl")
    page.get_by_role("link", name="English").click()
    assert page.evaluate("document.documentElement.dir") == "ltr"
    assert page.get_by_role("button", name="Agree", exact=True).is_visible()
    page.close()


def test_admin_sees_the_live_analysis(server: str, browser: Any) -> None:
    seeds = [f"Opinion {i}" for i in range(1, 9)] + ["Be honest.", "Respect privacy."]
    cid = _create(server, topic="Browser: analysis", seed_statements=seeds)
    rows = httpx.get(f"{server}/api/conversations/{cid}/statements", headers=ADMIN_HEADERS)
    sids = [s["statement_id"] for s in rows.json()]
    with httpx.Client(base_url=server) as http:
        for votes in camp_votes(40, sids, set(sids[-2:])):
            token = http.post(f"/api/conversations/{cid}/participants").json()["token"]
            me = {"X-Participant-Token": token}
            for sid, v in votes:
                body = {"statement_id": sid, "vote": v}
                r = http.post(f"/api/conversations/{cid}/votes", headers=me, json=body)
                assert r.status_code == 200, r.text
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server}/admin")
    page.locator("input[name=token]").fill(ADMIN)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{server}/admin/c/{cid}/analysis", timeout=120_000)
    assert page.locator("ul.groups li").count() == 2
    assert page.locator("svg.map circle").count() == 40
    top = page.locator("table.statements").first.locator("tr").nth(1).locator("td").nth(1)
    assert top.inner_text() in ("Be honest.", "Respect privacy.")
    _shot(page, "analysis")
    context.close()
