"""Units of the assembly: statement priority, rate limits, CSRF, group commit, translations."""

from __future__ import annotations

import json
import random
import re
import threading
from collections import Counter
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import event, insert, select

from charter.assembly.db import Database, secrets_table
from charter.assembly.pages import ERROR_KEYS, NOTES
from charter.assembly.priority import Candidate, choose_next, priority
from charter.assembly.security import Rate, RateLimiter, csrf_ok, csrf_token


def test_priority_matches_polis_formula_by_hand() -> None:
    # A=3 agrees, P=1 pass, S=10 seen, E=0.5: p = 2/12, a = 4/12,
    # importance = (10/12)(1.5)(4/12) = 5/12, novelty = 1 + 8·2^-2 = 3 → (15/12)² = 1.5625
    assert priority(3, 1, 10, 0.5) == pytest.approx(1.5625)
    # S=0: (1/2 · 1 · 1/2 · 9)² = 5.0625
    assert priority(0, 0, 0) == pytest.approx(5.0625)
    # mostly passed sinks below mostly agreed, at equal exposure
    assert priority(0, 9, 10) < priority(9, 0, 10)


def test_choose_next_draws_in_proportion_to_priority() -> None:
    fresh = Candidate(1, 0, 0, 0)  # priority 5.0625
    worn = Candidate(2, 10, 10, 10)  # priority ((1-11/32)·11/32·(1+8·2^-6))² ≈ 0.0640
    rng = random.Random(0)
    draws = Counter(choose_next([fresh, worn], {}, rng) for _ in range(20_000))
    expected = priority(10, 10, 30) / (priority(10, 10, 30) + priority(0, 0, 0))
    assert draws[2] / 20_000 == pytest.approx(expected, abs=0.004)
    # extremity (a statement that separates groups) raises the odds
    boosted = Counter(choose_next([fresh, worn], {2: 3.0}, rng) for _ in range(20_000))
    assert boosted[2] > 10 * draws[2]
    assert choose_next([], {}, rng) is None


def test_rate_limiter_allows_a_burst_then_refills(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("charter.assembly.security.time", SimpleNamespace(monotonic=lambda: now[0]))
    limiter = RateLimiter(Rate(per_minute=60, burst=3))
    assert [limiter.check("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.check("a") == pytest.approx(1.0)  # one a second: wait a second
    assert limiter.check("b") == 0.0  # keys are independent
    now[0] += 1.0
    assert limiter.check("a") == 0.0
    assert limiter.check("a") > 0


def test_csrf_tokens_bind_to_the_session_and_key() -> None:
    key = b"k" * 32
    token = csrf_token(key, "session-1")
    assert csrf_ok(key, "session-1", token)
    assert not csrf_ok(key, "session-2", token)
    assert not csrf_ok(b"x" * 32, "session-1", token)
    assert not csrf_ok(key, None, token) and not csrf_ok(key, "session-1", None)


def test_group_commit_batches_and_isolates_failures(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'g.db'}")
    db.create_all()
    commits = Counter[str]()
    event.listen(db.engine, "commit", lambda conn: commits.update(["commit"]))

    def put(i: int) -> int:
        def work(conn: object) -> int:
            if i % 10 == 7:
                raise ValueError(f"job {i} fails")
            conn.execute(insert(secrets_table).values(name=f"k{i}", value=str(i)))  # type: ignore[attr-defined]
            return i

        return db.in_group_commit(work)

    results: dict[int, object] = {}

    def worker(i: int) -> None:
        try:
            results[i] = put(i)
        except ValueError as e:
            results[i] = str(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[i] == (f"job {i} fails" if i % 10 == 7 else i) for i in range(200))
    with db.read() as conn:
        stored = {r.name for r in conn.execute(select(secrets_table.c.name))}
    assert stored == {f"k{i}" for i in range(200) if i % 10 != 7}
    assert commits["commit"] < 200  # writes that arrived together shared commits
    db.dispose()


def _catalog(lang: str) -> dict[str, str]:
    path = resources.files("charter.assembly") / "translations" / f"{lang}.json"
    data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_every_word_is_translated_with_the_same_placeholders() -> None:
    en, ar = _catalog("en"), _catalog("ar")
    assert en.keys() == ar.keys()
    for key in en:
        assert set(re.findall(r"{(\w+)}", en[key])) == set(re.findall(r"{(\w+)}", ar[key])), key
        assert ar[key] != en[key], key  # nothing left in English
    templates = Path(str(resources.files("charter.assembly") / "templates"))
    used = set()
    for path in templates.glob("*.html"):
        used |= set(re.findall(r"""\bt\(["'](\w+)["']\s*[,)]""", path.read_text(encoding="utf-8")))
    used |= {f"note_{n}" for n in NOTES}
    used |= {"accept", "reject"}  # passed to the statement_list macro
    used |= set(ERROR_KEYS.values())
    assert used <= en.keys(), used - en.keys()
