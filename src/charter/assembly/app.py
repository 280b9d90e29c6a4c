"""The FastAPI app: the factory and the JSON API (`/api/...`, schema at `/openapi.json`).

Participants send `X-Participant-Token`, admins `Authorization: Bearer <token>`; the HTML pages
(`charter.assembly.pages`) use cookies for the same tokens. Every request body is capped in size
before it is read (`body_limit`), then validated by pydantic with unknown fields refused;
integers are strict (`true` is not a vote) and bounded so no input can overflow a column. A busy
database answers 503 with `Retry-After`; rate limits answer 429 with `Retry-After`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from charter.assembly import export, store
from charter.assembly.body_limit import BodyLimit
from charter.assembly.db import DatabaseBusy
from charter.assembly.deps import (
    Admin,
    Assembly,
    AssemblyDep,
    AssemblySettings,
    ParticipantDep,
    RateLimited,
    csv_response,
    draft_yaml,
    export_text,
)
from charter.assembly.pages import STATIC_DIR, error_page, pages
from charter.assembly.schemas import (
    MAX_ID,
    AnalysisOut,
    ConversationIn,
    ConversationOut,
    ConvId,
    Created,
    DraftIn,
    InvitesIn,
    InvitesOut,
    ModerationIn,
    NextOut,
    ParticipantIn,
    ParticipantOut,
    Problem,
    ProgressOut,
    StatementIn,
    StatementOut,
    VoteIn,
    VoteOut,
)
from charter.assembly.store import AssemblyError

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
