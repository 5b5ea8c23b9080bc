"""``GET /metrics``: the platform side in the Prometheus text format.

Two kinds of figures:

- **events** (callbacks received, reconcile passes, syncs, trigger failures, Jenkins errors, what
  agents report in their backlog headers) are counted in this process by :class:`PlatformMetrics`,
  an :class:`~ci_report.platform.events.Observer`. Several replicas each count their own share:
  ``sum()`` them in PromQL.
- **state** (runs by status, open runs, the oldest open run, stuck runs) is read from the ledger at
  scrape time, so every replica on one PostgreSQL ledger reports the same figures: ``max()`` them.

Uses the well-kept ``prometheus_client`` (the ``metrics`` extra). Without it this module still
imports; :func:`metrics_available` says so and :func:`metrics_unavailable_response` is the 503 the
receiver serves instead. Labels never hold run ids; every label value is folded into a small known
set (or a short slug) so a hostile client cannot grow the series count.
"""

from __future__ import annotations

import re
import threading
import time
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional, Protocol, Sequence

from .events import Observer
from .runs import OPEN_STATUSES, RESULT_SOURCES, RUN_STATUSES

try:  # optional extra: ci-report[metrics]
    import prometheus_client as _prom
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector
except ImportError:  # pragma: no cover - exercised by monkeypatching _prom in the tests
    _prom = None  # type: ignore[assignment]
    GaugeMetricFamily = None  # type: ignore[assignment,misc]
    Collector = object  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

INSTALL_HINT = "pip install 'ci-report[metrics]'"
UNAVAILABLE_MESSAGE = (
    "metrics are off: the Python package prometheus_client is not installed; "
    f"install it with: {INSTALL_HINT}"
)
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

CALLBACK_OUTCOMES = ("applied", "duplicate", "stale", "rejected")
AUTH_MODES = ("api-key", "jwt", "hmac")
JENKINS_ERROR_KINDS = ("unreachable", "timeout", "auth", "http-5xx", "http-4xx", "invalid")
OTHER = "other"
# stuck runs are counted up to this many (one bounded read per scrape)
STUCK_COUNT_CAP = 10_000
DEFAULT_STUCK_AFTER_S = 1800.0

_SLUG = re.compile(r"[a-z0-9][a-z0-9_.-]{0,39}")

ATTEMPT_BUCKETS = (1, 2, 3, 5, 10, 20, 50)
DELAY_BUCKETS = (1, 5, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
BACKLOG_BUCKETS = (0, 1, 2, 5, 10, 25, 50, 100, 250, 1000)
PASS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class LedgerReader(Protocol):
    """The part of ``ci_report.platform.runs.Ledger`` that the scrape reads."""

    def counts_by_status(self) -> dict[str, int]: ...

    def oldest_open_age_s(self) -> Optional[float]: ...

    def stuck(self, older_than_s: float, limit: Optional[int] = None) -> list[Any]: ...


def metrics_available() -> bool:
    """True when prometheus_client is installed."""
    return _prom is not None


def metrics_unavailable_response() -> tuple[int, bytes, str]:
    """The answer to ``GET /metrics`` without prometheus_client: 503 and what to install."""
    return 503, (UNAVAILABLE_MESSAGE + "\n").encode(), "text/plain; charset=utf-8"


def label(value: Optional[str], known: Sequence[str] = ()) -> str:
    """A bounded label value: one of ``known`` if given, else a short lowercase slug, else other."""
    text = (value or "").strip().lower()
    if known:
        return text if text in known else OTHER
    return text if _SLUG.fullmatch(text) else OTHER


class MetricsUnavailable(RuntimeError):
    """prometheus_client is not installed."""


class PlatformMetrics(Observer):
    """Counts the platform's events and reads the ledger's state at scrape time.

    ``ledger`` may be None (a receiver without a ledger: only the event metrics), or set later with
    :meth:`attach_ledger`. ``stuck_after_s`` is how long an open run may go without a change before
    it counts as stuck (the same threshold the executions page marks)."""

    def __init__(
        self,
        ledger: Optional[LedgerReader] = None,
        *,
        stuck_after_s: float = DEFAULT_STUCK_AFTER_S,
        clock: Any = time.time,
    ) -> None:
        if _prom is None:
            raise MetricsUnavailable(UNAVAILABLE_MESSAGE)
        self.stuck_after_s = float(stuck_after_s)
        self._clock = clock
        self.registry = _prom.CollectorRegistry(auto_describe=True)
        reg = self.registry
        c, h, g = _prom.Counter, _prom.Histogram, _prom.Gauge
        self.callbacks = c(
            "ci_report_callbacks",
            "Callback POSTs by outcome (applied, duplicate, stale, rejected) and rejection reason.",
            ["outcome", "reason"],
            registry=reg,
        )
        self.callback_modes = c(
            "ci_report_callback_auth_modes",
            "Verified auth modes of accepted callbacks (one count per mode a callback passed).",
            ["mode", "outcome"],
            registry=reg,
        )
        self.callback_attempts = h(
            "ci_report_callback_attempts",
            "Delivery attempt number agents report (CI-Report-Attempt) on accepted callbacks.",
            buckets=ATTEMPT_BUCKETS,
            registry=reg,
        )
        self.callbacks_delayed = c(
            "ci_report_callbacks_delayed",
            "Accepted callbacks that took more than one attempt (CI-Report-Attempt > 1).",
            registry=reg,
        )
        self.callback_delay = h(
            "ci_report_callback_delivery_delay_seconds",
            "Time from an agent's first attempt (CI-Report-First-Attempt) to acceptance.",
            buckets=DELAY_BUCKETS,
            registry=reg,
        )
        self.agent_backlog = h(
            "ci_report_agent_outbox_backlog",
            "Older callbacks the sending agent still holds (CI-Report-Outbox-Backlog).",
            buckets=BACKLOG_BUCKETS,
            registry=reg,
        )
        self.transitions = c(
            "ci_report_run_transitions",
            "Run status changes recorded by this process, by new status.",
            ["status"],
            registry=reg,
        )
        self.passes = c("ci_report_reconcile_passes", "Reconcile passes finished.", registry=reg)
        self.pass_duration = h(
            "ci_report_reconcile_pass_duration_seconds",
            "Duration of reconcile passes.",
            buckets=PASS_BUCKETS,
            registry=reg,
        )
        self.pass_errors = c(
            "ci_report_reconcile_errors",
            "Errors met by reconcile passes (a run that could not be checked).",
            registry=reg,
        )
        self.pass_moved = c(
            "ci_report_reconcile_moved_runs",
            "Runs a reconcile pass moved to another status.",
            registry=reg,
        )
        self.last_pass = g(
            "ci_report_reconcile_last_pass_timestamp_seconds",
            "Unix time the last reconcile pass of this process finished (0: none yet).",
            registry=reg,
        )
        self.syncs = c(
            "ci_report_syncs",
            "Runs closed from Jenkins by the reconciler, by where the result came from.",
            ["result_source"],
            registry=reg,
        )
        self.trigger_failures = c(
            "ci_report_trigger_failures",
            "Triggers that failed before a queue item existed, by stable code.",
            ["code"],
            registry=reg,
        )
        self.jenkins_errors = c(
            "ci_report_jenkins_request_errors",
            "Requests to Jenkins that failed, by kind.",
            ["kind"],
            registry=reg,
        )
        self._zero_known_series()
        self._ledger_lock = threading.Lock()
        self._ledger: Optional[LedgerReader] = ledger
        reg.register(_LedgerCollector(self))

    def _zero_known_series(self) -> None:
        # a series that exists from the start makes rate() and absent() rules work on day one
        for outcome in ("applied", "duplicate", "stale"):
            self.callbacks.labels(outcome, "")
        for source in RESULT_SOURCES[1:]:
            self.syncs.labels(source)
        for kind in JENKINS_ERROR_KINDS:
            self.jenkins_errors.labels(kind)

    def attach_ledger(self, ledger: Optional[LedgerReader]) -> None:
        with self._ledger_lock:
            self._ledger = ledger

    @property
    def ledger(self) -> Optional[LedgerReader]:
        with self._ledger_lock:
            return self._ledger

    # ---- Observer hooks -------------------------------------------------------------------
    def callback_received(
        self, outcome: str, modes: Sequence[str] = (), reason: Optional[str] = None
    ) -> None:
        out = label(outcome, CALLBACK_OUTCOMES)
        self.callbacks.labels(out, label(reason) if out == "rejected" else "").inc()
        if out != "rejected":
            for mode in sorted({label(m, AUTH_MODES) for m in modes}):
                self.callback_modes.labels(mode, out).inc()

    def agent_report(
        self,
        attempt: Optional[int] = None,
        first_attempt_age_s: Optional[float] = None,
        backlog: Optional[int] = None,
    ) -> None:
        if attempt is not None and attempt >= 1:
            self.callback_attempts.observe(attempt)
            if attempt > 1:
                self.callbacks_delayed.inc()
        if first_attempt_age_s is not None and first_attempt_age_s >= 0:
            self.callback_delay.observe(first_attempt_age_s)
        if backlog is not None and backlog >= 0:
            self.agent_backlog.observe(backlog)

    def run_transition(self, run_id: str, old: Optional[str], new: str, reason: str) -> None:
        self.transitions.labels(label(new, RUN_STATUSES)).inc()

    def reconcile_pass(self, duration_s: float, moved: int, errors: int) -> None:
        self.passes.inc()
        self.pass_duration.observe(max(0.0, duration_s))
        if moved > 0:
            self.pass_moved.inc(moved)
        if errors > 0:
            self.pass_errors.inc(errors)
        self.last_pass.set(self._clock())

    def sync_done(self, result_source: str) -> None:
        self.syncs.labels(label(result_source, RESULT_SOURCES)).inc()

    def trigger_failed(self, code: str) -> None:
        self.trigger_failures.labels(label(code)).inc()

    def jenkins_error(self, kind: str) -> None:
        self.jenkins_errors.labels(label(kind, JENKINS_ERROR_KINDS)).inc()

    # ---- exposition -----------------------------------------------------------------------
    def render(self) -> bytes:
        """The registry in the Prometheus text format (ledger figures read now)."""
        assert _prom is not None
        return bytes(_prom.generate_latest(self.registry))

    def response(self) -> tuple[int, bytes, str]:
        """(status, body, content type) for ``GET /metrics``."""
        return 200, self.render(), TEXT_CONTENT_TYPE


class _LedgerCollector(Collector):
    """Reads the ledger at every scrape; a failing read is reported, never raised."""

    def __init__(self, owner: PlatformMetrics) -> None:
        self._owner = owner

    def describe(self) -> Iterable[Metric]:
        return []  # names are only known at collect time; no duplicate-name check needed

    def collect(self) -> Iterator[Metric]:
        owner = self._owner
        ledger = owner.ledger
        up = GaugeMetricFamily(
            "ci_report_ledger_up",
            "1 when the last scrape read the run ledger, 0 when the read failed.",
        )
        if ledger is None:
            return
        started = time.monotonic()
        try:
            counts = dict(ledger.counts_by_status())
            oldest = ledger.oldest_open_age_s()
            stuck = len(ledger.stuck(owner.stuck_after_s, limit=STUCK_COUNT_CAP))
        except Exception:  # a broken database must not break /metrics
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        runs = GaugeMetricFamily(
            "ci_report_runs",
            "Runs in the ledger by status (every replica reads the same).",
            labels=["status"],
        )
        other = 0
        for status in RUN_STATUSES:
            runs.add_metric([status], float(counts.pop(status, 0)))
        other = sum(int(v) for v in counts.values())
        if other:
            runs.add_metric([OTHER], float(other))
        yield runs
        open_runs = sum(v.value for v in runs.samples if v.labels.get("status") in OPEN_STATUSES)
        yield GaugeMetricFamily(
            "ci_report_open_runs", "Runs still queued or running.", value=float(open_runs)
        )
        yield GaugeMetricFamily(
            "ci_report_oldest_open_run_age_seconds",
            "Age of the oldest queued or running run (0 when none is open).",
            value=float(oldest or 0.0),
        )
        yield GaugeMetricFamily(
            "ci_report_stuck_runs",
            f"Open runs without any change for ci_report_stuck_after_seconds (counted up to "
            f"{STUCK_COUNT_CAP}).",
            value=float(stuck),
        )
        yield GaugeMetricFamily(
            "ci_report_stuck_after_seconds",
            "The threshold after which an open run without change counts as stuck.",
            value=owner.stuck_after_s,
        )
        yield GaugeMetricFamily(
            "ci_report_ledger_read_seconds",
            "How long this scrape took to read the ledger.",
            value=time.monotonic() - started,
        )
