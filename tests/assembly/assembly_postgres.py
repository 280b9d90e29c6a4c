"""A real PostgreSQL server for the assembly tests, and `database_url`, a fixture that runs a
test once over a SQLite file and once over a fresh PostgreSQL database.

The server is Debian's `postgresql` package (`.ci/postgres.sh` installs it), started on first
use on a temporary data directory and a free port on 127.0.0.1, and stopped when the test
process exits. PostgreSQL refuses to run as root, so as root it runs as the `postgres` system
user (which the package creates). Without the package, or without the psycopg driver, the
PostgreSQL half of each test skips and says why.

Not a conftest.py: this folder's would share the module name `conftest` with `tests/conftest.py`
(mypy refuses two modules of one name). Test modules import the fixture under another name,
`from assembly_postgres import database_url_fixture`, and call `postgres_server()`.
"""

from __future__ import annotations

import atexit
import importlib.util
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from assembly_helpers import free_port

PG_ROOT = Path("/usr/lib/postgresql")
PG_USER = "charter"
_names = itertools.count(1)


def _pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian keeps it off the PATH)."""
    found = sorted(PG_ROOT.glob("*/bin/initdb"), key=lambda p: int(p.parts[-3].split(".")[0]))
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


class Postgres:
    """One `postgres` server on a temporary data directory, as a non-root user."""

    def __init__(self, bin_dir: Path, root: Path, run_as: list[str]) -> None:
        self.bin = bin_dir
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = free_port()
        self.run_as = run_as

    def _run(self, tool: str, *args: str) -> None:
        r = subprocess.run([*self.run_as, str(self.bin / tool), *args],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
        if r.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} {' '.join(args)} failed: {r.stdout}{r.stderr}\n{log}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", PG_USER, "--auth=trust", "-E", "UTF8",
                  "--no-locale", "--no-sync")  # fmt: skip

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
                   "-c max_connections=200 -c shared_buffers=32MB")  # fmt: skip
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """`fast`: a clean shutdown; `immediate`: as if the machine lost power (no checkpoint,
        the next start replays the write-ahead log)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database on this server; returns its SQLAlchemy URL."""
        import psycopg

        name = f"assembly_{os.getpid()}_{next(_names)}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={PG_USER} dbname=postgres",
                             autocommit=True) as conn:  # fmt: skip
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _why_no_postgres() -> str | None:
    if importlib.util.find_spec("psycopg") is None:
        return "the psycopg driver is not installed (pip install 'psycopg[binary]')"
    if _pg_bin() is None:
        return ("PostgreSQL is not installed: no initdb under /usr/lib/postgresql/*/bin "
                "(Debian's postgresql package; .ci/postgres.sh installs it)")  # fmt: skip
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root without `runuser` to start the server as `postgres`"
    return None


_server: Postgres | None = None
_no_server: str | None = None


def postgres_server() -> Postgres:
    """The test process's PostgreSQL server, started at the first call (one per process, not
    one per test module, as a fixture imported into several modules would be); skips the
    calling test, saying why, when PostgreSQL or its driver is not installed."""
    global _server, _no_server
    if _server is None and _no_server is None:
        _no_server = _why_no_postgres()
        if _no_server is None:
            _server = _start()
    if _server is None:
        pytest.skip(_no_server or "no PostgreSQL")
    return _server


def _start() -> Postgres:
    bin_dir = _pg_bin()
    assert bin_dir is not None
    # Not under pytest's tmp_path: its parents are private to this user, and the server runs
    # as another one when we are root.
    root = Path(tempfile.mkdtemp(prefix="charter-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    server = Postgres(bin_dir, root, run_as)
    try:
        server.init()
        server.start()
    except Exception:
        shutil.rmtree(root, ignore_errors=True)
        raise
    atexit.register(_stop, server)
    return server


def _stop(server: Postgres) -> None:
    try:
        server.stop()
    finally:
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(name="database_url", params=["sqlite", "postgresql"])
def database_url_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test's database: a SQLite file, then (second run) a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'assembly.db'}"
    return postgres_server().new_database()
