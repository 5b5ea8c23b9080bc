"""The reference receiver: what a platform endpoint for ci-report callbacks should do.

Stdlib HTTP server (``platform/server.py``: route table, connection limits, management guard) +
SQLite. Verifies the headers before reading the body (an unauthenticated client never makes it
read more than its headers), the raw body before parsing it, dedupes on ``webhook-id`` (same id
and body -> the stored 2xx again; same id, other body -> 422), and stores executions keyed by
``runId`` (or job + build). Used by ``ci-report receiver``, ``ci-report demo`` and tests.

Endpoints: ``POST /api/jenkins/callback``, ``POST /api/jenkins/callback/test`` (authentication
only, for ``ci-report diagnose``), ``GET /healthz``; management routes (API token, or loopback
only without one): ``GET /api/executions``, ``GET /api/executions/<runId>``, and whatever other
components register with :meth:`ReceiverHandle.add_route`. A refused callback gets a generic
``{"error": "unauthorized"}``; the reason goes to the receiver's own log (``on_reject``).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..verify import CallbackVerificationError, CallbackVerifier, PendingVerification
from .events import Observer, safe
from .server import (
    DEFAULT_MAX_BODY,
    GuardedHTTPServer,
    Handler,
    Limits,
    Request,
    Response,
    Route,
    Router,
)

__all__ = [
    "CALLBACK_PATH",
    "MAX_BODY",
    "TEST_PATH",
    "Limits",
    "ReceiverHandle",
    "Request",
    "Response",
    "Store",
    "start_receiver",
]

CALLBACK_PATH = "/api/jenkins/callback"
TEST_PATH = "/api/jenkins/callback/test"
# a callback body the sender builds with its default caps (10,000 results, 8,000-character
# messages) stays well below this; it is read only after the headers authenticated the sender
MAX_BODY = 32 * 1024 * 1024

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


RejectHook = Callable[[int, Optional[str], str, str], None]


class _Callbacks:
    """The two callback routes: headers verified before the body, body-bound checks after."""

    def __init__(
        self,
        verifier: CallbackVerifier,
        store: Store,
        *,
        observer: Optional[Observer],
        on_apply: Optional[Callable[[Any], None]],
        on_reject: Optional[RejectHook],
    ) -> None:
        self.verifier = verifier
        self.store = store
        self.observer = safe(observer)
        self.on_apply = on_apply
        self.on_reject = on_reject

    def authorize(self, request: Request) -> Optional[Response]:
        try:
            request.state["pending"] = self.verifier.verify_headers(request.headers)
        except CallbackVerificationError as exc:
            return self._unauthorized(request, exc)
        return None

    def refused(self, request: Request, response: Response) -> None:
        """The server refused the body (too large, no Content-Length) after authorize()."""
        reason = str(response.body.get("error")) if isinstance(response.body, dict) else ""
        self._log(request, response.status, reason)
        self.observer.callback_received(
            "rejected", reason="too-large" if response.status == 413 else "body"
        )

    def handle(self, request: Request) -> Response:
        pending: PendingVerification = request.state["pending"]
        try:
            verified = self.verifier.verify_body(pending, request.body)
        except CallbackVerificationError as exc:
            return self._unauthorized(request, exc)
        if request.path == TEST_PATH:
            self.store.log_request(verified.webhook_id, request.path, 200, "test")
            return Response(200, {"ok": True, "modes": verified.modes})
        status, body = self.store.apply(verified.webhook_id, request.body, verified.modes)
        self.store.log_request(verified.webhook_id, request.path, status, body.get("error", "ok"))
        if status >= 300:
            self._rejected(status, verified.webhook_id, request.path, str(body.get("error", "")))
            self.observer.callback_received(
                "rejected", verified.modes, "reused-id" if status == 422 else "body"
            )
        else:
            outcome = str(
                body.get("outcome") or ("duplicate" if body.get("duplicate") else "applied")
            )
            self.observer.callback_received(outcome, verified.modes)
            if self.on_apply and outcome == "applied":
                self.on_apply(verified)
        return Response(status, body)

    def _unauthorized(self, request: Request, exc: CallbackVerificationError) -> Response:
        self._log(request, 401, exc.reason)
        self.observer.callback_received("rejected", reason="auth")
        # generic answer for the client (no clock offset, no enabled modes); the reason is logged
        return Response(401, {"error": "unauthorized"})

    def _log(self, request: Request, status: int, reason: str) -> None:
        webhook_id = _bounded(request.headers.get("webhook-id"))
        self.store.log_request(webhook_id, request.path, status, reason)
        self._rejected(status, webhook_id, request.path, reason)

    def _rejected(self, status: int, webhook_id: Optional[str], path: str, reason: str) -> None:
        if self.on_reject:
            self.on_reject(status, webhook_id, path, reason)


def _bounded(value: Optional[str], limit: int = 256) -> Optional[str]:
    """A header value as it may appear in a log line: at most ``limit`` characters."""
    if value is None:
        return None
    return value if len(value) <= limit else value[:limit] + f"...({len(value)} chars)"


def _executions_routes(store: Store) -> list[Route]:
    def list_all(request: Request) -> Response:
        return Response(200, {"executions": store.executions()})

    def one(request: Request) -> Response:
        if request.path == "/api/executions":
            return list_all(request)
        wanted = request.path.rsplit("/", 1)[1]
        for row in store.executions():
            if str(row["run_id"]) == wanted or row["key"] == wanted:
                return Response(200, row)
        return Response(404, {"error": "no such execution"})

    return [Route("GET", "/api/executions", one, management=True)]


@dataclass
class ReceiverHandle:
    server: GuardedHTTPServer
    thread: Optional[threading.Thread]
    store: Store

    @property
    def base_url(self) -> str:
        host, port = str(self.server.server_address[0]), int(self.server.server_address[1])
        scheme = self.server.scheme
        if ":" in host:
            return f"{scheme}://[{host}]:{port}"
        return f"{scheme}://{host}:{port}"

    @property
    def url(self) -> str:
        return self.base_url + CALLBACK_PATH

    @property
    def csrf_token(self) -> str:
        return self.server.csrf_token

    def add_route(
        self,
        method: str,
        prefix_or_path: str,
        handler: Handler,
        *,
        management: bool,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        """Serve ``handler`` for ``method`` (or ``"*"``) on a path and everything below it.
        Management routes need the API token (or a loopback client without one)."""
        self.server.router.add(
            Route(method.upper(), prefix_or_path, handler, management=management, max_body=max_body)
        )

    def executions(self) -> list[dict[str, Any]]:
        return self.store.executions()

    def requests(self) -> list[dict[str, Any]]:
        return self.store.requests()

    def serve_forever(self) -> None:
        self.server.serve_forever(poll_interval=0.1)

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
    require_modes: Sequence[str] = (),
    api_token: Optional[str] = None,
    host: str = "127.0.0.1",
    port: int = 0,
    background: bool = True,
    max_body: int = MAX_BODY,
    limits: Optional[Limits] = None,
    observer: Optional[Observer] = None,
    on_log: Optional[Callable[[str], None]] = None,
    on_apply: Optional[Callable[[Any], None]] = None,
    on_reject: Optional[RejectHook] = None,
    ssl_context: Optional[ssl.SSLContext] = None,
) -> ReceiverHandle:
    """Start the receiver (in a daemon thread unless ``background=False``). ``on_reject``
    gets (status, webhook-id, path, reason) of every refused POST; ``ssl_context`` (a server
    context with its certificate loaded) serves HTTPS; ``require_modes`` (``"jwt"``,
    ``"hmac"``, ``"api-key"``) must all be presented by every callback; ``api_token`` guards the
    management routes (without one they are served to loopback clients only)."""
    verifier = CallbackVerifier(
        signature_secrets=signature_secrets,
        jwt_secrets=jwt_secrets,
        api_keys=api_keys,
        jwt_audience=jwt_audience,
        require=require_modes,
    )
    store = Store(str(db_path))
    callbacks = _Callbacks(
        verifier, store, observer=observer, on_apply=on_apply, on_reject=on_reject
    )
    router = Router()
    for path in (CALLBACK_PATH, TEST_PATH):
        router.add(
            Route(
                "POST",
                path,
                callbacks.handle,
                management=False,
                max_body=max_body,
                authorize=callbacks.authorize,
                refused=callbacks.refused,
            )
        )
    router.add(Route("GET", "/healthz", lambda r: Response(200, {"ok": True}), management=False))
    for route in _executions_routes(store):
        router.add(route)
    try:
        server = GuardedHTTPServer(
            (host, port), router, limits=limits, api_token=api_token, on_log=on_log
        )
    except BaseException:
        store.close()
        raise
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        server.scheme = "https"
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
