"""``ci-report receiver`` as a real process: serves, verifies, stores, and stops cleanly."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

API_KEY = "receiver-cli-test-key-0123456789"


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("JENKINS_", "CI_REPORT_"))}


def _start(tmp_path: Path, **secrets: str) -> tuple[subprocess.Popen[str], str]:
    env = _clean_env()
    env.update(secrets or {"JENKINS_API_KEY": API_KEY})
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
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"listening on (http://127\.0\.0\.1:\d+)/api/jenkins/callback", line)
    assert match, line
    return proc, match.group(1)


def test_receiver_serves_callbacks_and_stops_on_signals(tmp_path: Path) -> None:
    proc, base = _start(tmp_path)
    try:
        (tmp_path / "TEST-a.xml").write_text(
            '<testsuite name="s"><testcase name="a" classname="C"/>'
            '<testcase name="b" classname="C"><failure message="no"/></testcase></testsuite>'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JENKINS_", "CI_REPORT_"))}
        env.update(
            JENKINS_API_KEY=API_KEY,
            CI_REPORT_URL=base + "/api/jenkins/callback",
            CI_REPORT_OUTBOX=str(tmp_path / "outbox"),
            RUN_ID="77",
            WORKSPACE=str(tmp_path),
        )
        sent = subprocess.run(
            [sys.executable, "-m", "ci_report", "callback", "--strict"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        with urllib.request.urlopen(base + "/api/executions/77", timeout=10) as resp:
            row = json.load(resp)
        assert (row["status"], row["passed"], row["failed"], row["total"]) == ("failed", 1, 1, 2)
        assert row["modes"] == "api-key"
    finally:
        proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 5
        rc = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    assert rc == 0
    rest = proc.stderr.read() if proc.stderr else ""
    assert "receiver stopped" in rest and "Traceback" not in rest


def test_receiver_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JENKINS_", "CI_REPORT_"))}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "ci_report",
            "receiver",
            "--port",
            "0",
            "--db",
            str(tmp_path / "r.db"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 78
    assert "needs at least one secret" in res.stderr and "Traceback" not in res.stderr


def test_receiver_says_what_it_refused(tmp_path: Path) -> None:
    """Regression: a refused callback (wrong key) left no line in the receiver's console, so
    a platform team saw nothing arrive; applied ones showed modes as a Python list."""
    proc, base = _start(tmp_path)
    try:
        req = urllib.request.Request(
            base + "/api/jenkins/callback",
            data=b"{}",
            method="POST",
            headers={
                "X-Api-Key": "not-the-key",
                "webhook-id": "msg_wrongkey",
                "webhook-timestamp": str(int(time.time())),
            },
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=10)
        assert info.value.code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=10)
    assert "refused msg_wrongkey on /api/jenkins/callback: HTTP 401 (X-Api-Key does not match)" in (
        err
    ), err


def _send(tmp_path: Path, base: str, **secrets: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "TEST-a.xml").write_text('<testsuite name="s"><testcase name="a"/></testsuite>')
    env = _clean_env()
    env.update(
        secrets,
        CI_REPORT_URL=base + "/api/jenkins/callback",
        CI_REPORT_OUTBOX=str(tmp_path / "outbox"),
        CI_REPORT_MAX_ATTEMPTS="1",
        RUN_ID="78",
        WORKSPACE=str(tmp_path),
    )
    return subprocess.run(
        [sys.executable, "-m", "ci_report", "callback", "--strict"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=10)
    return err


def test_raw_signature_secret_with_a_space_is_kept_whole(tmp_path: Path) -> None:
    """Issue 14: the receiver split JENKINS_SIGNATURE_SECRET on spaces itself, while the sender
    keeps a raw (non-whsec_) secret whole: what the sender signed was then rejected."""
    secret = {"JENKINS_SIGNATURE_SECRET": "raw secret with spaces 0123456789"}
    proc, base = _start(tmp_path, **secret)
    try:
        sent = _send(tmp_path, base, **secret)
    finally:
        err = _stop(proc)
    assert sent.returncode == 0, sent.stderr + err
    assert "(verified by hmac)" in err


def test_jwt_audience_comes_from_the_environment(tmp_path: Path) -> None:
    """Issue 14: --jwt-audience ignored CI_REPORT_JWT_AUDIENCE."""
    secret = {"JENKINS_JWT_SECRET": "jwt-secret-0123456789abcdef0123456789"}
    proc, base = _start(
        tmp_path, **secret, CI_REPORT_JWT_AUDIENCE="https://platform.example/elsewhere"
    )
    try:
        sent = _send(tmp_path, base, **secret)  # the sender's aud: its callback URL
    finally:
        err = _stop(proc)
    assert sent.returncode == 65, sent.stderr
    assert "JWT rejected" in err and "audience" in err.lower()


def test_require_without_its_secret_refuses_to_start(tmp_path: Path) -> None:
    env = _clean_env()
    env.update(JENKINS_API_KEY=API_KEY, CI_REPORT_REQUIRE="hmac")
    res = subprocess.run(
        [sys.executable, "-m", "ci_report", "receiver", "--port", "0", "--db", str(tmp_path / "r")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 78, res.stderr
    assert "--require hmac, but the receiver has no secret for it" in res.stderr
    assert "JENKINS_SIGNATURE_SECRET" in res.stderr and "Traceback" not in res.stderr


def test_require_hmac_refuses_an_api_key_only_callback(tmp_path: Path) -> None:
    whsec = "whsec_" + base64.b64encode(b"r" * 32).decode()
    proc, base = _start(
        tmp_path, JENKINS_API_KEY=API_KEY, JENKINS_SIGNATURE_SECRET=whsec, CI_REPORT_REQUIRE="hmac"
    )
    try:
        key_only = _send(tmp_path, base, JENKINS_API_KEY=API_KEY)
        both = _send(tmp_path, base, JENKINS_API_KEY=API_KEY, JENKINS_SIGNATURE_SECRET=whsec)
    finally:
        err = _stop(proc)
    assert key_only.returncode == 65, key_only.stderr
    assert "required credential not presented: hmac" in err
    assert both.returncode == 0, both.stderr + err
