"""`charter assembly serve`: the public-input web app."""

from __future__ import annotations

import os

import click

from charter.cli.vocabulary import CharterGroup


@click.group(cls=CharterGroup)
def assembly() -> None:
    """Collect statements and votes on the web (a Polis-style public-input app)."""


@assembly.command("serve")
@click.option(
    "--db",
    "db_url",
    default="sqlite:///charter-assembly.db",
    show_default=True,
    help="SQLAlchemy URL: a SQLite file (WAL) or postgresql+psycopg://user:pass@host/db.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0: every interface; put HTTPS in front).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="TCP port to listen on.",
)
@click.option(
    "--participant-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=120,
    show_default=True,
    help="Writes per minute one participant may make (bursts of a quarter of that).",
)
@click.option(
    "--address-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=600,
    show_default=True,
    help="Writes per minute from one IP address (bursts of a fifth of that).",
)
@click.option(
    "--join-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=10,
    show_default=True,
    help="New participants per minute from one IP address (bursts of a minute's worth).",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1024),
    default=64 * 1024,
    show_default=True,
    help="Largest request body (413 above it); creating a conversation allows 2 MiB.",
)
@click.option(
    "--busy-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=2.0,
    show_default=True,
    help="Seconds a write waits for a locked database before answering 503 with Retry-After.",
)
@click.option(
    "--synchronous",
    type=click.Choice(["FULL", "NORMAL"]),
    default="FULL",
    show_default=True,
    help="SQLite: FULL survives a power cut after each answered vote; NORMAL a process crash.",
)
@click.option("--secure-cookies", is_flag=True, help="Mark cookies Secure (serve behind HTTPS).")
@click.option("--proxy-headers", is_flag=True, help="Trust X-Forwarded-For from 127.0.0.1.")
def serve(
    db_url: str,
    host: str,
    port: int,
    participant_rate: float,
    address_rate: float,
    join_rate: float,
    max_body_bytes: int,
    busy_timeout: float,
    synchronous: str,
    secure_cookies: bool,
    proxy_headers: bool,
) -> None:
    """Serve the participant pages (/c/ID), the admin pages (/admin) and the JSON API (/api,
    schema at /openapi.json). The admin token is CHARTER_ADMIN_TOKEN (at least 32 characters;
    a weaker one stops the server), or one generated and printed once at first start (only its
    hash is stored). Limits, status codes and PostgreSQL: docs/assembly.md."""
    import uvicorn

    from charter.assembly.app import create_app
    from charter.assembly.deps import AssemblySettings
    from charter.assembly.security import Rate

    settings = AssemblySettings(
        db_url=db_url,
        admin_token=os.environ.get("CHARTER_ADMIN_TOKEN") or None,
        participant_rate=Rate(participant_rate, max(1, int(participant_rate / 4))),
        address_rate=Rate(address_rate, max(1, int(address_rate / 5))),
        join_rate=Rate(join_rate, max(1, int(join_rate))),
        max_body_bytes=max_body_bytes,
        busy_timeout_s=busy_timeout,
        synchronous=synchronous,
        secure_cookies=secure_cookies,
    )
    app = create_app(settings)
    token = app.state.assembly.generated_admin_token
    if token is not None:
        click.echo(f"admin token (shown once, stored hashed; keep it): {token}", err=True)
    click.echo(f"charter assembly on http://{host}:{port}/admin (database {db_url})", err=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=proxy_headers,
        timeout_keep_alive=30,  # browsers and load balancers keep connections longer than 5 s
    )
