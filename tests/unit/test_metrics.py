"""/metrics: event counters from the Observer hooks, ledger state read at scrape time."""

from __future__ import annotations

from typing import Any, Optional

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ci_report.platform import metrics as metrics_mod
from ci_report.platform.agent_headers import parse_agent_headers
from ci_report.platform.events import MultiObserver
from ci_report.platform.metrics import PlatformMetrics, label


class FakeLedger:
    """The three reads the scrape makes, over a list of (status, age_without_change)."""

    def __init__(self, runs: list[tuple[str, float]]) -> None:
        self.runs = runs
        self.reads = 0
        self.fail = False

    def counts_by_status(self) -> dict[str, int]:
        self.reads += 1
        if self.fail:
            raise RuntimeError("database is locked")
        out: dict[str, int] = {}
        for status, _ in self.runs:
            out[status] = out.get(status, 0) + 1
        return out

    def oldest_open_age_s(self) -> Optional[float]:
        ages = [age for status, age in self.runs if status in ("queued", "running")]
        return max(ages) if ages else None

    def stuck(self, older_than_s: float, limit: Optional[int] = None) -> list[Any]:
        found = [r for r in self.runs if r[0] in ("queued", "running") and r[1] >= older_than_s]
        return found[:limit] if limit else found


def samples(m: PlatformMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(m.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: PlatformMetrics, name: str, **labels: str) -> Optional[float]:
    return samples(m).get((name, tuple(sorted(labels.items()))))


def test_callbacks_are_counted_by_outcome_reason_and_mode() -> None:
    m = PlatformMetrics()
    m.callback_received("applied", ["hmac", "api-key"])
    m.callback_received("applied", ["hmac"])
    m.callback_received("duplicate", ["hmac"])
    m.callback_received("stale", ["jwt"])
    m.callback_received("rejected", (), "auth")
    m.callback_received("rejected", (), "auth")
    m.callback_received("rejected", (), "too-large")
    assert value(m, "ci_report_callbacks_total", outcome="applied", reason="") == 2
    assert value(m, "ci_report_callbacks_total", outcome="duplicate", reason="") == 1
    assert value(m, "ci_report_callbacks_total", outcome="stale", reason="") == 1
    assert value(m, "ci_report_callbacks_total", outcome="rejected", reason="auth") == 2
    assert value(m, "ci_report_callbacks_total", outcome="rejected", reason="too-large") == 1
    assert value(m, "ci_report_callback_auth_modes_total", mode="hmac", outcome="applied") == 2
    assert value(m, "ci_report_callback_auth_modes_total", mode="api-key", outcome="applied") == 1
    assert value(m, "ci_report_callback_auth_modes_total", mode="jwt", outcome="stale") == 1


def test_hostile_label_values_cannot_grow_the_series_count() -> None:
    m = PlatformMetrics()
    for i in range(50):
        m.callback_received(f"weird-{i}", [f"mode-{i}"], None)
        m.callback_received("rejected", (), f"Reason With Spaces {i}\n")
        m.jenkins_error(f"kind{i}")
        m.sync_done(f"src{i}")
    assert value(m, "ci_report_callbacks_total", outcome="other", reason="") == 50
    assert value(m, "ci_report_callback_auth_modes_total", mode="other", outcome="other") == 50
    assert value(m, "ci_report_callbacks_total", outcome="rejected", reason="other") == 50
    assert value(m, "ci_report_jenkins_request_errors_total", kind="other") == 50
    assert value(m, "ci_report_syncs_total", result_source="other") == 50
    assert label("job-missing") == "job-missing"
    assert label("x" * 41) == "other"


def test_reconcile_sync_trigger_and_jenkins_counters() -> None:
    m = PlatformMetrics(clock=lambda: 1_700_000_000.0)
    assert value(m, "ci_report_reconcile_last_pass_timestamp_seconds") == 0
    m.reconcile_pass(0.3, moved=2, errors=0)
    m.reconcile_pass(1.5, moved=0, errors=3)
    m.sync_done("artifact")
    m.sync_done("status-only")
    m.trigger_failed("job-missing")
    m.jenkins_error("unreachable")
    m.run_transition("run-1", "running", "success", "callback")
    assert value(m, "ci_report_reconcile_passes_total") == 2
    assert value(m, "ci_report_reconcile_pass_duration_seconds_count") == 2
    assert value(m, "ci_report_reconcile_pass_duration_seconds_sum") == pytest.approx(1.8)
    assert value(m, "ci_report_reconcile_moved_runs_total") == 2
    assert value(m, "ci_report_reconcile_errors_total") == 3
    assert value(m, "ci_report_reconcile_last_pass_timestamp_seconds") == 1_700_000_000.0
    assert value(m, "ci_report_syncs_total", result_source="artifact") == 1
    assert value(m, "ci_report_syncs_total", result_source="test-report") == 0
    assert value(m, "ci_report_trigger_failures_total", code="job-missing") == 1
    assert value(m, "ci_report_jenkins_request_errors_total", kind="unreachable") == 1
    assert value(m, "ci_report_jenkins_request_errors_total", kind="timeout") == 0
    assert value(m, "ci_report_run_transitions_total", status="success") == 1
    # no run id ever becomes a label
    assert "run-1" not in m.render().decode()


def test_ledger_state_is_read_at_scrape_time() -> None:
    ledger = FakeLedger([("running", 4000.0), ("queued", 10.0), ("success", 0.0)])
    m = PlatformMetrics(ledger, stuck_after_s=1800)
    assert value(m, "ci_report_ledger_up") == 1
    assert value(m, "ci_report_runs", status="running") == 1
    assert value(m, "ci_report_runs", status="success") == 1
    assert value(m, "ci_report_runs", status="expired") == 0
    assert value(m, "ci_report_open_runs") == 2
    assert value(m, "ci_report_oldest_open_run_age_seconds") == 4000
    assert value(m, "ci_report_stuck_runs") == 1
    assert value(m, "ci_report_stuck_after_seconds") == 1800
    # another replica closed the run: the next scrape shows it, no event reached this process
    ledger.runs[0] = ("success", 0.0)
    assert value(m, "ci_report_open_runs") == 1
    assert value(m, "ci_report_stuck_runs") == 0
    assert value(m, "ci_report_runs", status="success") == 2


def test_a_failing_ledger_read_is_reported_not_raised() -> None:
    ledger = FakeLedger([("running", 1.0)])
    ledger.fail = True
    m = PlatformMetrics(ledger)
    m.callback_received("applied", ["hmac"])
    got = samples(m)
    assert got[("ci_report_ledger_up", ())] == 0
    assert ("ci_report_open_runs", ()) not in got
    assert got[("ci_report_callbacks_total", (("outcome", "applied"), ("reason", "")))] == 1


def test_without_a_ledger_only_event_metrics() -> None:
    m = PlatformMetrics()
    got = samples(m)
    assert ("ci_report_ledger_up", ()) not in got
    assert ("ci_report_open_runs", ()) not in got
    m.attach_ledger(FakeLedger([]))
    assert value(m, "ci_report_open_runs") == 0
    assert value(m, "ci_report_oldest_open_run_age_seconds") == 0


def test_agent_headers_feed_delay_and_backlog() -> None:
    m = PlatformMetrics()
    obs = MultiObserver(m)
    now = 1_700_000_000.0
    for headers in (
        {
            "CI-Report-Attempt": "1",
            "CI-Report-First-Attempt": str(now),
            "ci-report-outbox-backlog": "0",
        },
        {
            "ci-report-attempt": "4",
            "CI-Report-First-Attempt": str(now - 600),
            "CI-Report-Outbox-Backlog": "37",
        },
    ):
        report = parse_agent_headers(headers, now=now)
        obs.agent_report(report.attempt, report.first_attempt_age_s, report.backlog)
    assert obs.listener_errors == 0
    assert value(m, "ci_report_callbacks_delayed_total") == 1
    assert value(m, "ci_report_callback_attempts_count") == 2
    assert value(m, "ci_report_callback_delivery_delay_seconds_sum") == 600
    assert value(m, "ci_report_callback_delivery_delay_seconds_bucket", le="300.0") == 1
    assert value(m, "ci_report_agent_outbox_backlog_bucket", le="25.0") == 1
    assert value(m, "ci_report_agent_outbox_backlog_bucket", le="50.0") == 2
    assert value(m, "ci_report_agent_outbox_backlog_sum") == 37


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"CI-Report-Attempt": "0", "CI-Report-Outbox-Backlog": "-1"},
        {"CI-Report-Attempt": "9" * 5000, "CI-Report-Outbox-Backlog": "1e9"},
        {"CI-Report-Attempt": " ", "CI-Report-First-Attempt": "nan"},
        {"CI-Report-First-Attempt": "inf", "CI-Report-Outbox-Backlog": "٣"},
        {"CI-Report-First-Attempt": "1" * 40},
        {"CI-Report-First-Attempt": "99999999999"},  # far in the future
        {"CI-Report-First-Attempt": "1.2.3", "CI-Report-Attempt": "+3"},
    ],
)
def test_garbage_agent_headers_are_ignored(headers: dict[str, str]) -> None:
    report = parse_agent_headers(headers, now=1_700_000_000.0)
    assert report.empty, report


def test_agent_headers_within_bounds_are_read() -> None:
    report = parse_agent_headers(
        {
            "CI-Report-Attempt": " 3 ",
            "CI-Report-First-Attempt": "1699999990.5",
            "CI-Report-Outbox-Backlog": "12",
        },
        now=1_700_000_000.0,
    )
    assert report.attempt == 3
    assert report.first_attempt_age_s == pytest.approx(9.5)
    assert report.backlog == 12


def test_without_prometheus_client_metrics_answer_503(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_mod, "_prom", None)
    assert not metrics_mod.metrics_available()
    with pytest.raises(metrics_mod.MetricsUnavailable, match=r"ci-report\[metrics\]"):
        PlatformMetrics()
    status, body, ctype = metrics_mod.metrics_unavailable_response()
    assert status == 503
    assert b"prometheus_client is not installed" in body
    assert ctype.startswith("text/plain")
