"""Issue 10 end to end: every failure closed by the ledger + reconciler, nothing applied twice.

The fake Jenkins on 127.0.0.1, the real SQLite ledger, a real ``ci-report trigger --ledger``
process killed with SIGKILL between its POST to Jenkins and the build number. The reconciler's
clock is moved past the grace period instead of sleeping through it. Run with ``-s`` to see
the console.
"""

from __future__ import annotations

import io
import json
import signal
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from fake_jenkins import FakeJenkins
from fault_server import Cli
from ledger_scenarios import BUILD_TIMEOUT, EXPECTED, GRACE, Scenario, check_final

from ci_report.config import Settings
from ci_report.console import Console
from ci_report.platform.executions_api import ExecutionsAPI
from ci_report.platform.jenkins import JenkinsClient
from ci_report.platform.reconcile import Reconciler
from ci_report.platform.runs import Ledger, open_ledger, trigger_run

pytestmark = pytest.mark.integration


class OffsetClock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class PythonPlatform:
    """The platform through the Python API and ``ExecutionsAPI.handle`` (what the receiver
    routes ``/api/executions`` to)."""

    def __init__(self, ledger: Ledger, api: ExecutionsAPI) -> None:
        self.ledger, self.api = ledger, api

    def trigger(self, job: str, parameters: dict[str, Any], run_id: str) -> dict[str, Any]:
        body = json.dumps({"job": job, "parameters": parameters, "runId": run_id}).encode()
        status, answer = self.api.handle("POST", "/api/executions", {}, body)
        assert status == 201, answer
        return answer

    def callback(self, body: bytes, delivery_id: str) -> dict[str, Any]:
        status, answer = self.ledger.apply_callback(delivery_id, body, ["hmac"])
        assert status == 200, answer
        return answer


@pytest.fixture
def jenkins() -> Iterator[FakeJenkins]:
    fake = FakeJenkins().start()
    yield fake
    fake.stop()


def _client(fake: FakeJenkins) -> JenkinsClient:
    return JenkinsClient(fake.url, fake.user, fake.token)


def kill_mid_trigger(cli: Cli, fake: FakeJenkins, scenario: Scenario, db: Path) -> None:
    """``ci-report trigger --ledger`` queues the item; Jenkins' answer hangs; SIGKILL."""
    job = scenario.jobs["killed"]
    fake.hang_trigger = 30.0
    env = cli.env(
        auth=False,
        JENKINS_URL=fake.url,
        JENKINS_USER=fake.user,
        JENKINS_TOKEN=fake.token,
    )
    proc = cli.popen(
        [
            "trigger",
            scenario.name("killed"),
            "-p",
            "RUN_ID=r-killed",
            "--ledger",
            str(db),
            "--run-id",
            "r-killed",
            "--json",
        ],
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while not fake.items_of(job) and not job.builds:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the trigger never reached Jenkins"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL


def test_every_failure_reaches_a_final_state_within_two_passes(
    jenkins: FakeJenkins, tmp_path: Path
) -> None:
    out = io.StringIO()
    console = Console(stream=out)
    db = tmp_path / "runs.db"
    clock = OffsetClock()  # the ledger's and the reconciler's: leases and grace move together
    ledger = open_ledger(str(db), console=console, clock=clock)
    reconciler = Reconciler(
        ledger,
        lambda: _client(jenkins),
        callback_grace=GRACE,
        build_timeout=BUILD_TIMEOUT,
        abort_on_timeout=True,
        concurrency=4,
        settings=Settings(),
        console=console,
        clock=clock,
    )

    def trigger(job: str, parameters: dict[str, Any], run_id: Any) -> Any:
        client = _client(jenkins)
        try:
            return trigger_run(
                ledger, client, job, parameters, run_id, console=console, poll_interval=0.05
            )
        finally:
            client.close()

    api = ExecutionsAPI(ledger, reconciler, trigger)
    platform = PythonPlatform(ledger, api)
    scenario = Scenario(jenkins, tmp_path)
    try:
        answers = scenario.trigger_all(platform)
        assert answers["r-callback"]["status"] == "queued"
        assert answers["r-callback"]["queueId"] is not None
        assert answers["r-missing-job"]["status"] == "trigger_failed"
        kill_mid_trigger(Cli(tmp_path), jenkins, scenario, db)
        killed = ledger.get("r-killed")
        assert killed is not None and killed.queue_id is None  # the answer never came
        assert killed.trigger_status == "pending" and killed.trigger_id

        scenario.wait_builds()
        seen = scenario.after_builds(platform)
        assert seen["stale-old"]["stale"] is True and seen["stale-new"]["outcome"] == "applied"

        first = reconciler.run_pass()  # the restarted platform: resumes r-killed
        clock.offset += GRACE + 1
        second = reconciler.run_pass()
        late = scenario.late_original(platform)  # the original arrives after the sync
        assert late["duplicate"] is True

        runs = {r.run_id: r.to_json() for r in ledger.list(limit=None)}
        check_final(runs, ledger.history)
        assert not second.errors and not first.errors
        assert set(runs) == set(EXPECTED)
        # nothing triggered twice, nothing applied twice
        builds = {short: len(job.builds) for short, job in scenario.jobs.items()}
        assert builds == {
            **{short: 1 for short in scenario.jobs},
            "stale": 2,  # build #1 was there before
            "cancelled": 0,
            "disabled": 0,
        }
        for short in scenario.jobs:
            posts = jenkins.posts(f"/job/{short}/buildWithParameters")
            assert len(posts) == (0 if short in ("disabled", "killed") else 1), (short, posts)
        assert {c["applied_count"] for c in ledger.callbacks()} == {1}
        assert scenario.jobs["hangs"].builds[1].stopped  # --abort-on-timeout stopped it
        stale = ledger.get("r-stale")
        assert stale is not None and stale.build_number == 2
        # the HTTP answers of the listing endpoints
        status, listing = api.handle("GET", "/api/executions", {"status": ["cancelled"]}, b"")
        assert status == 200 and [r["runId"] for r in listing["executions"]] == ["r-cancelled"]
        status, one = api.handle("GET", "/api/executions/r-killed", {}, b"")
        assert status == 200 and one["history"][1]["reason"].startswith("resumed:")
    finally:
        reconciler.stop()
        ledger.close()
        print("\n" + out.getvalue())
