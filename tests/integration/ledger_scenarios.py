"""The failures of issue 10, one run each, against the fake Jenkins: set-up and expectations.

Shared by the SQLite end-to-end test and the PostgreSQL test. A :class:`Platform` is how the
test reaches the platform side: ``trigger`` (``POST /api/executions`` or the Python API) and
``callback`` (``POST /api/jenkins/callback`` or ``Ledger.apply_callback``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from fake_jenkins import FakeJenkins, FakeJob

from ci_report.callback.payload import canonical_body, make_delivery_id
from ci_report.callback.result_file import write_result_file
from ci_report.jenkins_env import BuildContext

PARAMS = ["CI_REPORT_TRIGGER_ID", "RUN_ID"]
GRACE = 120.0  # the default: the test moves the reconciler's clock instead of waiting
BUILD_TIMEOUT = 60.0

TEST_REPORT = {
    "failCount": 1,
    "passCount": 4,
    "skipCount": 0,
    "suites": [{"name": "s", "cases": [{"className": "t", "name": "a", "status": "FAILED"}]}],
}

# runId -> (status, resultSource) after the passes
EXPECTED: dict[str, tuple[str, Optional[str]]] = {
    "r-callback": ("success", "callback"),
    "r-agent-died": ("failed", "status-only"),
    "r-archived": ("unstable", "artifact"),
    "r-report": ("unstable", "test-report"),
    "r-cancelled": ("cancelled", None),
    "r-hangs": ("timed_out", None),
    "r-missing-job": ("trigger_failed", None),
    "r-killed": ("success", "status-only"),
    "r-late": ("success", "artifact"),
    "r-stale": ("success", "callback"),
    "r-forgotten": ("success", "status-only"),
    "r-undefined-param": ("trigger_failed", None),
    "r-disabled": ("trigger_failed", None),
}
TRIGGER_CODES = {
    "r-missing-job": "job-not-found",
    "r-undefined-param": "undefined-parameter",
    "r-disabled": "job-disabled",
}


class Platform(Protocol):
    def trigger(self, job: str, parameters: dict[str, Any], run_id: str) -> dict[str, Any]: ...

    def callback(self, body: bytes, delivery_id: str) -> dict[str, Any]: ...


def agent_payload(
    run_id: str, job: str, number: int, result: str, passed: int = 5, failed: int = 0
) -> tuple[bytes, str]:
    """What the build's own ``ci-report callback`` sends: (canonical body, delivery id)."""
    payload = {
        "runId": run_id,
        "status": "success" if result == "SUCCESS" else "failed",
        "passedCases": passed,
        "failedCases": failed,
        "skippedCases": 0,
        "durationMs": 1000,
        "results": [],
        "schema": "ci-report/callback/v1",
        "errorCases": 0,
        "totalCases": passed + failed,
        "build": {
            "jobName": job,
            "buildNumber": number,
            "buildUrl": None,
            "result": result,
            "node": "agent-1",
            "gitCommit": None,
            "gitBranch": None,
            "changeId": None,
        },
        "reports": {"files": 1, "parseErrors": []},
        "resultsTruncated": False,
    }
    body = canonical_body(payload)
    context = BuildContext(jenkins_url="http://jenkins/", job_name=job, build_number=number)
    return body, make_delivery_id(context, body)


def archived(
    tmp: Path, run_id: str, job: str, number: int, result: str
) -> tuple[bytes, str, bytes]:
    """(body, delivery id, callback.json bytes) of a callback the build archived, then lost."""
    body, delivery_id = agent_payload(run_id, job, number, result, passed=7, failed=1)
    path = write_result_file(
        tmp / f"{run_id}-callback.json",
        payload_bytes=body,
        delivery_id=delivery_id,
        url="http://127.0.0.1:9/api/jenkins/callback",
        outcome="queued",
        attempts=8,
        status_code=None,
        error="connect timeout",
    )
    return body, delivery_id, path.read_bytes()


class Scenario:
    """Jobs for every failure; ``trigger_all`` starts the runs, ``after_builds`` does what the
    world does once the builds ran (callbacks, a cancelled item, a forgotten queue item)."""

    def __init__(self, fake: FakeJenkins, tmp: Path, prefix: str = "app") -> None:
        self.fake = fake
        self.tmp = tmp
        self.p = prefix
        self.late: Optional[tuple[bytes, str]] = None
        self.jobs: dict[str, FakeJob] = {}
        add = self._add
        add("callback")
        add("agent-died", results=["FAILURE"])
        _, _, data = archived(tmp, "r-archived", self.name("archived"), 1, "UNSTABLE")
        add("archived", results=["UNSTABLE"], artifacts={"ci-report/callback.json": data})
        add("report", results=["UNSTABLE"], test_report=TEST_REPORT)
        add("cancelled", quiet_period=3600.0)
        add("hangs", duration=3600.0)
        add("killed")
        body, delivery_id, data = archived(tmp, "r-late", self.name("late"), 1, "SUCCESS")
        self.late = (body, delivery_id)
        add("late", artifacts={"ci-report/callback.json": data})
        stale = add("stale")
        fake.add_build(stale, result="FAILURE", params=[("RUN_ID", "r-stale")])  # build #1
        add("forgotten")
        add("disabled", buildable=False)

    def name(self, short: str) -> str:
        return f"{self.p}/{short}"

    def _add(self, short: str, **kw: Any) -> FakeJob:
        kw.setdefault("duration", 0.2)
        job = self.fake.add_job(self.name(short), params=list(PARAMS), **kw)
        self.jobs[short] = job
        return job

    def trigger_all(self, platform: Platform) -> dict[str, dict[str, Any]]:
        answers = {}
        for short in [
            "callback",
            "agent-died",
            "archived",
            "report",
            "cancelled",
            "hangs",
            "late",
            "stale",
            "forgotten",
            "disabled",
        ]:
            run_id = f"r-{short}"
            answers[run_id] = platform.trigger(self.name(short), {"RUN_ID": run_id}, run_id)
        answers["r-missing-job"] = platform.trigger(
            self.name("nope"), {"RUN_ID": "r-missing-job"}, "r-missing-job"
        )
        answers["r-undefined-param"] = platform.trigger(
            self.name("callback"), {"RUN_ID": "x", "BOGUS": "1"}, "r-undefined-param"
        )
        return answers

    def wait_builds(self, timeout: float = 20.0) -> None:
        """Until every build except the hanging one has finished (observed, not slept)."""
        deadline = time.monotonic() + timeout
        hangs = self.jobs["hangs"]
        while time.monotonic() < deadline:
            with self.fake.lock:
                self.fake.tick()
                now = time.monotonic()
                busy = [
                    b
                    for j in self.fake.jobs.values()
                    if j is not hangs
                    for b in j.builds.values()
                    if b.building(now)
                ]
                waiting = [
                    i
                    for i in self.fake.queue.values()
                    if i.state != "left" and i.job is not self.jobs["cancelled"]
                ]
                started = bool(hangs.builds)
            if not busy and not waiting and started:
                return
            time.sleep(0.05)
        raise AssertionError("the fake Jenkins builds did not finish")

    def after_builds(self, platform: Platform) -> dict[str, dict[str, Any]]:
        answers = {}
        assert self.fake.cancel_waiting(self.jobs["cancelled"]), "nothing to cancel"
        assert self.fake.forget_left(self.jobs["forgotten"]), "nothing to forget"
        # the agent's own callbacks: one on time, the stale one late and from an older build
        body, delivery_id = agent_payload("r-callback", self.name("callback"), 1, "SUCCESS")
        answers["callback"] = platform.callback(body, delivery_id)
        body, delivery_id = agent_payload("r-stale", self.name("stale"), 2, "SUCCESS")
        answers["stale-new"] = platform.callback(body, delivery_id)
        body, delivery_id = agent_payload("r-stale", self.name("stale"), 1, "FAILURE", failed=3)
        answers["stale-old"] = platform.callback(body, delivery_id)
        return answers

    def late_original(self, platform: Platform) -> dict[str, Any]:
        assert self.late is not None
        return platform.callback(*self.late)


def check_final(
    runs: dict[str, dict[str, Any]],
    history: Callable[[str], list[dict[str, Any]]],
) -> None:
    """Every run final, with the expected status and source, closed exactly once."""
    assert not [r for r in runs.values() if r["status"] in ("queued", "running")], runs
    for run_id, (status, source) in EXPECTED.items():
        run = runs[run_id]
        assert (run["status"], run["resultSource"]) == (status, source), (run_id, run)
        finals = [h for h in history(run_id) if h["to"] not in ("queued", "running")]
        assert len(finals) == 1, (run_id, history(run_id))
        assert run["statusReason"], run_id
    for run_id, code in TRIGGER_CODES.items():
        run = runs[run_id]
        assert run["triggerStatus"] == "failed" and run["triggerCode"] == code, run
        assert "fix:" in run["triggerMessage"], run
