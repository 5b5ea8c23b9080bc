"""The page and /metrics over the real SQLite run ledger (ci_report.platform.runs)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ci_report.console import Console
from ci_report.platform.events import MultiObserver
from ci_report.platform.metrics import PlatformMetrics
from ci_report.platform.page import ExecutionsPage
from ci_report.platform.runs import open_ledger

HOST = {"Host": "127.0.0.1:1"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _gauges(m: PlatformMetrics) -> dict[str, float]:
    out = {}
    for family in text_string_to_metric_families(m.render().decode()):
        for s in family.samples:
            key = s.name + "".join(f"{{{k}={v}}}" for k, v in sorted(s.labels.items()))
            out[key] = s.value
    return out


def test_a_stuck_run_shows_on_the_page_and_in_metrics(tmp_path: Path) -> None:
    clock = Clock()
    metrics = PlatformMetrics(stuck_after_s=600)
    console = Console(stream=open(tmp_path / "console.log", "w"))  # noqa: SIM115
    ledger = open_ledger(
        str(tmp_path / "runs.sqlite3"), clock=clock, console=console, observer=metrics
    )
    metrics.attach_ledger(ledger)
    try:
        stuck = ledger.create("team/app/main", {"VERSION": "1"}, run_id="run-1")
        ledger.update("run-1", reason="build #5 started", status="running", build_number=5)
        clock.now += 3600
        ledger.create("team/app/main", {}, run_id="run-2")
        page = ExecutionsPage(ledger, stuck_after_s=600, clock=clock)

        html = page.handle("GET", "/", {}, HOST).body.decode()
        row = html.split("<code>run-1</code>", 1)[1].split("</tr>", 1)[0]
        assert "STUCK" in row and "#5" in row
        assert "STUCK" not in html.split("<code>run-2</code>", 1)[1].split("</tr>", 1)[0]
        detail = page.handle("GET", "/runs/run-1", {}, HOST).body.decode()
        assert "build #5 started" in detail and "recorded; trigger pending" in detail

        got = _gauges(metrics)
        assert got["ci_report_open_runs"] == 2
        assert got["ci_report_stuck_runs"] == 1
        assert got["ci_report_oldest_open_run_age_seconds"] == 3600
        assert got["ci_report_runs{status=running}"] == 1
        assert got["ci_report_run_transitions_total{status=running}"] == 1

        # closed elsewhere (another replica, the reconciler): the next scrape and page agree
        ledger.update(stuck.run_id, reason="synced", status="success", result_source="artifact")
        got = _gauges(metrics)
        assert got["ci_report_stuck_runs"] == 0 and got["ci_report_open_runs"] == 1
        assert 'class="stuck-flag"' not in page.handle("GET", "/", {}, HOST).body.decode()
        assert isinstance(ledger.observer, MultiObserver) and ledger.observer.listener_errors == 0
    finally:
        ledger.close()
        console.stream.close()
