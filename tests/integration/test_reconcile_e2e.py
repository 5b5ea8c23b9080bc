"""Issue 10 end to end: every failure closed by the ledger + reconciler, nothing applied twice.

The fake Jenkins on 127.0.0.1, the real SQLite ledger, runs triggered with ``POST
/api/executions`` on a real receiver, callbacks signed and posted to it; a receiver process
SIGKILLed between its POST to Jenkins and the build number (``ci-report receiver`` as a process;
the in-test receiver on the same ledger is its restart). The
reconciler's clock is moved past the grace period instead of sleeping through it. Run with
``-s`` to see the console.
"""

from __future__ import annotations

import io
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
import requests
from fake_jenkins import FakeJenkins
from fault_server import API_KEY, AUTH_ENV, WHSEC, Cli
from ledger_scenarios import BUILD_TIMEOUT, EXPECTED, GRACE, Scenario, check_final

from ci_report.callback.auth import sign_request
from ci_report.config import Settings, load_settings
from ci_report.console import Console
from ci_report.platform.events import Observer
from ci_report.platform.executions_api import ExecutionsAPI
from ci_report.platform.jenkins import JenkinsClient
from ci_report.platform.receiver import start_receiver
from ci_report.platform.reconcile import Reconciler
from ci_report.platform.runs import open_ledger, trigger_run
from ci_report.platform.tracking import Tracking

pytestmark = pytest.mark.integration


class OffsetClock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class Events(Observer):
    """What /metrics would count."""

    def __init__(self) -> None:
        self.syncs: list[str] = []
        self.trigger_failures: list[str] = []
        self.passes = 0
        self.transitions: list[tuple[str, Optional[str], str]] = []

    def sync_done(self, result_source: str) -> None:
        self.syncs.append(result_source)

    def trigger_failed(self, code: str) -> None:
        self.trigger_failures.append(code)

    def reconcile_pass(self, duration_s: float, moved: int, errors: int) -> None:
        self.passes += 1

    def run_transition(self, run_id: str, old: Optional[str], new: str, reason: str) -> None:
        self.transitions.append((run_id, old, new))


class HttpPlatform:
    """The platform over HTTP: ``POST /api/executions`` and signed callbacks."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url
        self.session = requests.Session()
        self.session.trust_env = False
        self.settings = load_settings({}, env=AUTH_ENV)

    def trigger(self, job: str, parameters: dict[str, Any], run_id: str) -> dict[str, Any]:
        doc = {"job": job, "parameters": parameters, "runId": run_id}
        response = self.session.post(self.base + "/api/executions", json=doc, timeout=30)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def callback(self, body: bytes, delivery_id: str) -> dict[str, Any]:
        url = self.base + "/api/jenkins/callback"
        headers = sign_request(self.settings, body, delivery_id, url=url, modes=["api-key", "hmac"])
        response = self.session.post(url, data=body, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def get(self, path: str, **params: Any) -> tuple[int, dict[str, Any]]:
        response = self.session.get(self.base + path, params=params, timeout=30)
        return response.status_code, dict(response.json())


@pytest.fixture
def jenkins() -> Iterator[FakeJenkins]:
    fake = FakeJenkins().start()
    yield fake
    fake.stop()


def _client(fake: FakeJenkins) -> JenkinsClient:
    return JenkinsClient(fake.url, fake.user, fake.token)


def kill_receiver_mid_trigger(fake: FakeJenkins, scenario: Scenario, db: Path) -> None:
    """``ci-report receiver --db DB`` (with JENKINS_URL) takes ``POST /api/executions``, queues
    the item in Jenkins, and is SIGKILLed while Jenkins' answer (the queue id) is on its way."""
    job = scenario.jobs["killed"]
    env = Cli(db.parent).env(
        auth=False,
        JENKINS_URL=fake.url,
        JENKINS_USER=fake.user,
        JENKINS_TOKEN=fake.token,
        JENKINS_SIGNATURE_SECRET=WHSEC,
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
            str(db),
            "--reconcile-interval",
            "3600",  # its one pass runs at start, before the trigger
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        base = ""
        seen = []
        for _ in range(50):
            line = proc.stderr.readline()
            seen.append(line)
            match = re.search(r"receiver listening on (http://127\.0\.0\.1:\d+)/", line)
            if match:
                base = match.group(1)
                break
            assert line, "".join(seen)
        assert base, "".join(seen)
        fake.hang_trigger = 30.0
        doc = {"job": scenario.name("killed"), "parameters": {"RUN_ID": "r-killed"}}
        doc["runId"] = "r-killed"
        errors: list[BaseException] = []

        def post() -> None:
            try:
                requests.post(base + "/api/executions", json=doc, timeout=60)
            except requests.RequestException as exc:  # the receiver dies under it
                errors.append(exc)

        poster = threading.Thread(target=post, daemon=True)
        poster.start()
        deadline = time.monotonic() + 30
        while not fake.items_of(job) and not job.builds:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the trigger never reached Jenkins"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    poster.join(timeout=10)
    assert proc.returncode == -signal.SIGKILL and errors  # no answer ever came


def test_every_failure_reaches_a_final_state_within_two_passes(
    jenkins: FakeJenkins, tmp_path: Path
) -> None:
    out = io.StringIO()
    console = Console(stream=out)
    db = tmp_path / "runs.db"
    clock = OffsetClock()  # the ledger's and the reconciler's: leases and grace move together
    events = Events()
    ledger = open_ledger(str(db), console=console, clock=clock, observer=events)
    reconciler = Reconciler(
        ledger,
        lambda: _client(jenkins),
        callback_grace=GRACE,
        build_timeout=BUILD_TIMEOUT,
        abort_on_timeout=True,
        concurrency=4,
        settings=Settings(),
        console=console,
        observer=events,
        clock=clock,
    )

    def trigger(job: str, parameters: dict[str, Any], run_id: Any) -> Any:
        client = _client(jenkins)
        try:
            return trigger_run(
                ledger,
                client,
                job,
                parameters,
                run_id,
                console=console,
                observer=events,
                poll_interval=0.05,
            )
        finally:
            client.close()

    api = ExecutionsAPI(ledger, reconciler, trigger)
    scenario = Scenario(jenkins, tmp_path)
    kill_receiver_mid_trigger(jenkins, scenario, db)  # before this receiver "restarts"
    killed = ledger.get("r-killed")
    assert killed is not None and killed.queue_id is None  # the answer never came
    assert killed.trigger_status == "pending" and killed.trigger_id
    receiver = start_receiver(
        api_keys=[API_KEY],
        signature_secrets=[WHSEC],
        tracking=Tracking(ledger, reconciler, api),
    )
    platform = HttpPlatform(receiver.base_url)
    try:
        answers = scenario.trigger_all(platform)
        assert answers["r-callback"]["status"] == "queued"
        assert answers["r-callback"]["queueId"] is not None
        assert answers["r-missing-job"]["status"] == "trigger_failed"

        scenario.wait_builds()
        seen = scenario.after_builds(platform)
        assert seen["stale-old"]["stale"] is True and seen["stale-new"]["outcome"] == "applied"

        first = reconciler.run_pass()  # the restarted receiver's first pass: resumes r-killed
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
        # the listing endpoints
        status, listing = platform.get("/api/executions", status="cancelled")
        assert status == 200 and [r["runId"] for r in listing["executions"]] == ["r-cancelled"]
        status, one = platform.get("/api/executions/r-killed")
        assert status == 200 and one["history"][1]["reason"].startswith("resumed:")
        assert platform.get("/api/executions/stuck", timeout="0")[1]["executions"] == []
        # the observer saw what /metrics counts
        assert sorted(events.syncs) == sorted(
            ["artifact", "artifact", "test-report", "status-only", "status-only", "status-only"]
        )
        assert sorted(events.trigger_failures) == sorted(
            ["job-not-found", "job-disabled", "undefined-parameter"]
        )
        assert events.passes == 2
        finals = [t for t in events.transitions if t[2] not in ("queued", "running")]
        assert sorted(t[0] for t in finals) == sorted(EXPECTED)  # each closed once
    finally:
        receiver.stop()
        reconciler.stop()
        ledger.close()
        print("\n" + out.getvalue())
