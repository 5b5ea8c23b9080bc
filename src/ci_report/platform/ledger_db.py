"""The two ledger databases behind one small interface: embedded SQLite and PostgreSQL.

:class:`Database` hands out transactions (:meth:`Database.tx`); inside one, ``execute`` takes SQL
written with ``?`` placeholders (rewritten to ``%s`` for psycopg). SQLite transactions start with
``BEGIN IMMEDIATE`` (one writer at a time, WAL so readers never wait); PostgreSQL ones are plain
``READ COMMITTED`` transactions where the ledger locks what it changes (``SELECT ... FOR UPDATE``
on a run row, an advisory lock on a webhook id). One connection per process, guarded by a lock:
the ledger's statements are short, Jenkins calls happen outside them.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Optional, Sequence

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

    def __init__(self, db: Database) -> None:
        self.db = db

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self.db.dialect == "postgresql":
            sql = sql.replace("?", "%s")
        return self.db.conn.execute(sql, tuple(params))

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


class Database:
    """A ledger database: ``open_database("path.db" | "sqlite:///path" | "postgresql://...")``."""

    def __init__(
        self, conn: Any, dialect: str, where: str, reconnect: Optional[Any] = None
    ) -> None:
        self.conn = conn
        self.dialect = dialect
        self.where = where
        self._reconnect = reconnect  # PostgreSQL: a new connection after the server dropped ours
        self._lock = threading.RLock()
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
        with self._lock:
            if self.dialect == "postgresql":
                if self._reconnect is not None and (self.conn.closed or self.conn.broken):
                    # the server restarted or the network dropped us: the failed statement
                    # raised to its caller; the next one gets a fresh connection
                    self.conn = self._reconnect()
                with self.conn.transaction():
                    yield Tx(self)
                return
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(self)
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def close(self) -> None:
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

        return Database(connect(), "postgresql", _redact_dsn(text), reconnect=connect)
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
