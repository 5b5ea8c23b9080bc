"""What the receiver serves for people and Prometheus: ``GET /metrics``, the executions page at
``/`` and ``/runs/<runId>`` (with its "Sync now" form), all management routes.

:func:`setup_watch` runs before the ledger and the reconciler exist (they must report to the same
metrics observer); :meth:`Watch.attach` gives it the ledger and the sync operation once they do;
:meth:`Watch.routes` are the routes to add to the receiver's route table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import quote

from .events import MultiObserver, Observer
from .metrics import (
    DEFAULT_STUCK_AFTER_S,
    UNAVAILABLE_MESSAGE,
    MetricsUnavailable,
    PlatformMetrics,
    metrics_unavailable_response,
)
from .page import ExecutionsPage, PageLedger, SyncFn
from .server import Request, Response, Route

METRICS_PATH = "/metrics"
PAGE_PATH = "/"
RUNS_PATH = "/runs"


def find_metrics(observer: Optional[Observer]) -> Optional[PlatformMetrics]:
    """The PlatformMetrics in ``observer`` (itself, or one a MultiObserver fans out to)."""
    if isinstance(observer, PlatformMetrics):
        return observer
    if isinstance(observer, MultiObserver):
        for inner in observer.observers:
            found = find_metrics(inner)
            if found is not None:
                return found
    return None


@dataclass
class Watch:
    metrics: Optional[PlatformMetrics]
    observer: Observer
    stuck_after_s: float = DEFAULT_STUCK_AFTER_S
    token_protected: bool = False
    page: Optional[ExecutionsPage] = None
    notes: list[str] = field(default_factory=list)  # what the receiver says when it starts
    # keys the page's Sync now tokens; derived from the API token, so replicas behind one address
    # accept each other's forms (None: a random per-process key)
    page_secret: Optional[bytes] = field(default=None, repr=False)

    def attach(self, ledger: Optional[PageLedger], sync: Optional[SyncFn] = None) -> None:
        """Read runs from ``ledger`` (page and ledger gauges); ``sync`` runs "Sync now"."""
        if self.metrics is not None:
            self.metrics.attach_ledger(ledger)  # type: ignore[arg-type]
        self.page = (
            None
            if ledger is None
            else ExecutionsPage(
                ledger,
                sync=sync,
                stuck_after_s=self.stuck_after_s,
                token_protected=self.token_protected,
                secret=self.page_secret,
            )
        )

    def routes(self) -> list[Route]:
        return [
            Route("GET", METRICS_PATH, self._metrics, management=True),
            Route("GET", PAGE_PATH, self._page, management=True),
            Route("*", RUNS_PATH, self._page, management=True, max_body=16 * 1024),
        ]

    def _metrics(self, request: Request) -> Response:
        if self.metrics is None:
            status, body, ctype = metrics_unavailable_response()
        else:
            status, body, ctype = self.metrics.response()
        return Response(status, body, ctype, {"Cache-Control": "no-store"})

    def _page(self, request: Request) -> Response:
        if self.page is None:
            return Response(
                503,
                b"The executions page needs the run ledger; this receiver has none.\n",
                "text/plain; charset=utf-8",
            )
        answer = self.page.handle(
            request.method,
            request.path,
            request.query,
            request.headers,
            request.body,
            server_csrf=request.csrf_token,
        )
        return Response(answer.status, answer.body, answer.content_type, answer.headers)


def setup_watch(
    observer: Optional[Observer] = None,
    *,
    api_token: Optional[str] = None,
    stuck_after_s: float = DEFAULT_STUCK_AFTER_S,
    metrics: bool = True,
) -> Watch:
    """Find or create the metrics observer (None without prometheus_client, said in ``notes``)
    and return the Watch whose ``observer`` every platform component should report to."""
    found = find_metrics(observer)
    notes: list[str] = []
    if found is None and metrics:
        try:
            found = PlatformMetrics(stuck_after_s=stuck_after_s)
        except MetricsUnavailable:
            notes.append(f"GET /metrics answers 503: {UNAVAILABLE_MESSAGE}")
    if found is not None:
        found.stuck_after_s = float(stuck_after_s)
    combined: Observer
    if found is not None and found is not observer:
        combined = MultiObserver(found, observer)
    else:
        combined = observer if observer is not None else Observer()
    return Watch(
        metrics=found,
        observer=combined,
        stuck_after_s=float(stuck_after_s),
        token_protected=bool(api_token),
        notes=notes,
        page_secret=(
            hashlib.sha256(b"ci-report page sync token\0" + api_token.encode()).digest()
            if api_token
            else None
        ),
    )


def api_sync(api: Any) -> Callable[[str], tuple[int, dict[str, Any]]]:
    """Sync now through the ExecutionsAPI: ``POST /api/executions/<runId>/sync``."""

    def sync(run_id: str) -> tuple[int, dict[str, Any]]:
        status, body = api.handle("POST", f"/api/executions/{quote(run_id, safe='')}/sync", {}, b"")
        return int(status), dict(body)

    return sync
