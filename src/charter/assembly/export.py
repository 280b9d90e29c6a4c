"""From the database to the collective pipeline: Polis-format CSVs and a live `Conversation`.

The three files are the ones a Polis export holds, with Polis's column names and conventions
(agree = 1, disagree = -1, pass = 0, times in milliseconds), so `charter collective ingest` reads
a download of them unchanged:

- `comments.csv`: timestamp, datetime, comment-id, author-id, agrees, disagrees, moderated,
  comment-body (every statement, moderated out ones included, as Polis does);
- `votes.csv`: timestamp, datetime, comment-id, voter-id, vote (each participant's current vote
  per statement; replaced votes stay in the database's history, not in the export);
- `participants-votes.csv`: participant, group-id, n-comments, n-votes, n-agree, n-disagree and
  one column per statement id.

`load_conversation` builds the same `Conversation` that ingesting these files gives, straight
from the database, for the live analysis.

Statement text is public input and spreadsheets run a cell that starts with `=`, `+`, `-` or `@`
as a formula (`=HYPERLINK(...)`, DDE): the text cells of the CSVs (`comment-body`) are
neutralised as OWASP recommends for CSV injection, by prefixing a single quote `'`. Only text
cells: numbers (votes of -1 included) stay numbers. So a statement `=1+1` reads back from the
export as `'=1+1`; the live analysis, reading the database, sees the text as written.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

from sqlalchemy import select

from charter.assembly.db import Database, participants, statements, votes
from charter.collective.conversation import Conversation, IngestReport, Statement
from charter.collective.ingestion import build_conversation
from charter.collective.votes import RawVotes

EXPORT_FILES = ("comments.csv", "votes.csv", "participants-votes.csv")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(text: str) -> str:
    """A text cell a spreadsheet will show, not run (OWASP's CSV-injection advice).

    >>> print(neutralise_cell('=HYPERLINK("http://x.example","click")'))
    '=HYPERLINK("http://x.example","click")
    >>> neutralise_cell("-1 is my answer"), neutralise_cell("Honesty first")
    ("'-1 is my answer", 'Honesty first')
    """
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _datetime(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%a %b %d %H:%M:%S UTC %Y")


def _csv(rows: Sequence[Sequence[object]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def comments_csv(db: Database, cid: int) -> str:
    with db.read() as conn:
        rows = conn.execute(
            select(statements).where(statements.c.conversation_id == cid).order_by(statements.c.id)
        ).all()
    out: list[Sequence[object]] = [
        ("timestamp", "datetime", "comment-id", "author-id", "agrees", "disagrees", "moderated",
         "comment-body"),
    ]  # fmt: skip
    for r in rows:
        out.append(
            (r.created, _datetime(r.created), r.id, "" if r.author_id is None else r.author_id,
             r.n_agree, r.n_disagree, r.moderated, neutralise_cell(r.text))
        )  # fmt: skip
    return _csv(out)


def _vote_rows(db: Database, cid: int) -> list[tuple[int, int, int, int]]:
    """(participant, statement, vote, modified) for every current vote, by time then ids."""
    with db.read() as conn:
        rows = conn.execute(
            select(votes.c.participant_id, votes.c.statement_id, votes.c.vote, votes.c.modified)
            .where(votes.c.conversation_id == cid)
            .order_by(votes.c.modified, votes.c.id)
        ).all()
    return [(int(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]


def votes_csv(db: Database, cid: int) -> str:
    out: list[Sequence[object]] = [("timestamp", "datetime", "comment-id", "voter-id", "vote")]
    for pid, sid, vote, t in _vote_rows(db, cid):
        out.append((t, _datetime(t), sid, pid, vote))
    return _csv(out)


def participants_votes_csv(db: Database, cid: int, groups: Mapping[str, int] | None = None) -> str:
    """The wide matrix; `groups` (participant id → group id) fills `group-id` when known."""
    with db.read() as conn:
        sids = [
            int(x)
            for x in conn.execute(
                select(statements.c.id)
                .where(statements.c.conversation_id == cid)
                .order_by(statements.c.id)
            ).scalars()
        ]
        pids = [
            int(x)
            for x in conn.execute(
                select(participants.c.id)
                .where(participants.c.conversation_id == cid)
                .order_by(participants.c.id)
            ).scalars()
        ]
        authored: dict[int, int] = defaultdict(int)
        for author in conn.execute(
            select(statements.c.author_id).where(
                statements.c.conversation_id == cid, statements.c.author_id.is_not(None)
            )
        ).scalars():
            authored[int(author)] += 1
    by_participant: dict[int, dict[int, int]] = defaultdict(dict)
    for pid, sid, vote, _ in _vote_rows(db, cid):
        by_participant[pid][sid] = vote
    header: list[object] = ["participant", "group-id", "n-comments", "n-votes", "n-agree",
                            "n-disagree", *sids]  # fmt: skip
    out: list[Sequence[object]] = [header]
    for pid in pids:
        mine = by_participant.get(pid, {})
        if not mine and not authored.get(pid):
            continue  # Polis lists only participants who did something
        values = list(mine.values())
        group = "" if groups is None else groups.get(str(pid), "")
        out.append(
            [pid, group, authored.get(pid, 0), len(values), values.count(1), values.count(-1)]
            + [mine.get(sid, "") for sid in sids]
        )
    return _csv(out)


def load_conversation(db: Database, cid: int) -> Conversation:
    """The conversation as `charter collective ingest` would read it from the export."""
    with db.read() as conn:
        rows = conn.execute(
            select(statements).where(statements.c.conversation_id == cid).order_by(statements.c.id)
        ).all()
    stmts = [
        Statement(
            statement_id=str(r.id),
            text=r.text,
            moderated=r.moderated,
            author_id=None if r.author_id is None else str(r.author_id),
            created=r.created,
        )
        for r in rows
    ]
    raw = RawVotes()
    for pid, sid, vote, t in _vote_rows(db, cid):
        raw.add(str(pid), str(sid), vote, t)
    report = IngestReport(
        source=f"assembly:{cid}",
        format="polis-export",
        statements_file="comments.csv",
        votes_file="votes.csv",
        n_statements=0,
        n_participants=0,
        n_votes=0,
    )
    return build_conversation(stmts, raw, report)
