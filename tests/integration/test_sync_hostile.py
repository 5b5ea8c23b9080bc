"""``sync`` against a hostile Jenkins on 127.0.0.1 (issue 9 finding 6): a URL in the artifact,
a foreign runId, huge answers and slow answers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_server import API_KEY, AUTH_ENV, FAST_ENV
from hostile_jenkins import HostileJenkins

from ci_report.callback.payload import canonical_body
from ci_report.callback.result_file import write_result_file
from ci_report.config import load_settings
from ci_report.console import Console
from ci_report.errors import ConfigError
from ci_report.platform.jenkins import JenkinsClient
from ci_report.platform.receiver import start_receiver
from ci_report.platform.sync import sync_build, sync_one

pytestmark = pytest.mark.integration

PAYLOAD = {
    "runId": 64,
    "status": "success",
    "passedCases": 1,
    "failedCases": 0,
    "skippedCases": 0,
    "durationMs": 1000,
    "results": [],
    "schema": "ci-report/callback/v1",
    "errorCases": 0,
    "totalCases": 1,
    "build": {"jobName": "app", "buildNumber": 7},
    "reports": {"files": 1, "parseErrors": []},
    "resultsTruncated": False,
}


@pytest.fixture
def hostile() -> Iterator[HostileJenkins]:
    server = HostileJenkins().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def evil() -> Iterator[Any]:
    """A receiver at the URL the Jenkinsfile wrote into the artifact: it takes the platform's
    own key, so anything sent there would be applied (and counted)."""
    handle = start_receiver(api_keys=[API_KEY])
    try:
        yield handle
    finally:
        handle.stop()


def _archived(tmp_path: Path, url: str, run_id: Any = 64) -> bytes:
    body = canonical_body({**PAYLOAD, "runId": run_id})
    path = write_result_file(
        tmp_path / "ws" / "callback.json",
        payload_bytes=body,
        delivery_id="msg_0123456789abcdef0123456789abcdef",
        url=url,
        outcome="queued",
        attempts=8,
        status_code=None,
        error="connect timeout",
    )
    return path.read_bytes()


def _settings(tmp_path: Path, url: str | None) -> Any:
    env = {**AUTH_ENV, **FAST_ENV, "CI_REPORT_OUTBOX": str(tmp_path / "outbox")}
    if url:
        env["CI_REPORT_URL"] = url
    return load_settings({}, env=env, cwd=tmp_path)


def _console() -> Console:
    return Console(stream=io.StringIO())


def test_url_in_the_artifact_is_never_used(
    hostile: HostileJenkins, evil: Any, receiver: Any, tmp_path: Path
) -> None:
    hostile.artifact = _archived(tmp_path, evil.url + "?steal=1")
    client = JenkinsClient(hostile.url, "u", "t")
    out = sync_build(
        client, "app", 7, _settings(tmp_path, receiver.url), deliver=True, console=_console()
    )
    assert out.delivery == "delivered" and out.url == receiver.url
    assert [e["run_id"] for e in receiver.executions()] == ["64"]
    assert evil.requests() == []
    assert any("archived file names the URL" in n and "ignored" in n for n in out.notes)


def test_without_a_configured_url_sync_refuses_rather_than_use_the_artifacts(
    hostile: HostileJenkins, evil: Any, tmp_path: Path
) -> None:
    """The README example (no --url) used to send the platform's key, JWT and signature to the
    URL written in the artifact."""
    hostile.artifact = _archived(tmp_path, evil.url)
    client = JenkinsClient(hostile.url, "u", "t")
    with pytest.raises(ConfigError, match="no callback URL") as info:
        sync_build(client, "app", 7, _settings(tmp_path, None), deliver=True, console=_console())
    assert "archived file" in (info.value.cause or "")
    dry = sync_build(client, "app", 7, _settings(tmp_path, None), console=_console())
    assert dry.url is None
    assert evil.requests() == []


def test_cli_without_url_sends_nothing_to_the_artifacts_url(
    hostile: HostileJenkins, evil: Any, tmp_path: Path
) -> None:
    hostile.artifact = _archived(tmp_path, evil.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JENKINS_", "CI_REPORT_"))}
    env.update(AUTH_ENV, JENKINS_URL=hostile.url, CI_REPORT_OUTBOX=str(tmp_path / "outbox"))
    res = subprocess.run(
        [sys.executable, "-m", "ci_report", "sync", "app", "7", "--deliver"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2, res.stderr
    assert "no callback URL" in res.stderr and "Traceback" not in res.stderr
    assert evil.requests() == []


def test_foreign_run_id_is_refused(hostile: HostileJenkins, receiver: Any, tmp_path: Path) -> None:
    hostile.artifact = _archived(tmp_path, receiver.url, run_id=999)
    client = JenkinsClient(hostile.url, "u", "t")
    out = sync_one(
        client,
        "app",
        7,
        _settings(tmp_path, receiver.url),
        deliver=True,
        run_id="64",
        console=_console(),
    )
    assert out.state == "error" and out.exit_code == 2
    assert "runId 999, not 64: refused" in (out.error or "")
    assert out.delivery is None and receiver.requests() == []
    same = sync_one(
        client,
        "app",
        7,
        _settings(tmp_path, receiver.url),
        deliver=True,
        run_id="999",
        console=_console(),
    )
    assert same.delivery == "delivered"


@pytest.mark.parametrize("mode", ["huge", "huge-declared"])
def test_huge_artifact_is_refused_at_the_cap(
    hostile: HostileJenkins, tmp_path: Path, mode: str
) -> None:
    hostile.artifact = b"{}"
    hostile.artifact_mode = mode
    client = JenkinsClient(hostile.url, "u", "t", max_response_bytes=4 * 1024 * 1024)
    out = sync_one(client, "app", 7, _settings(tmp_path, None), console=_console())
    assert out.state == "error" and "larger than 4 MB" in (out.error or "")
    assert hostile.bytes_sent < 300 * 1024 * 1024  # the client stopped reading


def test_huge_json_answer_is_refused_at_the_cap(hostile: HostileJenkins, tmp_path: Path) -> None:
    hostile.json_mode = "huge"
    client = JenkinsClient(hostile.url, "u", "t", max_response_bytes=2 * 1024 * 1024)
    out = sync_one(client, "app", 7, _settings(tmp_path, None), console=_console())
    assert out.state == "error" and "larger than 2 MB" in (out.error or "")


@pytest.mark.parametrize("where", ["artifact", "json", "headers"])
def test_slow_answers_are_cut_at_the_deadline(
    hostile: HostileJenkins, tmp_path: Path, where: str
) -> None:
    """A byte every 50 ms never trips a read timeout; the overall deadline stops it, in the
    body (read_bounded) and in the status line and headers (the watchdog)."""
    hostile.artifact = _archived(tmp_path, "http://127.0.0.1:9/x")
    if where == "artifact":
        hostile.artifact_mode = "slow"
    elif where == "json":
        hostile.json_mode = "slow"
    else:
        hostile.json_mode = "slow-head"
    client = JenkinsClient(hostile.url, "u", "t", read_timeout=5, request_deadline=1.0)
    out = sync_one(client, "app", 7, _settings(tmp_path, None), console=_console())
    assert out.state == "error" and out.exit_code == 1
    assert "did not arrive within" in (out.error or "")


def test_a_300_mb_artifact_costs_at_most_the_cap_in_memory(
    hostile: HostileJenkins, tmp_path: Path
) -> None:
    """The CLI as a process: its peak RSS stays far below the 300 MB answer (old code: 1.2 GB)."""
    hostile.artifact = b"{}"
    hostile.artifact_mode = "huge"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JENKINS_", "CI_REPORT_"))}
    env.update(AUTH_ENV, JENKINS_URL=hostile.url, CI_REPORT_OUTBOX=str(tmp_path / "outbox"))
    probe = (
        "import resource, subprocess, sys;"
        "r = subprocess.run([sys.executable, '-m', 'ci_report', 'sync', 'app', '7', '--json'],"
        " capture_output=True, text=True);"
        "print(json.dumps({'rc': r.returncode, 'out': r.stdout, 'err': r.stderr,"
        " 'maxrss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))"
    )
    started = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-c", "import json;" + probe],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(res.stdout)
    assert report["rc"] == 2, report["err"]
    assert "is larger than 32 MB: not read" in report["err"] and "Traceback" not in report["err"]
    peak_mb = report["maxrss_kb"] / 1024
    print(f"peak RSS {peak_mb:.0f} MB for a 300 MB artifact in {time.monotonic() - started:.1f} s")
    assert peak_mb < 250, f"peak RSS {peak_mb:.0f} MB"
