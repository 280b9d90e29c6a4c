"""The FastAPI app: settings, the factory, and the JSON API (`/api/...`, schema at `/openapi.json`).

Participants send `X-Participant-Token`, admins `Authorization: Bearer <token>`; the HTML pages
(`charter.assembly.pages`) use cookies for the same tokens. Every request body is capped in size
before it is read (`body_limit`), then validated by pydantic with unknown fields refused;
integers are strict (`true` is not a vote) and bounded so no input can overflow a column. A busy
database answers 503 with `Retry-After`; rate limits answer 429 with `Retry-After`.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from charter.assembly import export, store
from charter.assembly.body_limit import BodyLimit
from charter.assembly.db import DEFAULT_DB, Database, DatabaseBusy
from charter.assembly.live import AnalysisCache
from charter.assembly.security import AdminCheck, Rate, RateLimiter, csrf_key, setup_admin_token
from charter.assembly.store import AssemblyError, Language, Participant
from charter.collective.analysis import AnalysisSummary
from charter.records import Strict

MAX_ID = 2**31 - 1
MAX_STATEMENT_CHARS = 300  # Polis allows 140; room for one sentence in Arabic or German
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Lone surrogates cannot be encoded as UTF-8 (neither database stores them); NUL neither in
# PostgreSQL text.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
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


def clean_text(value: str) -> str:
    """Statement text as stored: surrounding space trimmed, no control characters."""
    value = value.strip()
    if not value:
        raise ValueError("empty text")
    if _CONTROL.search(value) or _UNSTORABLE.search(value):
        raise ValueError("control characters are not allowed")
    return value


def storable_text(value: str) -> str:
    """Free text (a description: newlines allowed) that both databases can store."""
    if _UNSTORABLE.search(value):
        raise ValueError("NUL bytes and lone surrogates are not allowed")
    return value


def exact_int(value: object) -> object:
    """Refuse booleans and floats where an integer is meant: `{"vote": true}` is not a vote.
    (Pydantic's lax mode reads `true` as 1 and `1.0` as 1 for a `Literal[-1, 0, 1]`.)"""
    if type(value) is not int:
        raise ValueError("must be an integer (not a boolean, string or float)")
    return value


StatementText = Annotated[
    str, Field(min_length=1, max_length=MAX_STATEMENT_CHARS), AfterValidator(clean_text)
]
ConvId = Annotated[int, Path(ge=1, le=MAX_ID, description="The conversation id.")]


class ConversationIn(Strict):
    topic: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(clean_text)]
    description: Annotated[str, Field(max_length=4000), AfterValidator(storable_text)] = ""
    language: Language = "en"
    seed_statements: Annotated[list[StatementText], Field(max_length=500)] = Field(
        default_factory=list
    )
    strict_moderation: bool = Field(
        True, description="Participants' statements are shown only once moderated in."
    )
    invite_only: bool = Field(False, description="Joining needs an invite code.")


class Created(Strict):
    id: int


class ConversationOut(Strict):
    id: int
    topic: str
    description: str
    language: Language
    strict_moderation: bool
    invite_only: bool


class ParticipantIn(Strict):
    invite_code: Annotated[str, Field(max_length=100)] | None = None


class ParticipantOut(Strict):
    token: str


class NextOut(Strict):
    statement_id: int
    text: str


StrictId = Annotated[int, Field(ge=1, le=MAX_ID, strict=True)]
VoteValue = Annotated[Literal[-1, 0, 1], BeforeValidator(exact_int)]


class VoteIn(Strict):
    statement_id: StrictId
    vote: VoteValue = Field(description="1 agree, -1 disagree, 0 pass (integers; not booleans).")


class VoteOut(Strict):
    replaced: bool = Field(
        description="True when this vote replaced the participant's earlier one."
    )


class StatementIn(Strict):
    text: StatementText


class StatementOut(Strict):
    statement_id: int
    text: str
    moderated: Literal[-1, 0, 1]
    n_agree: int = 0
    n_disagree: int = 0
    n_pass: int = 0


class ModerationIn(Strict):
    moderated: VoteValue = Field(description="1 in, -1 out, 0 pending.")


class InvitesIn(Strict):
    count: Annotated[int, Field(ge=1, le=1000, strict=True)]


class InvitesOut(Strict):
    codes: list[str]


class ProgressOut(Strict):
    voted: int
    total: int


class AnalysisOut(Strict):
    summary: AnalysisSummary | None
    problem: str | None = None


class DraftIn(Strict):
    min_gic: Annotated[float, Field(ge=0, le=1)] | None = None
    min_group_agree: Annotated[float, Field(ge=0, le=1)] | None = None
    max_principles: Annotated[int, Field(ge=1, le=1000)] | None = None
    name: Annotated[str, Field(max_length=100)] | None = None


class Problem(BaseModel):
    """An error: a sentence, or (422 from validation) FastAPI's list of field errors."""

    detail: str | list[dict[str, Any]]


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
ERRORS: dict[int | str, dict[str, object]] = {
    c: {"model": Problem} for c in (401, 403, 404, 409, 413, 422, 429, 503)
}

api = APIRouter(prefix="/api", responses=ERRORS)


@api.post("/conversations", dependencies=[Admin], status_code=201, tags=["admin"])
def create_conversation(body: ConversationIn, assembly: AssemblyDep) -> Created:
    """Create a conversation with its seed statements (admin)."""
    cid = store.create_conversation(
        assembly.db,
        body.topic,
        body.description,
        body.language,
        list(body.seed_statements),
        strict_moderation=body.strict_moderation,
        invite_only=body.invite_only,
    )
    return Created(id=cid)


@api.get("/conversations/{id}", tags=["participant"])
def get_conversation(id: ConvId, assembly: AssemblyDep) -> ConversationOut:
    c = store.get_conversation(assembly.db, id)
    return ConversationOut(**c.__dict__)


@api.post("/conversations/{id}/participants", status_code=201, tags=["participant"])
def new_participant(
    id: ConvId, request: Request, assembly: AssemblyDep, body: ParticipantIn | None = None
) -> ParticipantOut:
    """A new anonymous participant; send its token as `X-Participant-Token`."""
    assembly.limit(request, joining=True)
    code = body.invite_code if body else None
    return ParticipantOut(token=store.new_participant(assembly.db, id, code))


@api.get(
    "/conversations/{id}/next",
    tags=["participant"],
    responses={204: {"description": "Nothing left to vote on."}},
)
def next_statement(id: ConvId, who: ParticipantDep, assembly: AssemblyDep) -> Response:
    """The next statement to vote on, chosen by Polis's priority; 204 when none is left."""
    st = store.next_statement(assembly.db, who, assembly.analyses.extremity(id), assembly.rng)
    if st is None:
        return Response(status_code=204)
    return JSONResponse(NextOut(statement_id=st.id, text=st.text).model_dump())


@api.get("/conversations/{id}/progress", tags=["participant"])
def get_progress(id: ConvId, who: ParticipantDep, assembly: AssemblyDep) -> ProgressOut:
    p = store.progress(assembly.db, who)
    return ProgressOut(voted=p.voted, total=p.total)


@api.post("/conversations/{id}/votes", tags=["participant"])
def vote(
    id: ConvId, body: VoteIn, request: Request, who: ParticipantDep, assembly: AssemblyDep
) -> VoteOut:
    """Agree (1), disagree (-1) or pass (0); a new vote replaces the old one. Committed before
    the response is sent."""
    assembly.limit(request, who)
    return VoteOut(replaced=store.cast_vote(assembly.db, who, body.statement_id, body.vote))


@api.post("/conversations/{id}/statements", status_code=201, tags=["participant"])
def submit_statement(
    id: ConvId, body: StatementIn, request: Request, who: ParticipantDep, assembly: AssemblyDep
) -> StatementOut:
    """Submit a statement (pending moderation when the conversation is strict)."""
    assembly.limit(request, who)
    st = store.submit_statement(assembly.db, who, body.text)
    return StatementOut(statement_id=st.id, text=st.text, moderated=0)


@api.get("/conversations/{id}/statements", dependencies=[Admin], tags=["admin"])
def list_statements(
    id: ConvId,
    assembly: AssemblyDep,
    moderated: Annotated[Literal[-1, 0, 1] | None, Query()] = None,
) -> list[StatementOut]:
    return [
        StatementOut(
            statement_id=s.id, text=s.text, moderated=s.moderated,
            n_agree=s.n_agree, n_disagree=s.n_disagree, n_pass=s.n_pass,
        )
        for s in store.list_statements(assembly.db, id, moderated)
    ]  # fmt: skip


@api.put(
    "/conversations/{id}/statements/{statement_id}/moderation",
    dependencies=[Admin],
    status_code=204,
    tags=["admin"],
)
def moderate(
    id: ConvId,
    statement_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    body: ModerationIn,
    assembly: AssemblyDep,
) -> Response:
    store.moderate(assembly.db, id, statement_id, body.moderated)
    return Response(status_code=204)


@api.post("/conversations/{id}/invites", dependencies=[Admin], status_code=201, tags=["admin"])
def make_invites(id: ConvId, body: InvitesIn, assembly: AssemblyDep) -> InvitesOut:
    """Single-use invite codes (shown once; stored hashed)."""
    return InvitesOut(codes=store.create_invites(assembly.db, id, body.count))


@api.get("/conversations/{id}/analysis", dependencies=[Admin], tags=["admin"])
def analysis(id: ConvId, assembly: AssemblyDep) -> AnalysisOut:
    """The live analysis (groups, opinion map coordinates, GIC, consensus, divisive)."""
    store.get_conversation(assembly.db, id)
    live = assembly.analyses.get(id)
    return AnalysisOut(summary=live.summary, problem=live.problem)


@api.post(
    "/conversations/{id}/draft",
    dependencies=[Admin],
    tags=["admin"],
    response_model=None,
    responses={200: {"content": {"application/yaml": {"schema": {"type": "string"}}}}},
)
def draft(id: ConvId, body: DraftIn, assembly: AssemblyDep) -> PlainTextResponse:
    """A constitution YAML drafted from the live analysis (`charter collective draft`)."""
    text = draft_yaml(assembly, id, body)
    return PlainTextResponse(text, media_type="application/yaml")


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


def _export(name: str) -> Callable[..., PlainTextResponse]:
    def route(id: ConvId, assembly: AssemblyDep) -> PlainTextResponse:
        return csv_response(export_text(assembly, id, name), name)

    return route


for _name in export.EXPORT_FILES:
    api.add_api_route(
        f"/conversations/{{id}}/export/{_name}",
        _export(_name),
        methods=["GET"],
        dependencies=[Admin],
        tags=["admin"],
        response_model=None,
        responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
        name=f"export_{_name.replace('.', '_').replace('-', '_')}",
    )


def create_app(settings: AssemblySettings | None = None) -> FastAPI:
    """The whole app (API, pages, static files) over the database in `settings.db_url`."""
    from fastapi.staticfiles import StaticFiles

    from charter.assembly.pages import STATIC_DIR, pages

    settings = settings or AssemblySettings()
    app = FastAPI(
        title="charter assembly",
        version="1",
        description="Collect statements and votes for a collective constitution (Polis-style).",
        # The interactive docs pages load their scripts from a CDN: no network, and our CSP.
        docs_url=None,
        redoc_url=None,
    )
    app.state.assembly = Assembly(settings)

    @app.exception_handler(AssemblyError)
    async def _refused(request: Request, e: AssemblyError) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": e.code}, status_code=e.status)
        from charter.assembly.pages import error_page

        return error_page(request, e.status, e.code)

    @app.exception_handler(RateLimited)
    async def _slow_down(request: Request, e: RateLimited) -> Response:
        return JSONResponse(
            {"detail": "too many requests"},
            status_code=429,
            headers={"Retry-After": str(max(1, round(e.wait)))},
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> Response:
        # FastAPI's own handler echoes the input, and Starlette encodes JSON as UTF-8, which a
        # lone surrogate in that input (`"\ud800"` is valid JSON) cannot be: a 500. ASCII can.
        # A body sent as another content type is echoed as bytes, which `jsonable_encoder`
        # decodes as strict UTF-8: `b"\x80"` as text/plain was a 500 too.
        errors = jsonable_encoder(e.errors(), custom_encoder={bytes: _echo_bytes})
        return AsciiJSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(DatabaseBusy)
    async def _busy(request: Request, e: DatabaseBusy) -> Response:
        headers = {"Retry-After": str(e.retry_after)}
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": str(e)}, status_code=503, headers=headers)
        from charter.assembly.pages import error_page

        page = error_page(request, 503, f"database busy: {e}")
        page.headers.update(headers)
        return page

    app.include_router(api)
    app.include_router(pages)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # The last added is the outermost: security headers go on the 413s too.
    app.add_middleware(BodyLimit, limit_for=settings.body_limit)
    app.add_middleware(SecurityHeaders)
    return app


def _echo_bytes(data: bytes) -> str:
    """Raw request bytes as text for a validation error: undecodable bytes replaced."""
    return data.decode("utf-8", "replace")


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: any Python string can be sent."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


class SecurityHeaders:
    """Adds the security headers to every response. Plain ASGI, not `BaseHTTPMiddleware`,
    which costs a task and a stream per request on the hot vote path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)
