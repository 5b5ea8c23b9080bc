"""The ledger on a real PostgreSQL server; two receivers (two connections, two reconcilers)
sharing it never trigger a run twice, never sync a run twice, and never lose a transition."""

from __future__ import annotations

import io
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from fake_jenkins import FakeJenkins
from fault_server import API_KEY, WHSEC
from ledger_scenarios import BUILD_TIMEOUT, GRACE, PARAMS, Scenario, check_final
from pg_server import PostgresServer, find_binaries
from test_reconcile_e2e import HttpPlatform, OffsetClock

from ci_report.config import Settings
from ci_report.console import Console
from ci_report.platform.executions_api import ExecutionsAPI
from ci_report.platform.jenkins import JenkinsClient
from ci_report.platform.receiver import start_receiver
from ci_report.platform.reconcile import Reconciler
from ci_report.platform.runs import open_ledger, trigger_run
from ci_report.platform.tracking import Tracking

pytestmark = pytest.mark.integration


def _skip_reason() -> str:
    if find_binaries() is None:
        return (
            "PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb); "
            "scripts/test installs it"
        )
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


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    bindir = find_binaries()
    assert bindir is not None
    server = PostgresServer(bindir).start()
    yield server
    server.stop()


@pytest.fixture
def jenkins() -> Iterator[FakeJenkins]:
    fake = FakeJenkins().start()
    yield fake
    fake.stop()


def body(run_id: str, number: int, result: str = "SUCCESS") -> bytes:
    return json.dumps(
        {
            "runId": run_id,
            "status": "success" if result == "SUCCESS" else "failed",
            "build": {"jobName": "a", "buildNumber": number, "result": result},
        }
    ).encode()


def test_ledger_semantics_on_postgres(pg: PostgresServer) -> None:
    dsn = pg.new_database()
    one, two = open_ledger(dsn), open_ledger(dsn)
    try:
        assert one.where.startswith("postgresql ")
        run, created = one.create_or_get("a", {"PASSWORD": "x", "V": 1}, run_id="64")
        _, again = two.create_or_get("a", {}, run_id="64")
        assert created and not again and run.parameters == {"PASSWORD": "***", "V": 1}
        two.update("64", reason="build #3", status="running", build_number=3)
        assert one.apply_callback("msg_1", body("64", 3), ["hmac"])[1]["outcome"] == "applied"
        assert two.apply_callback("msg_1", body("64", 3), ["hmac"])[1]["duplicate"] is True
        assert two.apply_callback("msg_1", body("64", 4), [])[0] == 422
        stale = one.apply_callback("msg_2", body("64", 2, "FAILURE"), [])[1]
        assert stale["stale"] is True and one.get("64").status == "success"
        assert [h["to"] for h in two.history("64")] == ["queued", "running", "success"]
        assert one.update("64", reason="late", expect_open=True, status="lost").status == "success"
        assert two.counts_by_status()["success"] == 1 and one.callbacks()[0]["applied_count"] == 1
        assert [r.run_id for r in one.list(status="success", job="a")] == ["64"]
        # a lease race between two connections has one winner
        one.create("a", run_id="65")
        barrier = threading.Barrier(2)
        wins = []

        def grab(ledger: Any, name: str) -> None:
            barrier.wait()
            if ledger.claim("65", name, 60):
                wins.append(name)

        threads = [
            threading.Thread(target=grab, args=(lg, n)) for lg, n in ((one, "a"), (two, "b"))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1
        # concurrent applies of one new delivery id: applied once, the other a duplicate
        one.create("a", run_id="66")
        barrier = threading.Barrier(2)
        answers = []

        def apply(ledger: Any) -> None:
            barrier.wait()
            answers.append(ledger.apply_callback("msg_66", body("66", 1), ["hmac"])[1])

        threads = [threading.Thread(target=apply, args=(lg,)) for lg in (one, two)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(a["outcome"] for a in answers) == ["applied", "duplicate"]
        assert len([h for h in one.history("66") if h["to"] == "success"]) == 1
        # the server drops the connection (restart, failover): one call fails, the next
        # reconnects
        import psycopg

        with two.db.tx() as tx:
            tx.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        with pytest.raises(psycopg.OperationalError):
            one.get("64")
        assert one.get("64").status == "success"
    finally:
        one.close()
        two.close()


def test_two_receivers_on_one_postgres_never_trigger_or_sync_twice(
    pg: PostgresServer, jenkins: FakeJenkins, tmp_path: Path
) -> None:
    dsn = pg.new_database()
    out = io.StringIO()
    console = Console(stream=out)
    clock = OffsetClock()
    receivers, reconcilers, ledgers = [], [], []
    for name in ("replica-a", "replica-b"):
        ledger = open_ledger(dsn, console=console, clock=clock)

        def client() -> JenkinsClient:
            return JenkinsClient(jenkins.url, jenkins.user, jenkins.token)

        reconciler = Reconciler(
            ledger,
            client,
            callback_grace=GRACE,
            build_timeout=BUILD_TIMEOUT,
            abort_on_timeout=True,
            concurrency=4,
            settings=Settings(),
            console=console,
            owner=name,
            clock=clock,
        )

        def trigger(job: str, parameters: dict[str, Any], run_id: Any, _l: Any = ledger) -> Any:
            c = JenkinsClient(jenkins.url, jenkins.user, jenkins.token)
            try:
                return trigger_run(
                    _l, c, job, parameters, run_id, console=console, poll_interval=0.05
                )
            finally:
                c.close()

        tracking = Tracking(ledger, reconciler, ExecutionsAPI(ledger, reconciler, trigger))
        receivers.append(
            start_receiver(api_keys=[API_KEY], signature_secrets=[WHSEC], tracking=tracking)
        )
        reconcilers.append(reconciler)
        ledgers.append(ledger)
    a, b = (HttpPlatform(r.base_url) for r in receivers)

    class Alternating:
        """Requests spread over both replicas, as a load balancer would."""

        n = 0

        def _next(self) -> HttpPlatform:
            self.n += 1
            return a if self.n % 2 else b

        def trigger(self, job: str, parameters: dict[str, Any], run_id: str) -> dict[str, Any]:
            return self._next().trigger(job, parameters, run_id)

        def callback(self, body: bytes, delivery_id: str) -> dict[str, Any]:
            return self._next().callback(body, delivery_id)

    platform = Alternating()
    scenario = Scenario(jenkins, tmp_path)
    dup = jenkins.add_job("app/dup", params=list(PARAMS), duration=0.1)
    try:
        scenario.trigger_all(platform)
        platform.trigger(scenario.name("killed"), {"RUN_ID": "r-killed"}, "r-killed")
        # the same runId posted to both replicas at once: one trigger reaches Jenkins
        doc = {"job": "app/dup", "parameters": {"RUN_ID": "r-dup"}, "runId": "r-dup"}
        barrier = threading.Barrier(2)

        def post(base: str) -> int:
            barrier.wait()
            return requests.post(base + "/api/executions", json=doc, timeout=30).status_code

        with ThreadPoolExecutor(2) as pool:
            codes = list(pool.map(post, [r.base_url for r in receivers]))
        assert sorted(codes)[0] in (200, 201) and all(c in (200, 201) for c in codes)
        scenario.wait_builds()
        seen = scenario.after_builds(platform)
        assert seen["stale-old"]["stale"] is True

        def both_passes() -> list[Any]:
            barrier = threading.Barrier(2)

            def one(r: Reconciler) -> Any:
                barrier.wait()
                return r.run_pass()

            with ThreadPoolExecutor(2) as pool:
                return list(pool.map(one, reconcilers))

        first = both_passes()
        clock.offset += GRACE + 1
        second = both_passes()
        assert not any(s.errors for s in first + second)
        for pair in (first, second):  # within a pass pair no run was worked on by both
            moved = [run.run_id for summary in pair for run, _ in summary.moved]
            assert len(moved) == len(set(moved)), moved
        assert scenario.late_original(platform)["duplicate"] is True

        runs = {r.run_id: r.to_json() for r in ledgers[0].list(limit=None)}
        dup_run = runs.pop("r-dup")
        assert (dup_run["status"], dup_run["resultSource"]) == ("success", "status-only")
        check_final(runs, ledgers[1].history)
        assert len(dup.builds) == 1 and len(jenkins.posts("/job/dup/buildWithParameters")) == 1
        for short in scenario.jobs:
            posts = jenkins.posts(f"/job/{short}/buildWithParameters")
            assert len(posts) == (0 if short == "disabled" else 1), (short, posts)
        # each finished build was recovered at most once: one artifact read per synced build
        for short in ("archived", "late", "agent-died", "report", "forgotten", "killed"):
            reads = [e for e in jenkins.log if f"/job/{short}/1/artifact/" in e[1]]
            assert len(reads) == 1, (short, reads)
        assert {c["applied_count"] for c in ledgers[0].callbacks()} == {1}
    finally:
        for r in receivers:
            r.stop()
        for r in reconcilers:
            r.stop()
        for lg in ledgers:
            lg.close()
        print("\n" + out.getvalue())
