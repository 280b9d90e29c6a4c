"""The assembly: a small web app for a team's own public-input process (Polis-style).

Participants vote agree / disagree / pass on one statement at a time (chosen by Polis's
priority) and submit their own; admins create conversations, moderate, watch the live analysis
of `charter.collective`, export Polis-format CSVs and draft a constitution. Modules: `db`
(tables, SQLite WAL / PostgreSQL), `store` (every operation, HTTP-free), `priority` (which
statement next), `security` (tokens, CSRF, rate limits), `export` (Polis CSVs and the live
`Conversation`), `live` (cached analysis), `schemas` (request and answer models), `deps`
(settings, the app's shared state, dependencies), `app` (factory, JSON API), `pages` (HTML),
`i18n` (English and Arabic). FastAPI and SQLAlchemy are imported only when the app is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from charter.assembly.deps import AssemblySettings

__all__ = ["create_app"]


def create_app(settings: AssemblySettings | None = None, **kwargs: Any) -> FastAPI:
    """The FastAPI app (see `charter.assembly.app.create_app`)."""
    from charter.assembly.app import create_app as _create

    return _create(settings, **kwargs)
