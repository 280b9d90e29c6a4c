"""What the assembly does, independent of HTTP: conversations, participants, votes, statements.

The API and the web pages both call these functions. Every write is committed before the
function returns; the frequent ones (joining, voting, submitting) go through the database's
group commit, which shares one transaction among the writes that arrive together. A vote on
a pair that already has one replaces it (as in Polis); the old and new votes both stay in
`vote_history`, and the statement's counts move with it.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from charter.assembly.db import (
    Database,
    conversations,
    invites,
    now_ms,
    participants,
    statements,
    vote_history,
    votes,
)
from charter.assembly.priority import Candidate, choose_next
from charter.assembly.security import new_token, token_hash

Language = Literal["en", "ar"]
LANGUAGES: tuple[Language, ...] = ("en", "ar")
COUNT_COLUMN = {1: "n_agree", -1: "n_disagree", 0: "n_pass"}


class AssemblyError(Exception):
    """A request the assembly refuses; `status` is the HTTP status, `code` a stable reason."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class ConversationInfo:
    id: int
    topic: str
    description: str
    language: Language
    strict_moderation: bool
    invite_only: bool


@dataclass(frozen=True)
class Participant:
    id: int
    conversation_id: int


@dataclass(frozen=True)
class StatementInfo:
    id: int
    text: str
    moderated: int
    is_seed: bool
    n_agree: int
    n_disagree: int
    n_pass: int


@dataclass(frozen=True)
class Progress:
    voted: int
    total: int


def create_conversation(
    db: Database,
    topic: str,
    description: str,
    language: Language,
    seed_statements: list[str],
    *,
    strict_moderation: bool = True,
    invite_only: bool = False,
) -> int:
    """A new conversation with its seed statements (moderated in)."""
    t = now_ms()
    with db.write() as conn:
        cid = conn.execute(
            conversations.insert().values(
                topic=topic,
                description=description,
                language=language,
                strict_moderation=strict_moderation,
                invite_only=invite_only,
                created=t,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        for text in seed_statements:
            conn.execute(
                statements.insert().values(
                    conversation_id=cid, text=text, moderated=1, is_seed=True, created=t
                )
            )
    return int(cid)


MEMO_LIMIT = 200_000


def _remember(db: Database, key: tuple[str, str | int], value: object) -> None:
    if len(db.memo) >= MEMO_LIMIT:
        db.memo.clear()
    db.memo[key] = value


def get_conversation(db: Database, cid: int) -> ConversationInfo:
    known = db.memo.get(("conversation", cid))
    if known is not None:
        return known  # type: ignore[no-any-return]
    with db.read() as conn:
        row = conn.execute(select(conversations).where(conversations.c.id == cid)).one_or_none()
    if row is None:
        raise AssemblyError(404, "no such conversation")
    info = ConversationInfo(
        id=row.id,
        topic=row.topic,
        description=row.description,
        language=row.language,
        strict_moderation=bool(row.strict_moderation),
        invite_only=bool(row.invite_only),
    )
    _remember(db, ("conversation", cid), info)
    return info


def list_conversations(db: Database) -> list[ConversationInfo]:
    with db.read() as conn:
        ids = list(conn.execute(select(conversations.c.id).order_by(conversations.c.id)).scalars())
    return [get_conversation(db, int(i)) for i in ids]


def create_invites(db: Database, cid: int, count: int) -> list[str]:
    """`count` single-use invite codes (stored hashed); the codes are shown once."""
    get_conversation(db, cid)
    codes = [secrets.token_urlsafe(9) for _ in range(count)]
    with db.write() as conn:
        for code in codes:
            conn.execute(invites.insert().values(code_sha256=token_hash(code), conversation_id=cid))
    return codes


def new_participant(db: Database, cid: int, invite_code: str | None = None) -> str:
    """A new anonymous participant; returns its token (only its hash is stored)."""
    conv = get_conversation(db, cid)
    token = new_token()

    def work(conn: Connection) -> None:
        pid = conn.execute(
            participants.insert().values(
                conversation_id=cid, token_sha256=token_hash(token), created=now_ms()
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        if conv.invite_only:
            if not invite_code:
                raise AssemblyError(403, "invite code required")
            used = conn.execute(
                update(invites)
                .where(
                    invites.c.code_sha256 == token_hash(invite_code),
                    invites.c.conversation_id == cid,
                    invites.c.participant_id.is_(None),
                )
                .values(participant_id=pid)
            ).rowcount
            if used != 1:
                raise AssemblyError(403, "invalid or used invite code")  # rolls back the insert

    db.in_group_commit(work)
    return token


def participant_for(db: Database, cid: int, token: str | None) -> Participant:
    if not token:
        raise AssemblyError(401, "participant token required")
    digest = token_hash(token)
    who = db.memo.get(("participant", digest))
    if who is None:
        with db.read() as conn:
            row = conn.execute(
                select(participants.c.id, participants.c.conversation_id).where(
                    participants.c.token_sha256 == digest
                )
            ).one_or_none()
        if row is None:
            raise AssemblyError(401, "unknown participant token for this conversation")
        who = Participant(id=int(row.id), conversation_id=int(row.conversation_id))
        _remember(db, ("participant", digest), who)
    if who.conversation_id != cid:
        raise AssemblyError(401, "unknown participant token for this conversation")
    return who


def _visible(strict: bool) -> ColumnElement[bool]:
    """Statements shown to participants: moderated in, or (not strict) not moderated out."""
    return statements.c.moderated == 1 if strict else statements.c.moderated >= 0


def next_statement(
    db: Database,
    who: Participant,
    extremity: dict[int, float],
    rng: random.Random,
) -> StatementInfo | None:
    conv = get_conversation(db, who.conversation_id)
    seen = select(votes.c.statement_id).where(votes.c.participant_id == who.id)
    with db.read() as conn:
        rows = conn.execute(
            select(statements).where(
                statements.c.conversation_id == who.conversation_id,
                _visible(conv.strict_moderation),
                statements.c.id.not_in(seen),
                (statements.c.author_id.is_(None)) | (statements.c.author_id != who.id),
            )
        ).all()
    by_id = {int(r.id): r for r in rows}
    pick = choose_next(
        [Candidate(int(r.id), r.n_agree, r.n_disagree, r.n_pass) for r in rows], extremity, rng
    )
    return None if pick is None else _statement_info(by_id[pick])


def _statement_info(r: object) -> StatementInfo:
    return StatementInfo(
        id=int(r.id),  # type: ignore[attr-defined]
        text=str(r.text),  # type: ignore[attr-defined]
        moderated=int(r.moderated),  # type: ignore[attr-defined]
        is_seed=bool(r.is_seed),  # type: ignore[attr-defined]
        n_agree=int(r.n_agree),  # type: ignore[attr-defined]
        n_disagree=int(r.n_disagree),  # type: ignore[attr-defined]
        n_pass=int(r.n_pass),  # type: ignore[attr-defined]
    )


def progress(db: Database, who: Participant) -> Progress:
    conv = get_conversation(db, who.conversation_id)
    with db.read() as conn:
        total = conn.execute(
            select(func.count())
            .select_from(statements)
            .where(
                statements.c.conversation_id == who.conversation_id,
                _visible(conv.strict_moderation),
            )
        ).scalar_one()
        voted = conn.execute(
            select(func.count()).select_from(votes).where(votes.c.participant_id == who.id)
        ).scalar_one()
    return Progress(voted=int(voted), total=int(total))


def cast_vote(db: Database, who: Participant, statement_id: int, vote: int) -> bool:
    """Record `vote` (1 agree, -1 disagree, 0 pass); True when it replaced an earlier vote."""
    if vote not in COUNT_COLUMN:
        raise AssemblyError(422, "vote must be -1, 0 or 1")
    conv = get_conversation(db, who.conversation_id)
    t = now_ms()

    def work(conn: Connection) -> bool:
        # One query answers both "may this be voted on?" and "is there a vote to replace?".
        found = conn.execute(
            select(statements.c.id, votes.c.id.label("vote_id"), votes.c.vote)
            .outerjoin(
                votes,
                (votes.c.statement_id == statements.c.id) & (votes.c.participant_id == who.id),
            )
            .where(
                statements.c.id == statement_id,
                statements.c.conversation_id == who.conversation_id,
                _visible(conv.strict_moderation),
            )
        ).one_or_none()
        if found is None:
            raise AssemblyError(404, "no such statement in this conversation")
        replaced = found.vote_id is not None
        if not replaced:
            conn.execute(
                votes.insert().values(
                    conversation_id=who.conversation_id,
                    participant_id=who.id,
                    statement_id=statement_id,
                    vote=vote,
                    modified=t,
                )
            )
        else:
            conn.execute(
                update(votes).where(votes.c.id == found.vote_id).values(vote=vote, modified=t)
            )
            _bump(conn, statement_id, int(found.vote), -1)
        _bump(conn, statement_id, vote, +1)
        conn.execute(
            vote_history.insert().values(
                conversation_id=who.conversation_id,
                participant_id=who.id,
                statement_id=statement_id,
                vote=vote,
                created=t,
            )
        )
        return replaced

    return db.in_group_commit(work)


def _bump(conn: Connection, statement_id: int, vote: int, by: int) -> None:
    column = statements.c[COUNT_COLUMN[vote]]
    conn.execute(
        update(statements).where(statements.c.id == statement_id).values({column: column + by})
    )


def submit_statement(db: Database, who: Participant, text: str) -> StatementInfo:
    """A participant's statement, pending moderation (shown meanwhile unless strict)."""
    get_conversation(db, who.conversation_id)

    def work(conn: Connection) -> int:
        duplicate = conn.execute(
            select(statements.c.id).where(
                statements.c.conversation_id == who.conversation_id, statements.c.text == text
            )
        ).first()
        if duplicate is not None:
            raise AssemblyError(409, "this statement is already in the conversation")
        sid = conn.execute(
            statements.insert().values(
                conversation_id=who.conversation_id,
                text=text,
                moderated=0,
                is_seed=False,
                author_id=who.id,
                created=now_ms(),
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        return int(sid)

    return StatementInfo(db.in_group_commit(work), text, 0, False, 0, 0, 0)


def list_statements(db: Database, cid: int, moderated: int | None = None) -> list[StatementInfo]:
    get_conversation(db, cid)
    query = select(statements).where(statements.c.conversation_id == cid)
    if moderated is not None:
        query = query.where(statements.c.moderated == moderated)
    with db.read() as conn:
        rows = conn.execute(query.order_by(statements.c.id)).all()
    return [_statement_info(r) for r in rows]


def moderate(db: Database, cid: int, statement_id: int, moderated: int) -> None:
    if moderated not in (-1, 0, 1):
        raise AssemblyError(422, "moderated must be -1, 0 or 1")
    with db.write() as conn:
        n = conn.execute(
            update(statements)
            .where(statements.c.id == statement_id, statements.c.conversation_id == cid)
            .values(moderated=moderated)
        ).rowcount
    if n != 1:
        raise AssemblyError(404, "no such statement in this conversation")
