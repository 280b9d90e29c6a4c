"""What the JSON API (`app`) and the HTML pages (`pages`) share at run time: the settings, the
app's state (`Assembly`: database, admin check, CSRF key, rate limits, analysis cache), the
FastAPI dependencies, and the drafting and export bodies both serve.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.responses import PlainTextResponse
from starlette.types import Scope

from charter.assembly import export, store
from charter.assembly.db import DEFAULT_DB, Database
from charter.assembly.live import AnalysisCache
from charter.assembly.schemas import ConvId, DraftIn
from charter.assembly.security import AdminCheck, Rate, RateLimiter, csrf_key, setup_admin_token
from charter.assembly.store import AssemblyError, Participant

# Creating a conversation carries up to 500 seed statements (JSON may spell each character as
# six bytes, `\u0627`): the two routes that do get a larger cap than everything else.
ADMIN_BODY_ROUTES = frozenset({("POST", "/api/conversations"), ("POST", "/admin/conversations")})


@dataclass
class AssemblySettings:
    """How one assembly server runs. Rates are token buckets per process (see `docs/assembly.md`
    for what they stop and what they do not)."""

    db_url: str = DEFAULT_DB
    admin_token: str | None = None  # CHARTER_ADMIN_TOKEN; at least 32 characters
    # writes (votes, statements, joins) by one participant
    participant_rate: Rate = field(default_factory=lambda: Rate(per_minute=120, burst=30))
    # writes by one client address, all participants together
    address_rate: Rate = field(default_factory=lambda: Rate(per_minute=600, burst=120))
    # new participants from one client address: a new participant starts with a full
    # participant bucket, so without this one address could mint voters without limit
    join_rate: Rate = field(default_factory=lambda: Rate(per_minute=10, burst=10))
    max_body_bytes: int = 64 * 1024  # every request body but the two below
    max_admin_body_bytes: int = 2 * 1024 * 1024  # creating a conversation (ADMIN_BODY_ROUTES)
    busy_timeout_s: float = 2.0  # wait this long for a locked database, then answer 503
    max_waiting_writes: int = 32  # requests waiting to write at once (of 40 worker threads)
    synchronous: str = "FULL"
    secure_cookies: bool = False  # set behind HTTPS
    seed: int | None = None  # statement draws; None: random

    def body_limit(self, scope: Scope) -> int:
        """The body cap, in bytes, for one request."""
        if (scope.get("method"), scope.get("path")) in ADMIN_BODY_ROUTES:
            return max(self.max_body_bytes, self.max_admin_body_bytes)
        return self.max_body_bytes


class Assembly:
    """The app's shared state: database, admin check, CSRF key, rate limits, analysis cache."""

    def __init__(self, settings: AssemblySettings) -> None:
        self.settings = settings
        self.db = Database(
            settings.db_url,
            synchronous=settings.synchronous,
            busy_timeout_s=settings.busy_timeout_s,
            max_waiting_writes=settings.max_waiting_writes,
        )
        self.db.create_all()
        self.generated_admin_token = setup_admin_token(self.db, settings.admin_token)
        self.admin = AdminCheck(self.db)
        self.csrf_key = csrf_key(self.db)
        self.per_participant = RateLimiter(settings.participant_rate)
        self.per_address = RateLimiter(settings.address_rate)
        self.joins = RateLimiter(settings.join_rate)
        self.analyses = AnalysisCache(self.db)
        self.rng = random.Random(settings.seed)

    def limit(
        self, request: Request, participant: Participant | None = None, *, joining: bool = False
    ) -> None:
        """Count one write against the caller's address, and its participant or (`joining`) the
        address's new participants; 429 when any of them is over, and then none is counted."""
        address = request.client.host if request.client else "unknown"
        checks = [(self.per_address, address)]
        if joining:
            checks.append((self.joins, address))
        if participant is not None:
            checks.append((self.per_participant, f"p{participant.id}"))
        wait = max(limiter.wait(key) for limiter, key in checks)
        if wait:
            raise RateLimited(wait)
        for limiter, key in checks:
            limiter.take(key)


class RateLimited(Exception):
    def __init__(self, wait: float) -> None:
        super().__init__("rate limited")
        self.wait = wait


def get_assembly(request: Request) -> Assembly:
    assembly: Assembly = request.app.state.assembly
    return assembly


AssemblyDep = Annotated[Assembly, Depends(get_assembly)]


def require_admin(
    assembly: AssemblyDep,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    token = None
    if authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    if not assembly.admin.ok(token):
        raise AssemblyError(401, "admin token required (Authorization: Bearer <token>)")


def participant_dep(
    id: ConvId,
    assembly: AssemblyDep,
    x_participant_token: Annotated[str | None, Header(max_length=200)] = None,
) -> Participant:
    return store.participant_for(assembly.db, id, x_participant_token)


Admin = Depends(require_admin)
ParticipantDep = Annotated[Participant, Depends(participant_dep)]


def draft_yaml(assembly: Assembly, cid: int, body: DraftIn) -> str:
    from pydantic import ValidationError

    from charter.collective.draft import DraftConfig, draft_constitution
    from charter.constitution.load import dump_constitution
    from charter.errors import ConfigError

    store.get_conversation(assembly.db, cid)
    live = assembly.analyses.get(cid)
    if live.summary is None:
        raise AssemblyError(409, live.problem or "nothing to analyze")
    try:
        config = DraftConfig(
            min_gic=body.min_gic,
            min_group_agree=body.min_group_agree,
            max_principles=body.max_principles,
            name=body.name or None,
        )
        constitution = draft_constitution(live.summary, config)
    except (ValidationError, ConfigError) as e:
        raise AssemblyError(409, str(e).splitlines()[0]) from None
    return dump_constitution(constitution)


def export_text(assembly: Assembly, cid: int, name: str) -> str:
    """One of the Polis export files (`export.EXPORT_FILES`) of conversation `cid`."""
    store.get_conversation(assembly.db, cid)
    if name == "comments.csv":
        return export.comments_csv(assembly.db, cid)
    if name == "votes.csv":
        return export.votes_csv(assembly.db, cid)
    if name == "participants-votes.csv":
        live = assembly.analyses.get(cid)
        groups = live.groups if live.summary is not None else None
        return export.participants_votes_csv(assembly.db, cid, groups)
    raise AssemblyError(404, "no such export")


def csv_response(text: str, name: str) -> PlainTextResponse:
    return PlainTextResponse(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
