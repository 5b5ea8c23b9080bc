"""ci-report sync: the fake Jenkins as the source, the project's receiver as the platform."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from fake_jenkins import FakeJenkins
from fault_server import AUTH_ENV, FAST_ENV, Cli, applied

from ci_report.callback.delivery import deliver
from ci_report.callback.payload import canonical_body, make_delivery_id
from ci_report.callback.result_file import write_result_file
from ci_report.config import load_settings
from ci_report.console import Console
from ci_report.jenkins_env import BuildContext
from ci_report.platform.jenkins import JenkinsClient
from ci_report.platform.sync import sync_build

pytestmark = pytest.mark.integration

TEST_REPORT = {
    "_class": "hudson.tasks.junit.TestResult",
    "duration": 1.5,
    "empty": False,
    "failCount": 1,
    "passCount": 2,
    "skipCount": 1,
    "suites": [
        {
            "name": "tests.test_api",
            "cases": [
                {
                    "className": "tests.test_api",
                    "name": "test_ok",
                    "status": "PASSED",
                    "duration": 0.25,
                },
                {
                    "className": "tests.test_api",
                    "name": "test_fixed",
                    "status": "FIXED",
                    "duration": 0.5,
                },
                {
                    "className": "tests.test_api",
                    "name": "test_bad",
                    "status": "REGRESSION",
                    "duration": 0.75,
                    "errorDetails": "assert 1 == 2",
                },
                {
                    "className": "tests.test_api",
                    "name": "test_skip",
                    "status": "SKIPPED",
                    "duration": 0.0,
                    "skipped": True,
                },
            ],
        }
    ],
}


@pytest.fixture
def jenkins():
    fake = FakeJenkins().start()
    yield fake
    fake.stop()


def _settings(tmp_path: Path, url: str) -> Any:
    env = {
        **AUTH_ENV,
        **FAST_ENV,
        "CI_REPORT_URL": url,
        "CI_REPORT_OUTBOX": str(tmp_path / "outbox"),
    }
    return load_settings({}, env=env, cwd=tmp_path)


def _client(fake: FakeJenkins) -> JenkinsClient:
    return JenkinsClient(fake.url, fake.user, fake.token)


def _archived_callback(tmp_path: Path, url: str, run_id: int = 64) -> tuple[bytes, str, bytes]:
    """What the build's own `ci-report callback` archived: (body, delivery id, file bytes)."""
    payload = {
        "runId": run_id,
        "status": "failed",
        "passedCases": 10,
        "failedCases": 1,
        "skippedCases": 0,
        "durationMs": 120000,
        "results": [
            {
                "caseId": 1,
                "caseName": "test_case_1",
                "className": "t",
                "status": "failed",
                "duration": 120000,
                "errorMessage": "Test failed",
            }
        ],
        "schema": "ci-report/callback/v1",
        "errorCases": 0,
        "totalCases": 11,
        "build": {
            "jobName": "team/app",
            "buildNumber": 1,
            "buildUrl": None,
            "result": "UNSTABLE",
            "node": "agent-1",
            "gitCommit": None,
            "gitBranch": None,
            "changeId": None,
        },
        "reports": {"files": 1, "parseErrors": []},
        "resultsTruncated": False,
    }
    body = canonical_body(payload)
    context = BuildContext(jenkins_url="https://ci.example/", job_name="team/app", build_number=1)
    delivery_id = make_delivery_id(context, body)
    path = write_result_file(
        tmp_path / "ws" / "callback.json",
        payload_bytes=body,
        delivery_id=delivery_id,
        url=url,
        outcome="queued",
        attempts=8,
        status_code=None,
        error="connect timeout",
    )
    return body, delivery_id, path.read_bytes()


@pytest.mark.parametrize("late_original_first", [False, True])
def test_sync_and_late_original_apply_once(
    jenkins: FakeJenkins, receiver: Any, tmp_path: Path, late_original_first: bool
) -> None:
    settings = _settings(tmp_path, receiver.url)
    body, delivery_id, archived = _archived_callback(tmp_path, receiver.url)
    job = jenkins.add_job("team/app")
    jenkins.add_build(job, result="UNSTABLE", artifacts={"ci-report/callback.json": archived})
    console = Console(stream=io.StringIO())

    def late_original() -> None:
        result = deliver(
            body, delivery_id, receiver.url, settings, console=console, subject="team/app#1"
        )
        assert result.outcome == "delivered"

    if late_original_first:
        late_original()
    outcome = sync_build(_client(jenkins), "team/app", 1, settings, deliver=True, console=console)
    if not late_original_first:
        late_original()
    assert outcome.source == "artifact" and outcome.delivery == "delivered"
    assert outcome.delivery_id == delivery_id and outcome.body == body
    executions = applied(receiver)
    assert list(executions) == ["64"]
    assert executions["64"]["applied_count"] == 1
    assert executions["64"]["webhook_id"] == delivery_id
    # both requests reached the receiver; the second was answered from the dedupe store
    assert sum(1 for r in receiver.requests() if r["webhook_id"] == delivery_id) == 2


def test_no_artifact_uses_jenkins_test_report(
    jenkins: FakeJenkins, receiver: Any, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, receiver.url)
    job = jenkins.add_job("team/app/main")
    jenkins.add_build(
        job,
        result="UNSTABLE",
        test_report=TEST_REPORT,
        git_commit="0123456789abcdef0123456789abcdef01234567",
    )
    outcome = sync_build(
        _client(jenkins),
        "team/app/main",
        1,
        settings,
        deliver=True,
        run_id="77",
        console=Console(stream=io.StringIO()),
    )
    assert outcome.source == "test-report" and outcome.delivery == "delivered"
    payload = applied(receiver)["77"]["payload"]
    assert payload["runId"] == 77 and payload["status"] == "failed"
    assert (
        payload["passedCases"],
        payload["failedCases"],
        payload["skippedCases"],
        payload["totalCases"],
    ) == (2, 1, 1, 4)
    assert payload["errorCases"] is None  # Jenkins does not say
    statuses = {r["caseName"]: r["status"] for r in payload["results"]}
    assert statuses == {
        "test_ok": "passed",
        "test_fixed": "passed",
        "test_bad": "failed",
        "test_skip": "skipped",
    }
    assert payload["results"][0]["caseName"] == "test_bad"  # failures first
    assert payload["results"][0]["errorMessage"] == "assert 1 == 2"
    assert (
        payload["build"]["gitCommit"].startswith("0123") and payload["build"]["gitBranch"] == "main"
    )
    assert payload["reports"]["source"] == "jenkins-test-report"


def test_no_data_is_status_only(jenkins: FakeJenkins, tmp_path: Path) -> None:
    settings = _settings(tmp_path, "http://127.0.0.1:9/api/jenkins/callback")
    job = jenkins.add_job("app")
    jenkins.add_build(job, result="FAILURE")
    outcome = sync_build(
        _client(jenkins), "app", 1, settings, run_id="5", console=Console(stream=io.StringIO())
    )
    assert outcome.source == "status-only" and outcome.delivery is None  # not sent
    payload = outcome.payload
    assert payload is not None
    assert payload["status"] == "failed" and payload["totalCases"] == 0
    assert payload["reports"]["files"] == 0 and "status only" in payload["reports"]["note"]
    assert payload["results"] == []


def test_running_build_sends_nothing(jenkins: FakeJenkins, receiver: Any, tmp_path: Path) -> None:
    settings = _settings(tmp_path, receiver.url)
    job = jenkins.add_job("app")
    jenkins.add_build(job, building=True)
    outcome = sync_build(
        _client(jenkins), "app", 1, settings, deliver=True, console=Console(stream=io.StringIO())
    )
    assert outcome.state == "running" and outcome.exit_code == 0
    assert receiver.requests() == []


def test_cli_single_dry_run_and_missing_build(jenkins: FakeJenkins, cli: Cli) -> None:
    job = jenkins.add_job("team/app")
    jenkins.add_build(job, result="SUCCESS", test_report=TEST_REPORT)
    env = cli.env(JENKINS_URL=jenkins.url, JENKINS_USER=jenkins.user, JENKINS_TOKEN=jenkins.token)
    res = cli.run(["sync", "team/app", "1", "--run-id", "9"], env=env)
    assert res.returncode == 0, res
    assert json.loads(res.stdout)["passedCases"] == 2
    assert "would send" in res.stderr and jenkins.token not in res.stderr
    res = cli.run(["sync", "team/app", "7"], env=env)
    assert res.returncode == 3, res
    assert "no build #7" in res.stderr


def test_cli_batch_with_max(jenkins: FakeJenkins, receiver: Any, cli: Cli, tmp_path: Path) -> None:
    job = jenkins.add_job("team/app")
    jenkins.add_build(job, result="SUCCESS", test_report=TEST_REPORT)  # 1
    jenkins.add_build(job, building=True)  # 2
    jenkins.add_build(job, result="FAILURE")  # 3
    batch = tmp_path / "stuck.jsonl"
    batch.write_text(
        "# runs that never got their callback\n"
        + "\n".join(
            json.dumps({"runId": 100 + n, "job": "team/app", "build": n}) for n in (1, 2, 3, 9)
        )
        + "\n"
    )
    env = cli.env(
        JENKINS_URL=jenkins.url,
        JENKINS_USER=jenkins.user,
        JENKINS_TOKEN=jenkins.token,
        CI_REPORT_URL=receiver.url,
    )
    res = cli.run(["sync", "--from", str(batch), "--max", "3", "--deliver", "--json"], env=env)
    assert res.returncode == 0, res
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [(d["build"], d["state"], d["delivery"]) for d in lines] == [
        (1, "recovered", "delivered"),
        (2, "running", None),
        (3, "recovered", "delivered"),
    ]
    assert sorted(applied(receiver)) == ["101", "103"]
    assert "first 3 of 4 entries" in res.stderr


def test_cli_jenkins_down_or_job_missing_is_said_plainly(jenkins: FakeJenkins, cli: Cli) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    env = cli.env(JENKINS_URL=dead, JENKINS_USER=jenkins.user, JENKINS_TOKEN=jenkins.token)
    res = cli.run(["sync", "team/app", "1", "--run-id", "64", "--json"], env=env)
    # not 3 ("nothing to recover": a platform would give up on the run)
    assert res.returncode == 1, res
    line = json.loads(res.stdout)
    assert (line["state"], line["runId"]) == ("error", 64)
    assert "connection refused" in line["error"] and "HTTPConnectionPool" not in res.stderr
    env = cli.env(JENKINS_URL=jenkins.url, JENKINS_USER=jenkins.user, JENKINS_TOKEN=jenkins.token)
    res = cli.run(["sync", "team/nope", "1"], env=env)
    assert res.returncode == 3, res
    assert "no job 'team/nope'" in res.stderr and "no build" not in res.stderr
