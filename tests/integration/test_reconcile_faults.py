"""Reconciler edge cases against the fake Jenkins: unreachable is never lost, lost needs
evidence for the whole grace, expiry, leases, sync-stuck, and ``trigger --json`` failures."""

from __future__ import annotations

import io
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from fake_jenkins import FakeJenkins
from fault_server import Cli

from ci_report.config import Settings
from ci_report.console import Console
from ci_report.platform.executions_api import ExecutionsAPI
from ci_report.platform.jenkins import JenkinsClient
from ci_report.platform.reconcile import Reconciler
from ci_report.platform.runs import open_ledger, trigger_run

pytestmark = pytest.mark.integration
PARAMS = ["CI_REPORT_TRIGGER_ID", "RUN_ID"]


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def jenkins() -> Iterator[FakeJenkins]:
    fake = FakeJenkins().start()
    yield fake
    fake.stop()


@pytest.fixture
def world(jenkins: FakeJenkins, tmp_path: Path) -> Iterator[dict[str, Any]]:
    out = io.StringIO()
    console = Console(stream=out)
    clock = Clock()
    ledger = open_ledger(str(tmp_path / "runs.db"), console=console, clock=clock)
    clients: list[JenkinsClient] = []

    def client() -> JenkinsClient:
        c = JenkinsClient(
            jenkins.url, jenkins.user, jenkins.token, connect_timeout=1.0, read_timeout=2.0
        )
        clients.append(c)
        return c

    reconciler = Reconciler(
        ledger,
        client,
        callback_grace=10.0,
        lost_grace=30.0,
        expire_after=3600.0,
        settings=Settings(),
        console=console,
        clock=clock,
    )

    def trigger(job: str, run_id: str) -> Any:
        return trigger_run(
            ledger, client(), job, {"RUN_ID": run_id}, run_id, console=console, post_attempts=1
        )

    yield {
        "ledger": ledger,
        "reconciler": reconciler,
        "clock": clock,
        "out": out,
        "trigger": trigger,
    }
    reconciler.stop()
    ledger.close()
    for c in clients:
        c.close()


def _wait(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_jenkins_unreachable_is_waited_out_never_lost(
    jenkins: FakeJenkins, world: dict[str, Any]
) -> None:
    job = jenkins.add_job("app/x", params=PARAMS, duration=0.1)
    run = world["trigger"]("app/x", "r1")
    assert run.status == "queued" and run.queue_id is not None
    _wait(lambda: bool(job.builds) and not job.builds[1].building(time.monotonic()))
    jenkins.stop()
    world["clock"].offset += 3000  # far past every grace, not past the expiry
    summary = world["reconciler"].run_pass()
    assert summary.errors and not summary.moved
    assert world["ledger"].get("r1").status == "queued"
    assert "Jenkins did not answer" in world["out"].getvalue()
    jenkins.start()  # back on the same port
    world["reconciler"].run_pass()  # sees the build finished
    world["clock"].offset += 11
    world["reconciler"].run_pass()
    done = world["ledger"].get("r1")
    assert (done.status, done.result_source) == ("success", "status-only")
    assert [h["to"] for h in world["ledger"].history("r1")] == ["queued", "running", "success"]


def test_a_vanished_queue_item_is_lost_only_after_the_grace(
    jenkins: FakeJenkins, world: dict[str, Any]
) -> None:
    job = jenkins.add_job("app/x", params=PARAMS, quiet_period=3600.0)
    world["trigger"]("app/x", "r1")
    with jenkins.lock:  # the controller restarted and forgot the waiting item
        jenkins.queue.clear()
    assert not jenkins.items_of(job)
    world["reconciler"].run_pass()
    assert world["ledger"].get("r1").status == "queued"  # first sighting: look again
    world["clock"].offset += 29
    world["reconciler"].run_pass()
    assert world["ledger"].get("r1").status == "queued"
    world["clock"].offset += 2
    world["reconciler"].run_pass()
    lost = world["ledger"].get("r1")
    assert lost.status == "lost"
    assert "is gone from the queue" in lost.status_reason and "trigger id" in lost.status_reason


def test_deleted_job_makes_the_run_lost_with_evidence(
    jenkins: FakeJenkins, world: dict[str, Any]
) -> None:
    job = jenkins.add_job("app/x", params=PARAMS, duration=3600.0)
    world["trigger"]("app/x", "r1")
    _wait(lambda: bool(job.builds))
    world["reconciler"].run_pass()
    assert world["ledger"].get("r1").status == "running"
    jenkins.delete_job("app/x")
    world["reconciler"].run_pass()
    world["clock"].offset += 31
    world["reconciler"].run_pass()
    lost = world["ledger"].get("r1")
    assert lost.status == "lost" and "no longer exists" in lost.status_reason


def test_open_too_long_expires_loudly(jenkins: FakeJenkins, world: dict[str, Any]) -> None:
    jenkins.add_job("app/x", params=PARAMS, quiet_period=36_000.0)
    world["trigger"]("app/x", "r1")
    world["reconciler"].run_pass()
    assert world["ledger"].get("r1").status == "queued"
    world["clock"].offset += 3601
    world["reconciler"].run_pass()
    run = world["ledger"].get("r1")
    assert run.status == "expired" and "--expire-after" in run.status_reason
    assert "queued -> expired" in world["out"].getvalue()


def test_a_leased_run_is_left_to_its_holder(jenkins: FakeJenkins, world: dict[str, Any]) -> None:
    jenkins.add_job("app/x", params=PARAMS, quiet_period=3600.0)
    world["trigger"]("app/x", "r1")
    jenkins.cancel_waiting(jenkins.jobs["app/x"])
    assert world["ledger"].claim("r1", "other-replica", 60)
    summary = world["reconciler"].run_pass()
    assert summary.skipped == 1 and world["ledger"].get("r1").status == "queued"
    world["clock"].offset += 61
    world["reconciler"].run_pass()
    assert world["ledger"].get("r1").status == "cancelled"


def test_sync_endpoints_skip_the_grace(jenkins: FakeJenkins, world: dict[str, Any]) -> None:
    job = jenkins.add_job("app/x", params=PARAMS, duration=0.05)
    jenkins.add_job("app/y", params=PARAMS, duration=0.05)
    world["trigger"]("app/x", "r1")
    world["trigger"]("app/y", "r2")
    _wait(lambda: bool(job.builds) and not job.builds[1].building(time.monotonic()))
    _wait(lambda: jenkins.all_done())
    api = ExecutionsAPI(world["ledger"], world["reconciler"])
    status, one = api.handle("POST", "/api/executions/r1/sync", {}, b"")
    assert status == 200 and one["status"] == "success" and one["resultSource"] == "status-only"
    world["clock"].offset += 120
    status, stuck = api.handle("GET", "/api/executions/stuck", {"timeout": ["1"]}, b"")
    assert [r["runId"] for r in stuck["executions"]] == ["r2"]
    body = json.dumps({"timeoutMinutes": 1, "maxExecutions": 5}).encode()
    status, answer = api.handle("POST", "/api/executions/sync-stuck", {}, body)
    assert status == 200 and [r["runId"] for r in answer["moved"]] == ["r2"]
    assert answer["moved"][0]["reason"] and answer["stillOpen"] == []
    # bad requests are 400 with a reason, never a traceback
    assert api.handle("POST", "/api/executions/sync-stuck", {}, b"[1]")[0] == 400
    bad = json.dumps({"timeoutMinutes": "x"}).encode()
    assert api.handle("POST", "/api/executions/sync-stuck", {}, bad)[0] == 400
    assert api.handle("GET", "/api/executions", {"status": ["bogus"]}, b"")[0] == 400
    assert api.handle("POST", "/api/executions", {}, b'{"parameters": {}}')[0] == 400
    assert api.handle("GET", "/api/executions/nope", {}, b"")[0] == 404
    assert api.handle("POST", "/api/executions/nope/sync", {}, b"")[0] == 404
    status, again = api.handle("POST", "/api/executions", {}, b'{"job": "app/x", "runId": "r1"}')
    assert status == 200 and again["existing"] is True  # never triggered twice


def test_trigger_json_prints_one_line_for_every_outcome(
    jenkins: FakeJenkins, tmp_path: Path
) -> None:
    jenkins.add_job("app/x", params=PARAMS)
    cli = Cli(tmp_path)
    env = cli.env(
        auth=False, JENKINS_URL=jenkins.url, JENKINS_USER=jenkins.user, JENKINS_TOKEN=jenkins.token
    )
    missing = cli.run(["trigger", "app/nope", "--json"], env=env)
    assert missing.returncode == 2, missing
    (line,) = missing.stdout.splitlines()
    doc = json.loads(line)
    assert (doc["outcome"], doc["code"]) == ("failed", "job-not-found")
    assert "Traceback" not in missing.stderr
    db = tmp_path / "runs.db"
    refused = cli.run(
        ["trigger", "app/x", "--json", "--ledger", str(db), "--run-id", "7"],
        env=dict(env, JENKINS_TOKEN="wrong"),
    )
    assert refused.returncode == 2, refused
    doc = json.loads(refused.stdout)
    assert (doc["runId"], doc["status"], doc["code"]) == ("7", "trigger_failed", "auth-refused")
    assert "JENKINS_TOKEN" in doc["triggerMessage"] and "wrong" not in refused.stdout
    ok = cli.run(["trigger", "app/x", "--json", "--ledger", str(db), "-p", "RUN_ID=8"], env=env)
    assert ok.returncode == 0, ok
    doc = json.loads(ok.stdout)
    assert doc["status"] == "queued" and doc["queueId"] is not None and doc["triggerId"]
    ledger = open_ledger(str(db))
    try:
        assert {r.status for r in ledger.list()} == {"queued", "trigger_failed"}
    finally:
        ledger.close()


def test_a_slow_trigger_keeps_its_lease(jenkins: FakeJenkins, world: dict[str, Any]) -> None:
    job = jenkins.add_job("app/x", params=PARAMS)
    jenkins.hang_trigger = 1.5  # Jenkins queues the item, then answers slowly
    ledger = world["ledger"]
    client = JenkinsClient(jenkins.url, jenkins.user, jenkins.token)
    result: list[Any] = []
    thread = threading.Thread(
        target=lambda: result.append(
            trigger_run(ledger, client, "app/x", {"RUN_ID": "r1"}, "r1", lease_s=0.3)
        )
    )
    thread.start()
    try:
        _wait(lambda: bool(jenkins.items_of(job) or job.builds))
        leases = set()

        def renewed_twice() -> bool:
            row = ledger.db.conn.execute("SELECT lease_until FROM runs").fetchone()
            leases.add(row[0])
            return len(leases) >= 3

        _wait(renewed_twice, timeout=5)  # the lease moves on while Jenkins is slow
        assert not ledger.claim("r1", "reconciler", 60)
    finally:
        thread.join(timeout=10)
        client.close()
    assert result and result[0].queue_id is not None
    assert ledger.claim("r1", "reconciler", 60)  # released when the trigger ended


def test_reconcile_command_once_from_cron(jenkins: FakeJenkins, tmp_path: Path) -> None:
    job = jenkins.add_job("app/x", params=PARAMS, duration=0.05)
    cli = Cli(tmp_path)
    env = cli.env(
        auth=False, JENKINS_URL=jenkins.url, JENKINS_USER=jenkins.user, JENKINS_TOKEN=jenkins.token
    )
    db = str(tmp_path / "runs.db")
    assert cli.run(["trigger", "app/x", "--ledger", db, "--run-id", "9"], env=env).returncode == 0
    _wait(lambda: bool(job.builds) and not job.builds[1].building(time.monotonic()))
    args = ["reconcile", "--db", db, "--once", "--json", "--callback-grace", "0"]
    done = cli.run(args, env=env)
    assert done.returncode == 0, done
    summary = json.loads(done.stdout.splitlines()[-1])
    assert [r["runId"] for r in summary["moved"]] == ["9"]
    assert summary["moved"][0]["status"] == "success" and "Traceback" not in done.stderr
    assert "reconcile pass: 1 open run(s), 1 moved" in done.stderr
    # Jenkins down: exit 1, the run would stay open; no Jenkins configured: exit 2
    ledger = open_ledger(db)
    try:
        ledger.create("app/x", run_id="10")
        ledger.update("10", reason="queued", queue_id=5, trigger_status="success")
    finally:
        ledger.close()
    jenkins.stop()
    down = cli.run(["reconcile", "--db", db, "--once"], env=env)
    assert down.returncode == 1 and "could not be checked" in down.stderr, down
    unset = cli.run(["reconcile", "--db", db, "--once"], env=dict(env, JENKINS_URL=""))
    assert unset.returncode == 2 and "JENKINS_URL" in unset.stderr, unset


def test_each_pass_closes_its_jenkins_sessions_and_sync_reports_errors(
    jenkins: FakeJenkins, tmp_path: Path
) -> None:
    jenkins.add_job("app/x", params=PARAMS, quiet_period=3600.0)
    ledger = open_ledger(str(tmp_path / "runs.db"), console=Console(stream=io.StringIO()))
    made: list[Any] = []

    class Counted(JenkinsClient):
        closed = False

        def close(self) -> None:
            self.closed = True
            super().close()

    def factory() -> JenkinsClient:
        made.append(Counted(jenkins.url, jenkins.user, jenkins.token, connect_timeout=1.0))
        return made[-1]

    reconciler = Reconciler(ledger, factory, concurrency=4, console=ledger.console)
    try:
        for n in range(6):
            trigger_run(ledger, factory(), "app/x", {"RUN_ID": str(n)}, str(n))
        for _ in range(3):
            reconciler.run_pass()
        assert made and all(c.closed for c in made[6:])  # the trigger's own are the caller's
        jenkins.stop()
        api = ExecutionsAPI(ledger, reconciler)
        status, answer = api.handle("POST", "/api/executions/0/sync", {}, b"")
        assert status == 200 and answer["status"] == "queued"
        assert answer["errors"] and "Jenkins" in answer["reason"] + answer["errors"][0]
    finally:
        reconciler.stop()
        ledger.close()
        for c in made[:6]:
            c.close()


def test_sigterm_during_a_ledger_trigger_is_not_a_failed_trigger(
    jenkins: FakeJenkins, tmp_path: Path
) -> None:
    job = jenkins.add_job("app/x", params=PARAMS)
    jenkins.hang_trigger = 20.0  # Jenkins queues the item; its answer does not come
    cli = Cli(tmp_path)
    env = cli.env(
        auth=False, JENKINS_URL=jenkins.url, JENKINS_USER=jenkins.user, JENKINS_TOKEN=jenkins.token
    )
    db = str(tmp_path / "runs.db")
    proc = cli.popen(["trigger", "app/x", "--ledger", db, "--run-id", "5", "--json"], env=env)
    try:
        _wait(lambda: bool(jenkins.items_of(job) or job.builds), timeout=30)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    doc = json.loads(out)
    assert (doc["runId"], doc["outcome"], doc["status"]) == ("5", "interrupted", "queued")
    assert "Traceback" not in err
    ledger = open_ledger(db)
    try:
        run = ledger.get("5")
        assert run is not None and run.status == "queued" and run.trigger_id  # resumable
    finally:
        ledger.close()
