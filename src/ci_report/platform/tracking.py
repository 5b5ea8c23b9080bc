"""Run tracking assembled from the settings: ledger + reconciler + ``/api/executions``.

``open_tracking(settings)`` is what the receiver and ``ci-report reconcile`` call: the ledger
from ``ledger_db`` (``--db``, ``CI_REPORT_DB``), and, when a Jenkins URL is configured, a
reconciler and a trigger for ``POST /api/executions``. Without Jenkins the ledger still stores
callbacks, and :attr:`Tracking.untracked_reason` says why runs are not followed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from ..console import Console, get_console
from .events import Observer
from .executions_api import ExecutionsAPI
from .reconcile import Reconciler
from .runs import Ledger, Run, open_ledger, trigger_run

if TYPE_CHECKING:
    from ..config import Settings
    from .jenkins import JenkinsClient


@dataclass
class Tracking:
    ledger: Ledger
    reconciler: Optional[Reconciler]
    api: ExecutionsAPI
    untracked_reason: Optional[str] = None

    def start(self, interval_s: float) -> None:
        if self.reconciler is not None:
            self.reconciler.start(interval_s)

    def close(self) -> None:
        if self.reconciler is not None:
            self.reconciler.stop()
        self.ledger.close()


def open_tracking(
    settings: Settings,
    *,
    db: Optional[str] = None,
    console: Optional[Console] = None,
    observer: Optional[Observer] = None,
    concurrency: int = 8,
    abort_on_timeout: bool = False,
    owner: Optional[str] = None,
    lost_grace: Optional[float] = None,
) -> Tracking:
    console = console or get_console()
    where = db or settings.ledger_db or ":memory:"
    ledger = open_ledger(where, console=console, observer=observer)
    if not settings.jenkins_url:
        api = ExecutionsAPI(ledger)
        return Tracking(
            ledger,
            None,
            api,
            untracked_reason="no Jenkins URL (--jenkins-url or JENKINS_URL): callbacks are "
            "stored, but runs are not tracked, triggered or reconciled",
        )
    from .jenkins import JenkinsClient

    console.add_secret(settings.jenkins_token)

    def client_factory() -> JenkinsClient:
        return JenkinsClient.from_settings(settings)

    reconciler = Reconciler(
        ledger,
        client_factory,
        callback_grace=settings.callback_grace,
        build_timeout=settings.run_build_timeout,
        expire_after=settings.expire_after,
        abort_on_timeout=abort_on_timeout,
        concurrency=concurrency,
        settings=settings,
        console=console,
        observer=observer,
        owner=owner,
        lost_grace=lost_grace,
    )

    def trigger(job: str, parameters: dict[str, Any], run_id: Optional[str]) -> Run:
        client = client_factory()  # one per request: a session is not shared across threads
        try:
            return trigger_run(
                ledger,
                client,
                job,
                parameters,
                run_id,
                console=console,
                observer=observer,
                poll_interval=0.5,
                post_attempts=3,
            )
        finally:
            client.close()

    api = ExecutionsAPI(ledger, reconciler, trigger)
    return Tracking(ledger, reconciler, api)
