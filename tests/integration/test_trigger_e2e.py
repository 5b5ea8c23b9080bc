"""ci-report trigger against the fake Jenkins (real HTTP on 127.0.0.1, real subprocesses)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fake_jenkins import FakeJenkins

from ci_report.console import Console
from ci_report.platform.jenkins import JenkinsClient
from ci_report.platform.trigger import Trigger, trigger_build

pytestmark = pytest.mark.integration

FAST = {"poll_interval": 0.05, "poll_max": 0.2}


@pytest.fixture
def jenkins():
    fake = FakeJenkins().start()
    yield fake
    fake.stop()


def _console() -> tuple[Console, io.StringIO]:
    stream = io.StringIO()
    return Console(stream=stream), stream


def _client(fake: FakeJenkins, **kw: Any) -> JenkinsClient:
    return JenkinsClient(fake.url, fake.user, fake.token, **kw)


def _wait_for(predicate, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def _cli(fake: FakeJenkins, tmp_path: Path, *args: str, **kw: Any) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JENKINS_", "CI_REPORT_"))}
    env.update(JENKINS_URL=fake.url, JENKINS_USER=fake.user or "", JENKINS_TOKEN=fake.token)
    return subprocess.Popen(
        [sys.executable, "-m", "ci_report", "trigger", *args, "--poll-interval", "0.05"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_cli_wait_json_folder_and_crumb(tmp_path: Path) -> None:
    fake = FakeJenkins(require_crumb=True).start()
    try:
        fake.add_job(
            "team/app/deploy",
            params=["VERSION", "CI_REPORT_TRIGGER_ID"],
            quiet_period=0.3,
            duration=0.3,
        )
        proc = _cli(fake, tmp_path, "team/app/deploy", "-p", "VERSION=1.4.2", "--wait", "--json")
        out, err = proc.communicate(timeout=30)
    finally:
        fake.stop()
    assert proc.returncode == 0, err
    data = json.loads(out)
    assert data["result"] == "SUCCESS" and data["number"] == 1 and data["merged"] is False
    assert set(data) >= {
        "queueId",
        "merged",
        "number",
        "url",
        "result",
        "durationMs",
        "waitedSeconds",
    }
    assert "In the quiet period" in err
    assert "/job/team/job/app/job/deploy/1/" in err
    assert fake.token not in err
    # the crumb was fetched only after the 403, then the POST retried once
    posts = [(m, p.split("?")[0], s) for m, p, s in fake.log if "crumb" in p or m == "POST"]
    assert [s for _, _, s in posts] == [403, 200, 201]
    build = fake.jobs["team/app/deploy"].builds[1]
    assert ("VERSION", "1.4.2") in build.params
    assert dict(build.params)["CI_REPORT_TRIGGER_ID"] == data["triggerId"]


@pytest.mark.parametrize(
    ("result", "code"), [("FAILURE", 1), ("UNSTABLE", 6), ("ABORTED", 7), ("NOT_BUILT", 7)]
)
def test_result_exit_codes(jenkins: FakeJenkins, result: str, code: int) -> None:
    jenkins.add_job("job", duration=0.1, results=[result])
    console, _ = _console()
    outcome = trigger_build(_client(jenkins), "job", wait=True, console=console, **FAST)
    assert outcome.result == result and outcome.exit_code == code


def test_without_wait_returns_the_build_number(jenkins: FakeJenkins) -> None:
    jenkins.add_job("job", duration=30)
    console, _ = _console()
    outcome = trigger_build(_client(jenkins), "job", console=console, **FAST)
    assert outcome.state == "started" and outcome.number == 1 and outcome.exit_code == 0
    assert outcome.result is None


def test_identical_request_merges_303(jenkins: FakeJenkins) -> None:
    jenkins.add_job("deploy", params=["ENV"], quiet_period=0.6, duration=0.1)
    client = _client(jenkins)
    first = client.trigger("deploy", [("ENV", "prod")], parameterized=True)
    console, stream = _console()
    outcome = trigger_build(client, "deploy", [("ENV", "prod")], console=console, **FAST)
    assert first.merged is False and outcome.merged is True
    assert outcome.queue_id == first.queue_id and outcome.number == 1
    assert "merged into existing queue item" in stream.getvalue()
    assert "CI_REPORT_TRIGGER_ID" in stream.getvalue()
    assert len(jenkins.jobs["deploy"].builds) == 1


def test_trigger_id_keeps_identical_requests_apart(jenkins: FakeJenkins) -> None:
    jenkins.add_job("deploy", params=["ENV", "CI_REPORT_TRIGGER_ID"], quiet_period=0.3)
    client = _client(jenkins)
    console, _ = _console()
    outcomes = []
    threads = [
        threading.Thread(
            target=lambda: outcomes.append(
                trigger_build(client, "deploy", [("ENV", "prod")], console=console, **FAST)
            )
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(outcomes) == 2
    assert not any(o.merged for o in outcomes)
    assert {o.number for o in outcomes} == {1, 2}


def test_stuck_item_warns_once_then_times_out_and_cancels(jenkins: FakeJenkins) -> None:
    job = jenkins.add_job("build", label_offline=True)
    console, stream = _console()
    outcome = trigger_build(
        _client(jenkins),
        "build",
        queue_timeout=0.8,
        cancel_on_timeout=True,
        console=console,
        **FAST,
    )
    text = stream.getvalue()
    assert outcome.state == "timed-out" and outcome.exit_code == 5
    assert text.count("is stuck") == 1
    assert "All nodes of label" in text
    assert "cancelled queue item" in text
    item = jenkins.queue[outcome.queue_id]
    assert item.cancelled and not job.builds


def test_blocked_item_prints_why(jenkins: FakeJenkins) -> None:
    job = jenkins.add_job("serial", concurrent=False, duration=0.5)
    jenkins.add_build(job, building=True)  # #1 runs for an hour
    job.builds[1].duration = 0.6
    console, stream = _console()
    outcome = trigger_build(_client(jenkins), "serial", wait=True, console=console, **FAST)
    assert "Build #1 is already in progress" in stream.getvalue()
    assert outcome.number == 2 and outcome.result == "SUCCESS"


def test_cancelled_in_the_queue(jenkins: FakeJenkins) -> None:
    jenkins.add_job("slow", quiet_period=30)
    client = _client(jenkins)
    console, _ = _console()
    result: list[Any] = []
    thread = threading.Thread(
        target=lambda: result.append(trigger_build(client, "slow", console=console, **FAST))
    )
    thread.start()
    _wait_for(lambda: jenkins.queue)
    qid = next(iter(jenkins.queue))
    assert client.cancel_queue_item(qid) == "cancelled"
    thread.join(10)
    assert result[0].state == "cancelled" and result[0].exit_code == 4


def test_expired_queue_item_found_by_queue_id(jenkins: FakeJenkins) -> None:
    jenkins.left_ttl = -1.0  # the item 404s as soon as it leaves the queue
    jenkins.add_job("job", quiet_period=0.2, duration=0.2)
    console, stream = _console()
    outcome = trigger_build(_client(jenkins), "job", wait=True, console=console, **FAST)
    assert outcome.result == "SUCCESS" and outcome.number == 1
    assert "found its build by queueId" in stream.getvalue()


def test_controller_restart_while_waiting(jenkins: FakeJenkins) -> None:
    jenkins.add_job("job", quiet_period=0.1, duration=2.0)
    console, stream = _console()
    trigger = Trigger(
        _client(jenkins, connect_timeout=0.5, read_timeout=2),
        "job",
        wait=True,
        console=console,
        **FAST,
    )
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(trigger.run()))
    thread.start()
    _wait_for(lambda: jenkins.jobs["job"].builds)
    jenkins.restart(down_for=1.0)  # connection refused for a second
    thread.join(20)
    text = stream.getvalue()
    assert result and result[0].result == "SUCCESS" and result[0].number == 1
    assert "waiting for Jenkins to come back" in text
    assert "Jenkins answers again" in text


def test_restart_forgets_left_item_build_found_by_queue_id(jenkins: FakeJenkins) -> None:
    jenkins.add_job("job", quiet_period=0.0, duration=0.5)
    client = _client(jenkins)
    response = client.trigger("job", [], parameterized=False)
    _wait_for(lambda: jenkins.jobs["job"].builds)
    jenkins.restart(down_for=0.1)  # the LeftItem cache is in memory only
    assert client.queue_item(response.queue_id) is None
    console, _ = _console()
    trigger = Trigger(client, "job", wait=True, console=console, **FAST)
    trigger.outcome.queue_id = response.queue_id
    trigger._start = time.monotonic()
    assert trigger._wait_queue()
    trigger._wait_build()
    assert trigger.outcome.number == 1 and trigger.outcome.result == "SUCCESS"


def test_post_timeout_after_queueing_found_by_trigger_id(jenkins: FakeJenkins) -> None:
    job = jenkins.add_job("deploy", params=["CI_REPORT_TRIGGER_ID"], quiet_period=1.0, duration=0.1)
    jenkins.hang_trigger = 1.5  # queues the item, answers after the client gave up
    console, stream = _console()
    outcome = trigger_build(
        _client(jenkins, read_timeout=0.4), "deploy", wait=True, console=console, **FAST
    )
    assert outcome.result == "SUCCESS", stream.getvalue()
    assert "carries trigger id" in stream.getvalue()
    assert len(jenkins.builds_with_param(job, "CI_REPORT_TRIGGER_ID", outcome.trigger_id)) == 1
    assert len(job.builds) == 1


def test_post_timeout_without_trigger_id_is_unknown(jenkins: FakeJenkins) -> None:
    jenkins.add_job("deploy", params=["ENV"], quiet_period=1.0)
    jenkins.hang_trigger = 1.0
    console, _ = _console()
    outcome = trigger_build(
        _client(jenkins, read_timeout=0.3), "deploy", [("ENV", "x")], console=console, **FAST
    )
    assert outcome.state == "lost" and outcome.exit_code == 3
    assert "trigger outcome unknown" in outcome.message
    # the client has had its answer or given up on every request it sent, so each has arrived;
    # wait until the fake has finished them all (the hung POST included): observed, not slept
    _wait_for(jenkins.idle)
    # counted on arrival: an identical re-POST would merge into the same queue item, so the
    # queue alone cannot see it
    assert len(jenkins.received_posts("/buildWithParameters")) == 1
    assert len(jenkins.queue) == 1


def test_unknown_job_exits_2(jenkins: FakeJenkins, tmp_path: Path) -> None:
    proc = _cli(jenkins, tmp_path, "no/such/job")
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "not found" in err


def test_sigterm_cancels_the_queue_item(jenkins: FakeJenkins, tmp_path: Path) -> None:
    jenkins.add_job("slow", quiet_period=60)
    proc = _cli(jenkins, tmp_path, "slow", "--wait")
    _wait_for(
        lambda: jenkins.queue and any(e[0] == "GET" and "/queue/item/" in e[1] for e in jenkins.log)
    )
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert time.monotonic() - start < 5
    assert proc.returncode == 143, err
    assert "cancelled queue item" in err
    assert all(item.cancelled for item in jenkins.queue.values())


def test_sigterm_stops_the_running_build(jenkins: FakeJenkins, tmp_path: Path) -> None:
    job = jenkins.add_job("long", duration=60)
    proc = _cli(jenkins, tmp_path, "long", "--wait")
    _wait_for(lambda: any("/job/long/1/api/json" in e[1] for e in jenkins.log))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 143, err
    assert "asked Jenkins to stop build #1" in err
    assert job.builds[1].stopped


def test_token_in_jenkins_url_works_and_is_never_printed(
    jenkins: FakeJenkins, tmp_path: Path
) -> None:
    jenkins.add_job("app", duration=0.1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JENKINS_", "CI_REPORT_"))}
    env["JENKINS_URL"] = f"http://{jenkins.user}:{jenkins.token}@127.0.0.1:{jenkins.port}/"
    proc = subprocess.run(
        [sys.executable, "-m", "ci_report", "--debug", "trigger", "app", "--wait", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"] == "SUCCESS"
    assert "anonymous" not in proc.stderr  # the URL's credentials are used, not ignored
    assert jenkins.token not in proc.stdout + proc.stderr
    # wrong token in the URL: the 401 and its --debug traceback never show it either
    env["JENKINS_URL"] = f"http://{jenkins.user}:wrong-token-4242@127.0.0.1:{jenkins.port}/"
    proc = subprocess.run(
        [sys.executable, "-m", "ci_report", "--debug", "trigger", "app"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "HTTP 401" in proc.stderr
    assert "wrong-token-4242" not in proc.stdout + proc.stderr


def test_sigterm_with_json_still_names_the_build(jenkins: FakeJenkins, tmp_path: Path) -> None:
    jenkins.add_job("long", duration=60)
    proc = _cli(jenkins, tmp_path, "long", "--wait", "--json")
    _wait_for(lambda: any("/job/long/1/api/json" in e[1] for e in jenkins.log))
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 143, err
    data = json.loads(out)
    assert data["outcome"] == "interrupted" and data["number"] == 1
    assert data["queueId"] is not None
