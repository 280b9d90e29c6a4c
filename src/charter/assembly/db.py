"""The assembly's storage: SQLAlchemy tables and an engine tuned for many small, durable writes.

SQLite by default (a file in the working folder, WAL journal, `synchronous=FULL` so a vote that
was answered survives a crash of the machine), PostgreSQL (`postgresql+psycopg://...`, tested
against a real server) or anything SQLAlchemy speaks by URL. Ids are the tables' integer keys;
the Polis export uses them as `comment-id` and `voter-id`.

A database that cannot take a write now (another process holds the SQLite file's lock, a
PostgreSQL row or table lock, a server restarting) raises `DatabaseBusy` after a short wait
(`busy_timeout_s`, 2 s by default) instead of holding a worker thread for SQLite's customary
30 s; the app answers it with 503 and `Retry-After`. At most `max_waiting_writes` requests wait for
the write slot at once (the app's setting; unlimited by default here), so that the rest of the
worker threads keep serving reads.

`votes` holds each participant's current vote per statement (unique pair, so a vote can never
be counted twice); `vote_history` keeps every vote ever cast. The statement rows carry running
agree/disagree/pass counts, updated in the same transaction as the vote, which is what the
statement priority reads on every request.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from charter.errors import ConfigError

DEFAULT_DB = "sqlite:///charter-assembly.db"
T = TypeVar("T")

metadata = MetaData()

conversations = Table(
    "conversations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("topic", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("language", String(8), nullable=False),
    Column("strict_moderation", Boolean, nullable=False, default=True),
    Column("invite_only", Boolean, nullable=False, default=False),
    Column("created", BigInteger, nullable=False),
)

statements = Table(
    "statements",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("conversation_id", ForeignKey("conversations.id"), nullable=False, index=True),
    Column("text", Text, nullable=False),
    Column("moderated", SmallInteger, nullable=False, default=0),  # 1 in, -1 out, 0 pending
    Column("is_seed", Boolean, nullable=False, default=False),
    Column("author_id", ForeignKey("participants.id"), nullable=True),
    Column("created", BigInteger, nullable=False),
    Column("n_agree", Integer, nullable=False, default=0),
    Column("n_disagree", Integer, nullable=False, default=0),
    Column("n_pass", Integer, nullable=False, default=0),
)

participants = Table(
    "participants",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("conversation_id", ForeignKey("conversations.id"), nullable=False, index=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("created", BigInteger, nullable=False),
)

votes = Table(
    "votes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("conversation_id", ForeignKey("conversations.id"), nullable=False),
    Column("participant_id", ForeignKey("participants.id"), nullable=False),
    Column("statement_id", ForeignKey("statements.id"), nullable=False),
    Column("vote", SmallInteger, nullable=False),
    Column("modified", BigInteger, nullable=False),
    UniqueConstraint("participant_id", "statement_id", name="one_vote_per_pair"),
    Index("votes_by_conversation", "conversation_id", "participant_id"),
)

vote_history = Table(
    "vote_history",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("conversation_id", ForeignKey("conversations.id"), nullable=False, index=True),
    Column("participant_id", ForeignKey("participants.id"), nullable=False),
    Column("statement_id", ForeignKey("statements.id"), nullable=False),
    Column("vote", SmallInteger, nullable=False),
    Column("created", BigInteger, nullable=False),
)

invites = Table(
    "invites",
    metadata,
    Column("code_sha256", String(64), primary_key=True),
    Column("conversation_id", ForeignKey("conversations.id"), nullable=False),
    Column("participant_id", ForeignKey("participants.id"), nullable=True),  # set when used
)

secrets_table = Table(
    "secrets",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("value", String(128), nullable=False),
)


def now_ms() -> int:
    return int(time.time() * 1000)


def sqlite_url_for(path: str | Path) -> str:
    return f"sqlite:///{Path(path)}"


class DatabaseBusy(Exception):
    """The database cannot take this request now; worth retrying after `retry_after` seconds."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


# SQLite's result codes for "another connection holds the lock" (the low byte of extended codes).
SQLITE_BUSY, SQLITE_LOCKED = 5, 6


def is_busy_error(error: BaseException, is_sqlite: bool) -> bool:
    """Whether `error` means "not now" rather than "never": a lock held elsewhere, an exhausted
    connection pool, or (PostgreSQL) any operational error: lock and statement timeouts,
    serialization failures, deadlocks, a server that is restarting or unreachable."""
    if isinstance(error, PoolTimeout):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if not isinstance(error, OperationalError):
        return False
    if not is_sqlite:
        return True
    code = getattr(error.orig, "sqlite_errorcode", None)  # Python 3.11+
    if isinstance(code, int):
        return code & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED)
    message = str(error.orig).lower()
    return "locked" in message or "busy" in message


def _postgres_url(url: str) -> str:
    """`postgresql://` means psycopg2 to SQLAlchemy; use psycopg 3 when only it is installed."""
    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg"):
        return f"postgresql+psycopg{sep}{rest}"
    return url


class Database:
    """An engine plus `read()` / `write()` transactions.

    With SQLite, writes take an in-process lock and `BEGIN IMMEDIATE`: the lock hands the single
    writer slot over in microseconds instead of SQLite's sleeping busy handler, and IMMEDIATE
    keeps two processes on one file from deadlocking on a read-to-write upgrade. In WAL mode a
    writer (ours or another process's) never blocks readers, so pages keep rendering while the
    file is locked. With PostgreSQL every connection gets `lock_timeout = busy_timeout_s`.
    """

    def __init__(
        self,
        url: str = DEFAULT_DB,
        *,
        synchronous: str = "FULL",
        busy_timeout_s: float = 2.0,
        max_waiting_writes: int | None = None,
    ) -> None:
        if busy_timeout_s <= 0:
            raise ConfigError(f"busy_timeout_s must be positive, not {busy_timeout_s}")
        if max_waiting_writes is not None and max_waiting_writes < 1:
            raise ConfigError(f"max_waiting_writes must be at least 1, not {max_waiting_writes}")
        url = _postgres_url(url)
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.busy_timeout_s = busy_timeout_s
        self.retry_after = max(1, math.ceil(busy_timeout_s))
        self._write_lock = threading.Lock()
        self._waiting = (
            None if max_waiting_writes is None else threading.BoundedSemaphore(max_waiting_writes)
        )
        # Threads waiting for a connection give up as soon as they would for a lock.
        pool = {"pool_size": 20, "max_overflow": 20, "pool_timeout": busy_timeout_s}
        try:
            if self.is_sqlite:
                self.engine = create_engine(
                    url,
                    connect_args={"check_same_thread": False, "timeout": busy_timeout_s},
                    **pool,
                )
                _tune_sqlite(self.engine, synchronous, busy_timeout_s)
            else:
                self.engine = create_engine(url, pool_pre_ping=True, **pool)
                if self.engine.dialect.name == "postgresql":
                    _tune_postgres(self.engine, busy_timeout_s)
        except ConfigError:
            raise
        except Exception as e:  # bad URL, missing driver: the user's to fix
            raise ConfigError(f"cannot open database {url!r}: {e}") from None
        self._writer = self.engine.execution_options(charter_write=True)
        # Rows that never change once written (conversations, participant tokens), by key:
        # the hot paths (next, vote) then read only what votes change.
        self.memo: dict[tuple[str, str | int], Any] = {}
        self._group = GroupCommit(self)

    def create_all(self) -> None:
        try:
            metadata.create_all(self.engine)
        except Exception as e:
            raise self.busy_or_same(e) from e

    def busy_or_same(self, error: Exception) -> Exception:
        """`error` as a `DatabaseBusy` when it only means "not now", else `error` itself."""
        if isinstance(error, DatabaseBusy) or not is_busy_error(error, self.is_sqlite):
            return error
        return DatabaseBusy("the database is busy; try again in a moment", self.retry_after)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except Exception as e:
            busy = self.busy_or_same(e)
            if busy is e:
                raise
            raise busy from e

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One transaction, committed when the block ends (before any response is sent)."""
        with self.waiting_for_write(), self.transaction() as conn:
            yield conn

    @contextmanager
    def waiting_for_write(self) -> Iterator[None]:
        """Hold one of the `max_waiting_writes` places; `DatabaseBusy` at once when none is free."""
        if self._waiting is None:
            yield
            return
        if not self._waiting.acquire(blocking=False):
            raise DatabaseBusy("too many writes are waiting for the database", self.retry_after)
        try:
            yield
        finally:
            self._waiting.release()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """The write transaction itself (the group-commit thread's; others use `write`)."""
        try:
            if self.is_sqlite:
                if not self._write_lock.acquire(timeout=self.busy_timeout_s):
                    raise DatabaseBusy("the database is busy; try again in a moment",
                                       self.retry_after)  # fmt: skip
                try:
                    with self._writer.begin() as conn:
                        yield conn
                finally:
                    self._write_lock.release()
            else:
                with self._writer.begin() as conn:
                    yield conn
        except Exception as e:
            busy = self.busy_or_same(e)
            if busy is e:
                raise
            raise busy from e

    def in_group_commit(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in the next shared transaction; returns once that is committed."""
        with self.waiting_for_write():
            return self._group.submit(work)

    def dispose(self) -> None:
        self._group.close()
        self.engine.dispose()


@dataclass
class _Job(Generic[T]):
    work: Callable[[Connection], T]
    done: threading.Event = field(default_factory=threading.Event)
    result: T | None = None
    error: BaseException | None = None


class GroupCommit:
    """Many small writes, one commit: the writes waiting when the last commit ended share the
    next transaction, each in its own savepoint (one failing leaves the others), and every
    caller gets its answer only after that transaction committed. A commit costs one fsync
    (milliseconds on a shared disk), so this is what lets hundreds of votes a second through
    with `synchronous=FULL`. Only the thread of this class writes these transactions.
    """

    def __init__(self, db: Database, max_batch: int = 500) -> None:
        self.db = db
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, work: Callable[[Connection], T]) -> T:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="charter-group-commit", daemon=True
                    )
                    self._thread.start()
        job: _Job[T] = _Job(work)
        self._queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]  # set when no error

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            stop = False
            while len(jobs) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
            self._commit(jobs)
            if stop:
                return

    def _commit(self, jobs: list[_Job[Any]]) -> None:
        busy: DatabaseBusy | None = None
        try:
            with self.db.transaction() as conn:
                for job in jobs:
                    if busy is not None:  # PostgreSQL: one lock timeout, not one per job
                        job.error = busy
                        continue
                    try:
                        with conn.begin_nested():
                            job.result = job.work(conn)
                    except Exception as e:  # this job's own failure: its savepoint rolled back
                        job.error = self.db.busy_or_same(e)
                        if isinstance(job.error, DatabaseBusy):
                            busy = job.error
        except BaseException as e:  # the commit itself failed: nothing of the batch was kept
            for job in jobs:
                if job.error is None:
                    job.error, job.result = e, None
        finally:
            for job in jobs:
                job.done.set()


def _tune_sqlite(engine: Engine, synchronous: str, busy_timeout_s: float) -> None:
    if synchronous not in ("FULL", "NORMAL"):
        raise ConfigError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={round(busy_timeout_s * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("charter_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _tune_postgres(engine: Engine, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        # A plain SET inside a transaction that is rolled back is undone: commit it.
        cur.execute(f"SET lock_timeout = {round(busy_timeout_s * 1000)}")
        cur.close()
        dbapi_conn.commit()
