"""The reference receiver: what a platform endpoint for ci-report callbacks should do.

Stdlib HTTP server + SQLite. Verifies the raw body before parsing it, dedupes on ``webhook-id``
(same id and body -> the stored 2xx again; same id, other body -> 422), and stores executions
keyed by ``runId`` (or job + build). Used by ``ci-report receiver``, ``ci-report demo`` and tests.

Endpoints: ``POST /api/jenkins/callback``, ``POST /api/jenkins/callback/test`` (authentication
only, for ``ci-report diagnose``), ``GET /api/executions``, ``GET /api/executions/<runId>``,
``GET /healthz``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..verify import CallbackVerificationError, CallbackVerifier

CALLBACK_PATH = "/api/jenkins/callback"
TEST_PATH = "/api/jenkins/callback/test"
MAX_BODY = 64 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    webhook_id TEXT PRIMARY KEY,
    body_sha256 TEXT NOT NULL,
    status INTEGER NOT NULL,
    response TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
    key TEXT PRIMARY KEY,
    run_id TEXT,
    status TEXT,
    passed INTEGER, failed INTEGER, skipped INTEGER, total INTEGER,
    duration_ms INTEGER,
    job TEXT, build INTEGER,
    webhook_id TEXT,
    modes TEXT,
    payload TEXT NOT NULL,
    updated_at REAL NOT NULL,
    applied_count INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id TEXT, path TEXT, status INTEGER, reason TEXT, at REAL NOT NULL
);
"""


class Store:
    """SQLite storage; one connection guarded by a lock (the server is threaded)."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def log_request(self, webhook_id: Optional[str], path: str, status: int, reason: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO requests (webhook_id, path, status, reason, at) VALUES (?,?,?,?,?)",
                (webhook_id, path, status, reason, time.time()),
            )

    def apply(self, webhook_id: str, body: bytes, modes: list[str]) -> tuple[int, dict[str, Any]]:
        """Apply a verified callback exactly once; return (HTTP status, response body)."""
        digest = hashlib.sha256(body).hexdigest()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute(
                    "SELECT body_sha256, status, response FROM deliveries WHERE webhook_id = ?",
                    (webhook_id,),
                ).fetchone()
                if row is not None:
                    self._conn.execute("COMMIT")
                    if row[0] != digest:
                        return 422, {
                            "error": "webhook-id reused with a different body",
                            "webhookId": webhook_id,
                        }
                    stored = json.loads(row[2])
                    stored["duplicate"] = True
                    return int(row[1]), stored
                try:
                    payload = json.loads(body.decode("utf-8"))
                except (UnicodeDecodeError, ValueError):
                    self._conn.execute("ROLLBACK")
                    return 400, {"error": "body is not UTF-8 JSON"}
                if not isinstance(payload, dict):
                    self._conn.execute("ROLLBACK")
                    return 400, {"error": "body is not a JSON object"}
                build = payload.get("build") or {}
                run_id = payload.get("runId")
                key = (
                    f"run:{run_id}"
                    if run_id is not None
                    else f"build:{build.get('jobName')}#{build.get('buildNumber')}"
                )
                self._conn.execute(
                    """INSERT INTO executions (key, run_id, status, passed, failed, skipped,
                           total, duration_ms, job, build, webhook_id, modes, payload, updated_at)
                       VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                       ON CONFLICT(key) DO UPDATE SET status=excluded.status,
                           passed=excluded.passed, failed=excluded.failed,
                           skipped=excluded.skipped, total=excluded.total,
                           duration_ms=excluded.duration_ms, job=excluded.job,
                           build=excluded.build, webhook_id=excluded.webhook_id,
                           modes=excluded.modes, payload=excluded.payload,
                           updated_at=excluded.updated_at,
                           applied_count=executions.applied_count + 1""",
                    (
                        key,
                        None if run_id is None else str(run_id),
                        payload.get("status"),
                        payload.get("passedCases"),
                        payload.get("failedCases"),
                        payload.get("skippedCases"),
                        payload.get("totalCases"),
                        payload.get("durationMs"),
                        build.get("jobName"),
                        build.get("buildNumber"),
                        webhook_id,
                        ",".join(modes),
                        body.decode("utf-8"),
                        time.time(),
                    ),
                )
                response = {"accepted": True, "webhookId": webhook_id, "execution": key}
                self._conn.execute(
                    "INSERT INTO deliveries VALUES (?,?,?,?,?)",
                    (webhook_id, digest, 200, json.dumps(response), time.time()),
                )
                self._conn.execute("COMMIT")
                return 200, response
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def executions(self) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._conn.execute(
                "SELECT key, run_id, status, passed, failed, skipped, total, duration_ms, job,"
                " build, webhook_id, modes, applied_count, updated_at, payload"
                " FROM executions ORDER BY updated_at"
            )
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, row)) for row in cur.fetchall()]
        for row in rows:
            row["payload"] = json.loads(row["payload"])
        return rows

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._conn.execute(
                "SELECT webhook_id, path, status, reason, at FROM requests ORDER BY id"
            )
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class _Handler(BaseHTTPRequestHandler):
    server: _ReceiverServer
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes; with Nagle on, the body waits for the
    # client's delayed ACK (~40 ms) on every keep-alive request after the first
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.on_log:
            self.server.on_log(format % args)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/healthz":
            self._send(200, {"ok": True})
        elif path == "/api/executions":
            self._send(200, {"executions": self.server.store.executions()})
        elif path.startswith("/api/executions/"):
            wanted = path.rsplit("/", 1)[1]
            for row in self.server.store.executions():
                if str(row["run_id"]) == wanted or row["key"] == wanted:
                    self._send(200, row)
                    return
            self._send(404, {"error": "no such execution"})
        else:
            self._send(404, {"error": "not found", "callbackPath": CALLBACK_PATH})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        length_text = self.headers.get("Content-Length")
        if length_text is None or not (length_text.isascii() and length_text.isdigit()):
            self._send(411, {"error": "Content-Length required"})
            return
        length = int(length_text)
        if length > MAX_BODY:
            self._send(413, {"error": "body too large"})
            self.close_connection = True
            return
        body = self.rfile.read(length)
        if path not in (CALLBACK_PATH, TEST_PATH):
            self._send(404, {"error": "not found", "callbackPath": CALLBACK_PATH})
            return
        webhook_id = self.headers.get("webhook-id")
        try:
            verified = self.server.verifier.verify(body, dict(self.headers.items()))
        except CallbackVerificationError as exc:
            # generic answer for the client, detailed reason in the request log
            self.server.store.log_request(webhook_id, path, 401, exc.reason)
            self._rejected(401, webhook_id, path, exc.reason)
            self._send(401, {"error": "unauthorized", "mode": exc.mode, "reason": exc.reason})
            return
        if path == TEST_PATH:
            self.server.store.log_request(webhook_id, path, 200, "test")
            self._send(200, {"ok": True, "modes": verified.modes})
            return
        status, response = self.server.store.apply(verified.webhook_id, body, verified.modes)
        self.server.store.log_request(webhook_id, path, status, response.get("error", "ok"))
        if self.server.on_apply and status == 200 and not response.get("duplicate"):
            self.server.on_apply(verified)
        if status >= 300:
            self._rejected(status, webhook_id, path, str(response.get("error", "")))
        self._send(status, response)

    def _rejected(self, status: int, webhook_id: Optional[str], path: str, reason: str) -> None:
        if self.server.on_reject:
            self.server.on_reject(status, webhook_id, path, reason)


class _ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        verifier: CallbackVerifier,
        store: Store,
        on_log: Optional[Callable[[str], None]] = None,
        on_apply: Optional[Callable[[Any], None]] = None,
        on_reject: Optional[Callable[[int, Optional[str], str, str], None]] = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.verifier = verifier
        self.store = store
        self.on_log = on_log
        self.on_apply = on_apply
        self.on_reject = on_reject


@dataclass
class ReceiverHandle:
    server: _ReceiverServer
    thread: Optional[threading.Thread]
    store: Store

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        return self.base_url + CALLBACK_PATH

    def executions(self) -> list[dict[str, Any]]:
        return self.store.executions()

    def requests(self) -> list[dict[str, Any]]:
        return self.store.requests()

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)
        self.store.close()


def start_receiver(
    db_path: str | Path = ":memory:",
    *,
    api_keys: Sequence[str] = (),
    jwt_secrets: Sequence[str] = (),
    signature_secrets: Sequence[str] = (),
    jwt_audience: Optional[str] = None,
    host: str = "127.0.0.1",
    port: int = 0,
    background: bool = True,
    on_log: Optional[Callable[[str], None]] = None,
    on_apply: Optional[Callable[[Any], None]] = None,
    on_reject: Optional[Callable[[int, Optional[str], str, str], None]] = None,
    ssl_context: Optional[ssl.SSLContext] = None,
) -> ReceiverHandle:
    """Start the receiver (in a daemon thread unless ``background=False``). ``on_reject``
    gets (status, webhook-id, path, reason) of every refused POST; ``ssl_context`` (a server
    context with its certificate loaded) serves HTTPS."""
    verifier = CallbackVerifier(
        signature_secrets=signature_secrets,
        jwt_secrets=jwt_secrets,
        api_keys=api_keys,
        jwt_audience=jwt_audience,
    )
    store = Store(str(db_path))
    server = _ReceiverServer(
        (host, port), verifier, store, on_log=on_log, on_apply=on_apply, on_reject=on_reject
    )
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    thread = None
    if background:
        # a short poll interval lets stop() return at once
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="ci-report-receiver",
            daemon=True,
        )
        thread.start()
    return ReceiverHandle(server, thread, store)
