"""The assembly's storage: SQLAlchemy tables and an engine tuned for many small, durable writes.

SQLite by default (a file in the working folder, WAL journal, `synchronous=FULL` so a vote that
was answered survives a crash of the machine), PostgreSQL or anything SQLAlchemy speaks by URL.
Ids are the tables' integer keys; the Polis export uses them as `comment-id` and `voter-id`.

`votes` holds each participant's current vote per statement (unique pair, so a vote can never
be counted twice); `vote_history` keeps every vote ever cast. The statement rows carry running
agree/disagree/pass counts, updated in the same transaction as the vote, which is what the
statement priority reads on every request.
"""

from __future__ import annotations

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


class Database:
    """An engine plus `read()` / `write()` transactions.

    With SQLite, writes take an in-process lock and `BEGIN IMMEDIATE`: the lock hands the single
    writer slot over in microseconds instead of SQLite's sleeping busy handler, and IMMEDIATE
    keeps two processes on one file from deadlocking on a read-to-write upgrade.
    """

    def __init__(self, url: str = DEFAULT_DB, *, synchronous: str = "FULL") -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._write_lock = threading.Lock()
        try:
            if self.is_sqlite:
                self.engine = create_engine(
                    url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=20
                )
                _tune_sqlite(self.engine, synchronous)
            else:
                self.engine = create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)
        except Exception as e:  # bad URL, missing driver: the user's to fix
            raise ConfigError(f"cannot open database {url!r}: {e}") from None
        self._writer = self.engine.execution_options(charter_write=True)
        # Rows that never change once written (conversations, participant tokens), by key:
        # the hot paths (next, vote) then read only what votes change.
        self.memo: dict[tuple[str, str | int], Any] = {}
        self._group = GroupCommit(self)

    def create_all(self) -> None:
        metadata.create_all(self.engine)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One transaction, committed when the block ends (before any response is sent)."""
        if self.is_sqlite:
            with self._write_lock, self._writer.begin() as conn:
                yield conn
        else:
            with self._writer.begin() as conn:
                yield conn

    def in_group_commit(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in the next shared transaction; returns once that is committed."""
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
        try:
            with self.db.write() as conn:
                for job in jobs:
                    try:
                        with conn.begin_nested():
                            job.result = job.work(conn)
                    except Exception as e:  # this job's own failure: its savepoint rolled back
                        job.error = e
        except BaseException as e:  # the commit itself failed: nothing of the batch was kept
            for job in jobs:
                if job.error is None:
                    job.error, job.result = e, None
        finally:
            for job in jobs:
                job.done.set()


def _tune_sqlite(engine: Engine, synchronous: str) -> None:
    if synchronous not in ("FULL", "NORMAL"):
        raise ConfigError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("charter_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
