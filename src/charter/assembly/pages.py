"""The server-rendered pages: the participant's page and the admin's pages.

Jinja templates with autoescaping (every statement is public input), one small script, no build
step. Forms are protected by a double-submit CSRF token: a random `charter_csrf` cookie and, in
each form, its HMAC under the database's key. A visitor becomes a participant at their first vote
or statement (so merely opening the link creates nothing); the token then lives in an HttpOnly
cookie for that conversation. The admin signs in with the admin token, kept in an HttpOnly,
SameSite=Strict cookie.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import TypeAdapter, ValidationError

from charter.assembly import export, store
from charter.assembly.deps import (
    Assembly,
    RateLimited,
    csv_response,
    draft_yaml,
    export_text,
    get_assembly,
)
from charter.assembly.i18n import Translator, pick_language
from charter.assembly.live import MAP_SIZE
from charter.assembly.schemas import (
    MAX_ID,
    MAX_STATEMENT_CHARS,
    ConversationIn,
    DraftIn,
    StatementText,
)
from charter.assembly.security import csrf_ok, csrf_token
from charter.assembly.store import AssemblyError, Participant

STATIC_DIR = Path(__file__).parent / "static"
CSRF_COOKIE = "charter_csrf"
ADMIN_COOKIE = "charter_admin"
LANG_COOKIE = "charter_lang"
YEAR = 365 * 24 * 3600
NOTES = ("voted", "submitted", "submitted_live", "moderated", "created")
ERROR_KEYS = {
    "this statement is already in the conversation": "err_duplicate",
    "invite code required": "err_invite",
    "invalid or used invite code": "err_invite",
    "no such conversation": "err_not_found",
    "no such statement in this conversation": "err_not_found",
    "bad form": "err_csrf",
    "too many requests": "err_rate",
    "text": "err_text",
    "admin token required": "err_admin",
    "database busy": "err_busy",
    "vote form": "err_vote_form",
}
PALETTE = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d")

templates = Environment(
    loader=PackageLoader("charter.assembly", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
pages = APIRouter(include_in_schema=False)
_statement_text: TypeAdapter[str] = TypeAdapter(StatementText)


def _participant_cookie(cid: int) -> str:
    return f"charter_p{cid}"


def _lang(request: Request, default: str | None = None) -> Translator:
    return Translator(
        pick_language(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE), default)
    )


def render(
    request: Request, name: str, t: Translator, status: int = 200, **context: Any
) -> HTMLResponse:
    """A page, with the CSRF cookie set on first visit and `?lang=` remembered."""
    assembly = get_assembly(request)
    session = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    html = templates.get_template(name).render(
        t=t,
        csrf=csrf_token(assembly.csrf_key, session),
        path=request.url.path,
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    secure = assembly.settings.secure_cookies
    if CSRF_COOKIE not in request.cookies:
        response.set_cookie(
            CSRF_COOKIE, session, httponly=True, samesite="lax", secure=secure, max_age=YEAR
        )
    chosen = request.query_params.get("lang")
    if chosen and pick_language(chosen) == chosen:
        response.set_cookie(LANG_COOKIE, chosen, samesite="lax", secure=secure, max_age=YEAR)
    return response


def error_page(request: Request, status: int, code: str) -> HTMLResponse:
    t = _lang(request)
    key = next((k for prefix, k in ERROR_KEYS.items() if code.startswith(prefix)), None)
    return render(
        request, "message.html", t, status=status, message=t(key) if key else code, back=None
    )


def _check_csrf(request: Request, token: str) -> None:
    if not csrf_ok(get_assembly(request).csrf_key, request.cookies.get(CSRF_COOKIE), token):
        raise AssemblyError(403, "bad form: reload the page and try again")


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _limit(
    request: Request, assembly: Assembly, who: Participant | None = None, *, joining: bool = False
) -> None:
    try:
        assembly.limit(request, who, joining=joining)
    except RateLimited:
        raise AssemblyError(429, "too many requests") from None


def _form_int(value: str, name: str, low: int, high: int, form: str) -> int:
    """A required integer field of a form. A missing one is an error, never a default: a vote
    form without `statement_id` once voted on statement 1."""
    try:
        number = int(value.strip())
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        found = "missing" if not value.strip() else f"{value[:20]!r} is not"
        raise AssemblyError(
            400, f"{form}: {name} {found} an integer from {low} to {high}; reload the page"
        )
    return number


def _cid(cid: int) -> int:
    if not 1 <= cid <= MAX_ID:
        raise AssemblyError(404, "no such conversation")
    return cid


# --- participant --------------------------------------------------------------------------------


@pages.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    return render(request, "home.html", _lang(request))


@pages.get("/c/{cid}", response_class=HTMLResponse)
def participant_page(request: Request, cid: int, note: str | None = None) -> HTMLResponse:
    assembly = get_assembly(request)
    conv = store.get_conversation(assembly.db, _cid(cid))
    t = _lang(request, conv.language)
    token = request.cookies.get(_participant_cookie(cid))
    who: Participant | None = None
    if token:
        try:
            who = store.participant_for(assembly.db, cid, token)
        except AssemblyError:
            who = None
    if who is None and conv.invite_only:
        return render(request, "join.html", t, conv=conv)
    viewer = who or Participant(id=0, conversation_id=cid)  # id 0: nobody, has seen nothing
    statement = store.next_statement(
        assembly.db, viewer, assembly.analyses.extremity(cid), assembly.rng
    )
    progress = store.progress(assembly.db, viewer)
    return render(
        request,
        "participant.html",
        t,
        conv=conv,
        statement=statement,
        progress=progress,
        note=note if note in NOTES else None,
        max_chars=MAX_STATEMENT_CHARS,
    )


def _participant_or_new(
    request: Request, assembly: Assembly, cid: int, invite_code: str | None = None
) -> tuple[Participant, str | None]:
    """The visitor's participant; a new one (and its token, for the cookie) at first action."""
    token = request.cookies.get(_participant_cookie(cid))
    if token:
        try:
            return store.participant_for(assembly.db, cid, token), None
        except AssemblyError:
            pass
    _limit(request, assembly, joining=True)
    token = store.new_participant(assembly.db, cid, invite_code)
    return store.participant_for(assembly.db, cid, token), token


def _with_participant_cookie(
    response: Response, request: Request, cid: int, token: str | None
) -> Response:
    if token is not None:
        response.set_cookie(
            _participant_cookie(cid),
            token,
            httponly=True,
            samesite="lax",
            secure=get_assembly(request).settings.secure_cookies,
            max_age=YEAR,
        )
    return response


@pages.post("/c/{cid}/join")
def join(
    request: Request,
    cid: int,
    csrf: Annotated[str, Form()] = "",
    invite_code: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    _check_csrf(request, csrf)
    assembly = get_assembly(request)
    store.get_conversation(assembly.db, _cid(cid))
    _, token = _participant_or_new(request, assembly, cid, invite_code.strip())
    return _with_participant_cookie(_see_other(f"/c/{cid}"), request, cid, token)


@pages.post("/c/{cid}/vote")
def vote_form(
    request: Request,
    cid: int,
    csrf: Annotated[str, Form()] = "",
    statement_id: Annotated[str, Form(max_length=20)] = "",
    vote: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    _check_csrf(request, csrf)
    sid = _form_int(statement_id, "statement_id", 1, MAX_ID, "vote form")
    choice = _form_int(vote, "vote", -1, 1, "vote form")
    assembly = get_assembly(request)
    conv = store.get_conversation(assembly.db, _cid(cid))
    if conv.invite_only and not request.cookies.get(_participant_cookie(cid)):
        raise AssemblyError(403, "invite code required")
    who, token = _participant_or_new(request, assembly, cid)
    _limit(request, assembly, who)
    store.cast_vote(assembly.db, who, sid, choice)
    return _with_participant_cookie(_see_other(f"/c/{cid}?note=voted"), request, cid, token)


@pages.post("/c/{cid}/statements")
def statement_form(
    request: Request,
    cid: int,
    csrf: Annotated[str, Form()] = "",
    text: Annotated[str, Form(max_length=10_000)] = "",
) -> Response:
    _check_csrf(request, csrf)
    assembly = get_assembly(request)
    conv = store.get_conversation(assembly.db, _cid(cid))
    try:
        clean = _statement_text.validate_python(text)
    except ValidationError:
        raise AssemblyError(422, "text: between 1 and 300 characters, please") from None
    if conv.invite_only and not request.cookies.get(_participant_cookie(cid)):
        raise AssemblyError(403, "invite code required")
    who, token = _participant_or_new(request, assembly, cid)
    _limit(request, assembly, who)
    store.submit_statement(assembly.db, who, clean)
    note = "submitted" if conv.strict_moderation else "submitted_live"
    return _with_participant_cookie(_see_other(f"/c/{cid}?note={note}"), request, cid, token)


# --- admin --------------------------------------------------------------------------------------


def _is_admin(request: Request) -> bool:
    return get_assembly(request).admin.ok(request.cookies.get(ADMIN_COOKIE))


def _require_admin(request: Request) -> Assembly:
    if not _is_admin(request):
        raise AssemblyError(401, "admin token required: sign in at /admin")
    return get_assembly(request)


@pages.get("/admin", response_class=HTMLResponse)
def admin_home(request: Request, note: str | None = None) -> HTMLResponse:
    t = _lang(request)
    if not _is_admin(request):
        return render(request, "admin_login.html", t)
    assembly = get_assembly(request)
    return render(
        request,
        "admin_home.html",
        t,
        conversations=store.list_conversations(assembly.db),
        note=note if note in NOTES else None,
    )


@pages.post("/admin/login")
def admin_login(
    request: Request,
    csrf: Annotated[str, Form()] = "",
    token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    _check_csrf(request, csrf)
    assembly = get_assembly(request)
    _limit(request, assembly)
    if not assembly.admin.ok(token.strip()):
        raise AssemblyError(401, "admin token required: that token is not the admin token")
    response = _see_other("/admin")
    response.set_cookie(
        ADMIN_COOKIE,
        token.strip(),
        httponly=True,
        samesite="strict",
        secure=assembly.settings.secure_cookies,
    )
    return response


@pages.post("/admin/logout")
def admin_logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    _check_csrf(request, csrf)
    response = _see_other("/admin")
    response.delete_cookie(ADMIN_COOKIE)
    return response


@pages.post("/admin/conversations")
def admin_create(
    request: Request,
    csrf: Annotated[str, Form()] = "",
    topic: Annotated[str, Form(max_length=200)] = "",
    description: Annotated[str, Form(max_length=4000)] = "",
    language: Annotated[str, Form(max_length=8)] = "en",
    seeds: Annotated[str, Form(max_length=200_000)] = "",
    strict_moderation: Annotated[str, Form(max_length=8)] = "",
    invite_only: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    _check_csrf(request, csrf)
    assembly = _require_admin(request)
    try:
        body = ConversationIn(
            topic=topic,
            description=description.strip(),
            language=pick_language(language),
            seed_statements=[line for line in seeds.splitlines() if line.strip()],
            strict_moderation=bool(strict_moderation),
            invite_only=bool(invite_only),
        )
    except ValidationError as e:
        problem = "; ".join(
            f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()[:3]
        )
        raise AssemblyError(422, problem) from None
    cid = store.create_conversation(
        assembly.db,
        body.topic,
        body.description,
        body.language,
        list(body.seed_statements),
        strict_moderation=body.strict_moderation,
        invite_only=body.invite_only,
    )
    return _see_other(f"/admin/c/{cid}?note=created")


@pages.get("/admin/c/{cid}", response_class=HTMLResponse)
def admin_conversation(request: Request, cid: int, note: str | None = None) -> HTMLResponse:
    assembly = _require_admin(request)
    conv = store.get_conversation(assembly.db, _cid(cid))
    statements = store.list_statements(assembly.db, cid)
    return render(
        request,
        "admin_conversation.html",
        _lang(request),
        conv=conv,
        pending=[s for s in statements if s.moderated == 0],
        accepted=[s for s in statements if s.moderated == 1],
        rejected=[s for s in statements if s.moderated == -1],
        share_url=str(request.base_url).rstrip("/") + f"/c/{cid}",
        exports=export.EXPORT_FILES,
        note=note if note in NOTES else None,
        codes=None,
    )


@pages.post("/admin/c/{cid}/moderate")
def admin_moderate(
    request: Request,
    cid: int,
    csrf: Annotated[str, Form()] = "",
    statement_id: Annotated[str, Form(max_length=20)] = "",
    moderated: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    _check_csrf(request, csrf)
    sid = _form_int(statement_id, "statement_id", 1, MAX_ID, "moderation form")
    decision = _form_int(moderated, "moderated", -1, 1, "moderation form")
    assembly = _require_admin(request)
    store.moderate(assembly.db, _cid(cid), sid, decision)
    return _see_other(f"/admin/c/{cid}?note=moderated")


@pages.post("/admin/c/{cid}/invites", response_class=HTMLResponse)
def admin_invites(
    request: Request,
    cid: int,
    csrf: Annotated[str, Form()] = "",
    count: Annotated[int, Form(ge=1, le=1000)] = 10,
) -> HTMLResponse:
    _check_csrf(request, csrf)
    assembly = _require_admin(request)
    codes = store.create_invites(assembly.db, _cid(cid), count)
    t = _lang(request)
    return render(request, "message.html", t, message=t("invites_made"), codes=codes,
                  back=f"/admin/c/{cid}")  # fmt: skip


@pages.get("/admin/c/{cid}/analysis", response_class=HTMLResponse)
def admin_analysis(request: Request, cid: int) -> HTMLResponse:
    assembly = _require_admin(request)
    conv = store.get_conversation(assembly.db, _cid(cid))
    live = assembly.analyses.get(cid)
    by_id = {s.statement_id: s for s in live.summary.statements} if live.summary else {}
    return render(
        request,
        "admin_analysis.html",
        _lang(request),
        conv=conv,
        live=live,
        summary=live.summary,
        by_id=by_id,
        palette=PALETTE,
        map_size=MAP_SIZE,
    )


@pages.post("/admin/c/{cid}/draft")
def admin_draft(
    request: Request,
    cid: int,
    csrf: Annotated[str, Form()] = "",
    min_gic: Annotated[float, Form(ge=0, le=1)] = 0.7,
) -> Response:
    _check_csrf(request, csrf)
    assembly = _require_admin(request)
    text = draft_yaml(assembly, _cid(cid), DraftIn(min_gic=min_gic))
    return PlainTextResponse(
        text,
        media_type="application/yaml",
        headers={"Content-Disposition": f'attachment; filename="constitution-{cid}.yaml"'},
    )


@pages.get("/admin/c/{cid}/export/{name}")
def admin_export(request: Request, cid: int, name: str) -> Response:
    assembly = _require_admin(request)
    return csv_response(export_text(assembly, _cid(cid), name), name)
