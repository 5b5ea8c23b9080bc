"""The two ledger databases behind one small interface: embedded SQLite and PostgreSQL.

:class:`Database` hands out transactions (:meth:`Database.tx`); inside one, ``execute`` takes SQL
written with ``?`` placeholders (rewritten to ``%s`` for psycopg). SQLite transactions start with
``BEGIN IMMEDIATE`` (one writer at a time, WAL so readers never wait); PostgreSQL ones are plain
``READ COMMITTED`` transactions where the ledger locks what it changes (``SELECT ... FOR UPDATE``
on a run row, an advisory lock on a webhook id). SQLite: one connection per process behind a
lock; PostgreSQL: a small pool (8), one connection per transaction. The ledger's transactions
are short: Jenkins calls happen outside them.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Sequence

from ..errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    parameters TEXT NOT NULL,
    trigger_id TEXT,
    queue_id BIGINT,
    build_number BIGINT,
    build_url TEXT,
    status TEXT NOT NULL,
    trigger_status TEXT NOT NULL,
    trigger_message TEXT,
    trigger_code TEXT,
    result_source TEXT,
    passed BIGINT, failed BIGINT, skipped BIGINT, total BIGINT,
    created_at {FLOAT} NOT NULL,
    started_at {FLOAT},
    finished_at {FLOAT},
    updated_at {FLOAT} NOT NULL,
    last_checked_at {FLOAT},
    attempts BIGINT NOT NULL DEFAULT 0,
    status_reason TEXT,
    jenkins_result TEXT,
    done_seen_at {FLOAT},
    missing_since {FLOAT},
    lease_owner TEXT,
    lease_until {FLOAT}
);
CREATE INDEX IF NOT EXISTS runs_open ON runs (status, updated_at);
CREATE TABLE IF NOT EXISTS run_history (
    id {SERIAL},
    run_id TEXT NOT NULL,
    at {FLOAT} NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    reason TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS run_history_run ON run_history (run_id, id);
CREATE TABLE IF NOT EXISTS deliveries (
    webhook_id TEXT PRIMARY KEY,
    body_sha256 TEXT NOT NULL,
    status BIGINT NOT NULL,
    response TEXT NOT NULL,
    received_at {FLOAT} NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
    key TEXT PRIMARY KEY,
    run_id TEXT,
    status TEXT,
    passed BIGINT, failed BIGINT, skipped BIGINT, total BIGINT,
    duration_ms BIGINT,
    job TEXT, build BIGINT,
    webhook_id TEXT,
    modes TEXT,
    payload TEXT NOT NULL,
    updated_at {FLOAT} NOT NULL,
    applied_count BIGINT NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS requests (
    id {SERIAL},
    webhook_id TEXT, path TEXT, status BIGINT, reason TEXT, at {FLOAT} NOT NULL
);
"""


class Tx:
    """One open transaction: ``execute`` / ``one`` / ``all`` with ``?`` placeholders."""

    def __init__(self, db: Database, conn: Any) -> None:
        self.db = db
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self.db.dialect == "postgresql":
            sql = sql.replace("?", "%s")
        return self.conn.execute(sql, tuple(params))

    def one(self, sql: str, params: Sequence[Any] = ()) -> Optional[dict[str, Any]]:
        cur = self.execute(sql, params)
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row))

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    @property
    def for_update(self) -> str:
        """Row lock suffix for a SELECT (SQLite's BEGIN IMMEDIATE already excludes writers)."""
        return " FOR UPDATE" if self.db.dialect == "postgresql" else ""

    def lock_key(self, key: str) -> None:
        """Serialize transactions on ``key`` (a webhook id) across processes."""
        if self.db.dialect == "postgresql":
            self.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (key,))


class _Pool:
    """At most ``size`` PostgreSQL connections, handed out one per transaction. A connection
    found broken (server restart, failover, network) is dropped with every idle one (they are
    likely dead too): the call that met it fails, the next one connects afresh."""

    def __init__(self, connect: Callable[[], Any], size: int, wait_s: float = 30.0) -> None:
        self.connect = connect
        self.size = max(1, size)
        self.wait_s = wait_s
        self.idle: list[Any] = []
        self.count = 0
        self.cond = threading.Condition()

    def get(self) -> Any:
        with self.cond:
            while True:
                if self.idle:
                    return self.idle.pop()
                if self.count < self.size:
                    self.count += 1
                    break
                if not self.cond.wait(self.wait_s):
                    raise ConfigError(
                        f"no free ledger connection within {self.wait_s:g} s ({self.size} in use)",
                        fix="a transaction is stuck, or the pool is too small for the load",
                    )
        try:
            return self.connect()
        except BaseException:
            with self.cond:
                self.count -= 1
                self.cond.notify()
            raise

    def put(self, conn: Any) -> None:
        with self.cond:
            if conn.closed or conn.broken:
                dead = [conn, *self.idle]
                self.count -= len(dead)
                self.idle = []
            else:
                self.idle.append(conn)
                dead = []
            self.cond.notify_all()
        for c in dead:
            try:
                c.close()
            except Exception:  # already gone
                continue

    def close(self) -> None:
        with self.cond:
            idle, self.idle = self.idle, []
            self.count -= len(idle)
        for c in idle:
            c.close()


class Database:
    """A ledger database: ``open_database("path.db" | "sqlite:///path" | "postgresql://...")``.

    SQLite: one connection (``conn``) behind a lock. PostgreSQL: a pool of connections, one per
    transaction, so the receiver's threads and the reconciler's workers do not queue on one."""

    def __init__(
        self,
        conn: Any,
        dialect: str,
        where: str,
        connect: Optional[Callable[[], Any]] = None,
        pool_size: int = 8,
    ) -> None:
        self.conn = conn  # SQLite's connection; PostgreSQL's first one (also pooled)
        self.dialect = dialect
        self.where = where
        self._lock = threading.RLock()
        self._pool: Optional[_Pool] = None
        if dialect == "postgresql":
            assert connect is not None
            self._pool = _Pool(connect, pool_size)
            self._pool.count = 1
            self._pool.idle.append(conn)
        schema = _SCHEMA.format(
            FLOAT="DOUBLE PRECISION" if dialect == "postgresql" else "REAL",
            SERIAL="BIGSERIAL PRIMARY KEY"
            if dialect == "postgresql"
            else "INTEGER PRIMARY KEY AUTOINCREMENT",
        )
        with self.tx() as tx:
            if dialect == "postgresql":
                # two replicas starting at once must not race on CREATE TABLE
                tx.execute("SELECT pg_advisory_xact_lock(4242001)")
            for statement in schema.split(";"):
                if statement.strip():
                    tx.execute(statement)

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        if self._pool is not None:
            conn = self._pool.get()
            try:
                with conn.transaction():
                    yield Tx(self, conn)
            finally:
                self._pool.put(conn)
            return
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(self, self.conn)
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            return
        with self._lock:
            self.conn.close()


def open_database(db: str) -> Database:
    text = str(db)
    if text.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg
        except ImportError:
            raise ConfigError(
                "a PostgreSQL ledger needs the psycopg driver",
                fix="pip install 'ci-report[postgres]'",
            ) from None

        def connect() -> Any:
            try:
                return psycopg.connect(text, autocommit=True, connect_timeout=10)
            except psycopg.Error as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise ConfigError(
                    f"cannot connect to the PostgreSQL ledger {_redact_dsn(text)}",
                    cause=first or type(exc).__name__,
                    fix="check the --db URL (host, port, user, database) and that the server runs",
                ) from None

        return Database(connect(), "postgresql", _redact_dsn(text), connect=connect)
    path = text[len("sqlite:///") :] if text.startswith("sqlite:///") else text
    try:
        lite = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        lite.execute("PRAGMA journal_mode=WAL")
        lite.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as exc:
        raise ConfigError(
            f"cannot open the ledger {path}", cause=str(exc), fix="check the --db path"
        ) from None
    return Database(lite, "sqlite", path)


def _redact_dsn(dsn: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    return dsn
