"""The receiver serves /metrics and the executions page; callbacks and their agent headers are
counted; /metrics is a management route; without prometheus_client it answers 503."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from fault_server import WHSEC, Cli
from prometheus_client.parser import text_string_to_metric_families

from ci_report.callback.auth import hmac_key, hmac_signature
from ci_report.platform import metrics as metrics_mod
from ci_report.platform.receiver import CALLBACK_PATH, ReceiverHandle, start_receiver

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver() -> Iterator[ReceiverHandle]:
    handle = start_receiver(signature_secrets=[WHSEC])
    yield handle
    handle.stop()


def _signed(body: bytes, webhook_id: str, **extra: str) -> dict[str, str]:
    ts = int(time.time())
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": hmac_signature(hmac_key(WHSEC), webhook_id, ts, body),
        "Content-Type": "application/json",
        **extra,
    }


def _scrape(base: str, **headers: str) -> dict[str, float]:
    r = requests.get(base + "/metrics", headers=headers, timeout=5)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            key = s.name + "".join(f"{{{k}={v}}}" for k, v in sorted(s.labels.items()) if v)
            out[key] = s.value
    return out


def test_callbacks_agent_headers_and_ledger_state_reach_metrics(receiver: ReceiverHandle) -> None:
    base = receiver.base_url
    receiver.ledger.create("team/app/main", {}, run_id="run-7")
    receiver.ledger.update("run-7", reason="build #3 started", status="running", build_number=3)
    body = json.dumps(
        {
            "runId": "run-7",
            "status": "success",
            "build": {"jobName": "team/app/main", "buildNumber": 3, "result": "SUCCESS"},
        }
    ).encode()
    agent = {
        "CI-Report-Attempt": "3",
        "CI-Report-First-Attempt": str(int(time.time()) - 120),
        "CI-Report-Outbox-Backlog": "7",
    }
    r = requests.post(
        base + CALLBACK_PATH, data=body, headers=_signed(body, "msg_1", **agent), timeout=5
    )
    assert r.status_code == 200, r.text
    # the same delivery again: a duplicate; garbage agent headers are ignored, not an error
    garbage = {"CI-Report-Attempt": "x" * 300, "CI-Report-Outbox-Backlog": "-4"}
    r = requests.post(
        base + CALLBACK_PATH, data=body, headers=_signed(body, "msg_1", **garbage), timeout=5
    )
    assert r.status_code == 200 and r.json().get("duplicate") is True
    bad = _signed(body, "msg_2")
    bad["webhook-signature"] = "v1,AAAA"
    assert requests.post(base + CALLBACK_PATH, data=body, headers=bad, timeout=5).status_code == 401

    got = _scrape(base)
    assert got["ci_report_callbacks_total{outcome=applied}"] == 1
    assert got["ci_report_callbacks_total{outcome=duplicate}"] == 1
    assert got["ci_report_callbacks_total{outcome=rejected}{reason=auth}"] == 1
    assert got["ci_report_callback_auth_modes_total{mode=hmac}{outcome=applied}"] == 1
    assert got["ci_report_callbacks_delayed_total"] == 1
    assert got["ci_report_callback_attempts_count"] == 1
    assert got["ci_report_agent_outbox_backlog_sum"] == 7
    assert 110 <= got["ci_report_callback_delivery_delay_seconds_sum"] <= 200
    # ledger state, read at scrape time; the transitions came through the ledger's observer
    assert got["ci_report_runs{status=success}"] == 1
    assert got["ci_report_open_runs"] == 0
    assert got["ci_report_run_transitions_total{status=running}"] == 1
    assert got["ci_report_run_transitions_total{status=success}"] == 1
    assert got["ci_report_ledger_up"] == 1

    page = requests.get(base + "/", timeout=5)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "run-7" in page.text and "callback" in page.text
    detail = requests.get(base + "/runs/run-7", timeout=5)
    assert detail.status_code == 200 and "build #3 started" in detail.text
    # the server's own CSRF token rides along in the Sync now form
    assert f'name="csrf_token" value="{receiver.csrf_token}"' in detail.text


def test_metrics_and_page_are_management_routes() -> None:
    handle = start_receiver(signature_secrets=[WHSEC], api_token="platform-token-0123456789")
    try:
        base = handle.base_url
        assert requests.get(base + "/metrics", timeout=5).status_code == 401
        assert requests.get(base + "/", timeout=5).status_code == 401
        ok = _scrape(base, Authorization="Bearer platform-token-0123456789")
        assert "ci_report_open_runs" in ok
        # a browser logs in with Basic (the token as password)
        page = requests.get(base + "/", auth=("me", "platform-token-0123456789"), timeout=5)
        assert page.status_code == 200 and "Executions" in page.text
        assert requests.get(base + "/healthz", timeout=5).status_code == 200
    finally:
        handle.stop()


def test_without_prometheus_client_metrics_answer_503(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_mod, "_prom", None)
    handle = start_receiver(signature_secrets=[WHSEC])
    try:
        assert handle.watch is not None and handle.watch.metrics is None
        assert any("prometheus_client is not installed" in n for n in handle.watch.notes)
        r = requests.get(handle.base_url + "/metrics", timeout=5)
        assert r.status_code == 503
        assert "pip install 'ci-report[metrics]'" in r.text
        # the page and the callbacks do not need it
        assert requests.get(handle.base_url + "/", timeout=5).status_code == 200
    finally:
        handle.stop()


def test_the_receiver_says_at_start_when_metrics_are_off(tmp_path: Path) -> None:
    """``ci-report receiver`` in an environment where prometheus_client cannot be imported."""
    import os
    import re
    import signal
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("JENKINS_", "CI_REPORT_"))}
    env["JENKINS_SIGNATURE_SECRET"] = WHSEC
    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"  # import fails like when absent
        "from ci_report.cli import main; sys.argv[0] = 'ci-report'; main()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "receiver", "--port", "0", "--db", str(tmp_path / "r.db")],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        lines = [proc.stderr.readline() for _ in range(3)]
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)/", lines[0])
        assert match, lines
        assert "executions page" in lines[1] and "/metrics" in lines[1]
        assert "metrics are off" in lines[2] and "ci-report[metrics]" in lines[2], lines
        r = requests.get(match.group(1) + "/metrics", timeout=5)
        assert r.status_code == 503
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")


def _pg_skip_reason() -> str:
    import os

    from pg_server import find_binaries

    if find_binaries() is None:
        return "PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'ci-report[postgres]')"
    if os.geteuid() == 0:
        import pwd

        try:
            pwd.getpwnam("nobody")
        except KeyError:
            return "running as root without a 'nobody' user: PostgreSQL refuses to run as root"
    return ""


def test_two_replicas_on_postgresql_report_the_same_ledger_figures(tmp_path: Path) -> None:
    """Ledger gauges are read from the shared database: a callback applied by replica A shows
    on replica B's /metrics and page too; event counters stay per process."""
    reason = _pg_skip_reason()
    if reason:
        pytest.skip(reason)
    from pg_server import PostgresServer, find_binaries

    from ci_report.console import Console
    from ci_report.platform.runs import open_ledger

    bindir = find_binaries()
    assert bindir is not None
    server = PostgresServer(bindir).start()
    log = (tmp_path / "console.log").open("w")
    handles: list[ReceiverHandle] = []
    ledgers = []
    try:
        dsn = server.new_database()
        for _ in range(2):
            ledger = open_ledger(dsn, console=Console(stream=log))
            ledgers.append(ledger)
            handles.append(start_receiver(signature_secrets=[WHSEC], ledger=ledger))
        a, b = handles
        ledgers[0].create("team/app/main", {}, run_id="run-pg")
        ledgers[0].create("team/app/main", {}, run_id="run-pg-open")
        body = json.dumps(
            {
                "runId": "run-pg",
                "status": "success",
                "build": {"jobName": "team/app/main", "buildNumber": 1, "result": "SUCCESS"},
            }
        ).encode()
        r = requests.post(
            a.base_url + CALLBACK_PATH, data=body, headers=_signed(body, "msg_pg"), timeout=10
        )
        assert r.status_code == 200, r.text
        got_a, got_b = _scrape(a.base_url), _scrape(b.base_url)
        for name in (
            "ci_report_runs{status=success}",
            "ci_report_runs{status=queued}",
            "ci_report_open_runs",
        ):
            assert got_a[name] == got_b[name] == 1, name
        assert got_a["ci_report_callbacks_total{outcome=applied}"] == 1
        assert got_b["ci_report_callbacks_total{outcome=applied}"] == 0
        page = requests.get(b.base_url + "/?status=success", timeout=10)
        assert page.status_code == 200 and "run-pg" in page.text
    finally:
        for handle in handles:
            handle.stop()
        for ledger in ledgers:
            ledger.close()
        log.close()
        server.stop()


def test_ci_report_receiver_counts_reconcile_passes_and_trigger_failures(tmp_path: Path) -> None:
    """The real command wires one observer into the ledger, the reconciler and the trigger."""
    import os
    import re
    import signal
    import subprocess
    import sys

    from fake_jenkins import FakeJenkins

    fake = FakeJenkins().start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JENKINS_", "CI_REPORT_"))}
    env.update(
        JENKINS_SIGNATURE_SECRET=WHSEC, JENKINS_USER=fake.user or "", JENKINS_TOKEN=fake.token
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ci_report",
            "receiver",
            "--port",
            "0",
            "--db",
            str(tmp_path / "r.db"),
            "--jenkins-url",
            fake.url,
            "--reconcile-interval",
            "0.2",
            "--stuck-after",
            "60",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)/", proc.stderr.readline())
        assert match
        base = match.group(1)
        r = requests.post(
            base + "/api/executions", json={"job": "no/such/job", "runId": "r-x"}, timeout=30
        )
        assert r.status_code == 201 and r.json()["status"] == "trigger_failed", r.text
        deadline = time.monotonic() + 30
        while True:
            got = _scrape(base)
            if got.get("ci_report_reconcile_passes_total", 0) >= 1:
                break
            assert time.monotonic() < deadline, "no reconcile pass was counted"
            time.sleep(0.1)
        assert got["ci_report_reconcile_last_pass_timestamp_seconds"] > 0
        assert got["ci_report_stuck_after_seconds"] == 60
        assert got["ci_report_trigger_failures_total{code=job-not-found}"] == 1
        assert got["ci_report_run_transitions_total{status=trigger_failed}"] == 1
        assert got["ci_report_runs{status=trigger_failed}"] == 1
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        fake.stop()


def test_a_real_agent_retry_shows_as_a_delayed_callback(
    cli: Cli, receiver: ReceiverHandle, fault_servers: Any
) -> None:
    """``ci-report callback`` gets a 503, retries; the receiver reads its CI-Report-* headers:
    the names and formats of sender and receiver agree."""
    tap = fault_servers(receiver.url, script=["503"], default="ok")
    env = cli.env(CI_REPORT_URL=tap.url, RUN_ID="7100")
    sent = cli.run(["callback", "--strict"], env=env)
    assert sent.returncode == 0, sent
    assert [r.headers.get("ci-report-attempt") for r in tap.requests] == ["1", "2"]
    got = _scrape(receiver.base_url)
    assert got["ci_report_callbacks_total{outcome=applied}"] == 1
    assert got["ci_report_callbacks_delayed_total"] == 1
    assert got["ci_report_callback_attempts_sum"] == 2
    assert got["ci_report_callback_delivery_delay_seconds_count"] == 1
    assert 0 <= got["ci_report_callback_delivery_delay_seconds_sum"] < 60
