"""The reference receiver: what a platform endpoint for ci-report callbacks should do.

Stdlib HTTP server (``platform/server.py``: route table, connection limits, management guard) + the
run ledger (``platform/runs.py``: SQLite, or PostgreSQL shared by replicas). Verifies the headers
before reading the body (an unauthenticated client never makes it read more than its headers), the
raw body before parsing it, dedupes on ``webhook-id`` (same id and body -> the stored 2xx again;
same id, other body -> 422), and stores executions keyed by ``runId`` (or job + build). Used by
``ci-report receiver``, ``ci-report demo`` and tests.

Endpoints: ``POST /api/jenkins/callback``, ``POST /api/jenkins/callback/test`` (authentication
only, for ``ci-report diagnose``), ``GET /healthz``; management routes (API token, or loopback only
without one): ``/api/executions*`` (``platform/executions_api.py``: list, one run with its history,
stuck, trigger, sync, sync-stuck), and whatever other components register with
:meth:`ReceiverHandle.add_route`. A refused callback gets a generic ``{"error": "unauthorized"}``;
the reason goes to the receiver's own log (``on_reject``).
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from ..verify import CallbackVerificationError, CallbackVerifier, PendingVerification
from ..wire import CALLBACK_PATH, TEST_PATH
from .agent_headers import parse_agent_headers
from .events import Observer, safe
from .executions_api import PREFIX as EXECUTIONS_PREFIX
from .executions_api import ExecutionsAPI
from .metrics import DEFAULT_STUCK_AFTER_S
from .runs import Ledger, open_ledger
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
from .watch import Watch, api_sync, setup_watch

if TYPE_CHECKING:
    from ..config import Settings
    from .reconcile import Reconciler
    from .tracking import Tracking

__all__ = [
    "CALLBACK_PATH",
    "MAX_BODY",
    "TEST_PATH",
    "Limits",
    "ReceiverHandle",
    "Request",
    "Response",
    "auth_from_settings",
    "start_receiver",
]

# a callback body the sender builds with its default caps (10,000 results, 8,000-character
# messages) stays well below this; it is read only after the headers authenticated the sender
MAX_BODY = 32_000_000

RejectHook = Callable[[int, Optional[str], str, str], None]


def auth_from_settings(settings: Settings) -> dict[str, Any]:
    """The verifier's keyword arguments of :func:`start_receiver`, read through ``Settings``: the
    same parser as the sender's, so a secret the sender signs with is the one accepted here
    (several ``whsec_`` secrets separated by spaces are all accepted; a raw secret stays whole,
    spaces included)."""
    return {
        "api_keys": [settings.api_key] if settings.api_key else [],
        "jwt_secrets": [settings.jwt_secret] if settings.jwt_secret else [],
        "signature_secrets": settings.signature_secrets,
        "jwt_audience": settings.jwt_audience,
        "jwt_issuer": settings.jwt_issuer,
        "require_modes": list(settings.require),
    }


class _Callbacks:
    """The two callback routes: headers verified before the body, body-bound checks after."""

    def __init__(
        self,
        verifier: CallbackVerifier,
        store: Ledger,
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
        status, body = self.store.apply_callback(verified.webhook_id, request.body, verified.modes)
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
            report = parse_agent_headers(request.headers)  # backlog headers, outside the body
            if not report.empty:
                self.observer.agent_report(
                    report.attempt, report.first_attempt_age_s, report.backlog
                )
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


def _executions_routes(api: ExecutionsAPI) -> list[Route]:
    """``/api/executions*`` (the run ledger's API); a runId the ledger has never seen falls
    back to the stored callback record of that run (what the receiver showed before runs were
    tracked)."""

    def handle(request: Request) -> Response:
        status, body = api.handle(request.method, request.path, request.query, request.body)
        if status == 404 and request.method == "GET" and request.path.count("/") == 3:
            wanted = request.path.rsplit("/", 1)[1]
            for row in api.ledger.callbacks():
                if str(row["run_id"]) == wanted or row["key"] == wanted:
                    return Response(200, row)
        return Response(status, body)

    return [
        Route("GET", EXECUTIONS_PREFIX, handle, management=True),
        Route("POST", EXECUTIONS_PREFIX, handle, management=True, max_body=1024 * 1024),
    ]


@dataclass
class ReceiverHandle:
    server: GuardedHTTPServer
    thread: Optional[threading.Thread]
    store: Ledger  # the run ledger: callbacks, dedupe, request log, runs
    owns_store: bool = True
    reconciler: Optional[Reconciler] = None
    watch: Optional[Watch] = None  # /metrics, the executions page

    @property
    def ledger(self) -> Ledger:
        return self.store

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
        """The stored callback records (one per runId, or job + build)."""
        return self.store.callbacks()

    def requests(self) -> list[dict[str, Any]]:
        return self.store.requests()

    def serve_forever(self) -> None:
        self.server.serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)
        if self.owns_store:
            self.store.close()


def start_receiver(
    db_path: str | Path = ":memory:",
    *,
    api_keys: Sequence[str] = (),
    jwt_secrets: Sequence[str] = (),
    signature_secrets: Sequence[str] = (),
    jwt_audience: Optional[str] = None,
    jwt_issuer: Optional[str] = "ci-report",
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
    ledger: Optional[Ledger] = None,
    reconciler: Optional[Reconciler] = None,
    tracking: Optional[Tracking] = None,
    stuck_after_s: float = DEFAULT_STUCK_AFTER_S,
) -> ReceiverHandle:
    """Start the receiver (in a daemon thread unless ``background=False``). ``on_reject``
    gets (status, webhook-id, path, reason) of every refused POST; ``ssl_context`` (a server
    context with its certificate loaded) serves HTTPS; ``require_modes`` (``"jwt"``,
    ``"hmac"``, ``"api-key"``) must all be presented by every callback; ``api_token`` guards the
    management routes (without one they are served to loopback clients only).

    Storage is the run ledger: ``tracking`` (from ``platform.tracking.open_tracking``: ledger,
    reconciler and the trigger behind ``POST /api/executions``), or ``ledger`` (+ optional
    ``reconciler``), else a SQLite ledger at ``db_path`` that the handle owns and closes.
    Starting the reconciler's passes is the caller's (``tracking.start(interval)``).

    ``GET /metrics`` and the executions page (``/``, ``/runs/<runId>``) are served from
    ``platform/watch.py``: pass the same ``observer`` to the ledger and reconciler you give
    (``setup_watch(...).observer``) so their events are counted; without a PlatformMetrics in
    ``observer`` one is made here (when prometheus_client is installed)."""
    watch = setup_watch(observer, api_token=api_token, stuck_after_s=stuck_after_s)
    observer = watch.observer
    verifier = CallbackVerifier(
        signature_secrets=signature_secrets,
        jwt_secrets=jwt_secrets,
        api_keys=api_keys,
        jwt_audience=jwt_audience,
        jwt_issuer=jwt_issuer,
        require=require_modes,
    )
    owns = tracking is None and ledger is None
    if tracking is not None:
        store, reconciler, api = tracking.ledger, tracking.reconciler, tracking.api
    else:
        store = ledger if ledger is not None else open_ledger(str(db_path), observer=observer)
        api = ExecutionsAPI(store, reconciler)
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
    for route in _executions_routes(api):
        router.add(route)
    watch.attach(store, api_sync(api))
    for route in watch.routes():
        router.add(route)
    try:
        server = GuardedHTTPServer(
            (host, port), router, limits=limits, api_token=api_token, on_log=on_log
        )
    except BaseException:
        if owns:
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
    return ReceiverHandle(
        server, thread, store, owns_store=owns, reconciler=reconciler, watch=watch
    )
