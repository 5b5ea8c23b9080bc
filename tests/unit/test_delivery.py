"""The retry loop: classification, re-signing, Retry-After, deadline, redirects, hints."""

from __future__ import annotations

import email.utils
import itertools
import json
import time
from pathlib import Path

import jwt
import pytest
import requests

from ci_report.callback import auth
from ci_report.callback import delivery as delivery_module
from ci_report.callback.delivery import (
    RETRY_STATUSES,
    backoff_delay,
    deliver,
    parse_retry_after,
)
from ci_report.errors import ConfigError
from ci_report.verify import CallbackVerifier

pytestmark = pytest.mark.usefixtures("clean_env")

URL = "https://platform.example.com/api/jenkins/callback"
BODY = b'{"runId":64,"status":"success"}'
ID = "msg_0123456789abcdef0123456789abcdef"
JWT_SECRET = "jwt-secret-for-delivery-tests-0123456789"
API_KEY = "api-key-for-delivery-tests"


@pytest.fixture
def settings(make_settings):
    return make_settings(
        api_key=API_KEY, jwt_secret=JWT_SECRET, signature_secret="hmac-secret-0123456789abcdef"
    )


class Sleeps(list):
    """An injected ``sleep`` that records the delays instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def run(settings, **kwargs):
    sleeps = Sleeps()
    kwargs.setdefault("sleep", sleeps)
    kwargs.setdefault("subject", "team/app#42")
    result = deliver(BODY, ID, kwargs.pop("url", URL), settings, **kwargs)
    return result, sleeps


def test_2xx_first_try(requests_mock, settings, captured_console) -> None:
    requests_mock.post(URL, status_code=202, text="accepted")
    result, sleeps = run(settings, console=captured_console)
    assert result.outcome == "delivered" and result.delivered
    assert result.attempts == 1
    assert result.status_code == 202
    assert result.error is None
    assert sleeps == []
    request = requests_mock.last_request
    assert request.body == BODY  # the exact bytes, never re-serialised
    assert request.headers["webhook-id"] == ID
    assert request.headers["Idempotency-Key"] == ID
    assert request.headers["X-Api-Key"] == API_KEY
    assert request.headers["Authorization"].startswith("Bearer ")
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.timeout == (settings.connect_timeout, settings.read_timeout)


def test_each_attempt_verifies_at_the_receiver(requests_mock, settings, captured_console) -> None:
    requests_mock.post(URL, [{"status_code": 503}, {"status_code": 200}])
    run(settings, console=captured_console)
    verifier = CallbackVerifier(
        api_keys=[API_KEY],
        jwt_secrets=[JWT_SECRET],
        signature_secrets=["hmac-secret-0123456789abcdef"],
        jwt_audience=URL,
    )
    for request in requests_mock.request_history:
        verified = verifier.verify(request.body, request.headers)
        assert sorted(verified.modes) == ["api-key", "hmac", "jwt"]


def test_503_503_200_resigned_each_attempt(
    requests_mock, settings, monkeypatch, captured_console
) -> None:
    clock = itertools.count(1_700_000_000, 5)
    monkeypatch.setattr(auth.time, "time", lambda: next(clock))
    requests_mock.post(URL, [{"status_code": 503}, {"status_code": 503}, {"status_code": 200}])
    result, sleeps = run(settings, console=captured_console)
    assert result.outcome == "delivered"
    assert result.attempts == 3
    assert len(sleeps) == 2
    history = requests_mock.request_history
    assert len(history) == 3
    timestamps = [r.headers["webhook-timestamp"] for r in history]
    signatures = [r.headers["webhook-signature"] for r in history]
    tokens = [r.headers["Authorization"][7:] for r in history]
    assert len(set(timestamps)) == 3
    assert len(set(signatures)) == 3
    jtis = {jwt.decode(t, options={"verify_signature": False})["jti"] for t in tokens}
    assert len(jtis) == 3
    assert {r.headers["webhook-id"] for r in history} == {ID}
    assert {r.headers["Idempotency-Key"] for r in history} == {ID}
    assert {r.body for r in history} == {BODY}
    assert "attempt 1/8 failed (HTTP 503)" in captured_console.text


@pytest.mark.parametrize("status", sorted(RETRY_STATUSES))
def test_retryable_statuses(requests_mock, settings, status, captured_console) -> None:
    requests_mock.post(URL, [{"status_code": status}, {"status_code": 200}])
    result, _ = run(settings, console=captured_console)
    assert result.delivered and result.attempts == 2


def test_retry_after_seconds_honoured(requests_mock, settings, captured_console) -> None:
    requests_mock.post(
        URL, [{"status_code": 429, "headers": {"Retry-After": "7"}}, {"status_code": 200}]
    )
    result, sleeps = run(settings, console=captured_console)
    assert result.delivered
    assert len(sleeps) == 1 and sleeps[0] >= 7


def test_retry_after_http_date_honoured(requests_mock, settings, captured_console) -> None:
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    requests_mock.post(
        URL, [{"status_code": 503, "headers": {"Retry-After": when}}, {"status_code": 200}]
    )
    result, sleeps = run(settings, console=captured_console)
    assert result.delivered
    assert 17 <= sleeps[0] <= 21


def test_retry_after_beyond_deadline_stops_queued(
    requests_mock, settings, captured_console
) -> None:
    requests_mock.post(URL, status_code=429, headers={"Retry-After": "3600"})
    result, sleeps = run(settings, console=captured_console)
    assert result.outcome == "queued"
    assert result.attempts == 1
    assert sleeps == []
    assert result.error == "HTTP 429"
    assert any("deadline" in n for n in result.notes)


def test_401_rejected_once_with_fix(requests_mock, settings, captured_console) -> None:
    requests_mock.post(URL, status_code=401, text="bad signature")
    result, sleeps = run(settings, console=captured_console)
    assert result.outcome == "rejected"
    assert result.attempts == 1
    assert requests_mock.call_count == 1
    assert sleeps == []
    assert result.response_excerpt == "bad signature"
    assert any("secrets bound in Jenkins" in h for h in result.hints)
    assert not any("clock" in h for h in result.hints)


def test_401_with_skewed_date_gives_clock_hint_first(
    requests_mock, settings, captured_console
) -> None:
    server_date = email.utils.formatdate(time.time() - 600, usegmt=True)
    requests_mock.post(URL, status_code=401, headers={"Date": server_date})
    result, _ = run(settings, console=captured_console)
    assert result.outcome == "rejected"
    assert "clock" in result.hints[0] and "ahead of" in result.hints[0]
    assert "NTP" in result.hints[0]
    assert any("secrets bound in Jenkins" in h for h in result.hints)


@pytest.mark.parametrize(("status", "word"), [(403, "permissions"), (404, "/api/jenkins/callback")])
def test_other_4xx_rejected_with_hint(requests_mock, settings, status, word, captured_console):
    requests_mock.post(URL, status_code=status)
    result, _ = run(settings, console=captured_console)
    assert result.outcome == "rejected" and result.attempts == 1
    assert any(word in h for h in result.hints)


def test_302_rejected_not_followed(requests_mock, settings, captured_console) -> None:
    requests_mock.post(URL, status_code=302, headers={"Location": "https://elsewhere/x"})
    requests_mock.get("https://elsewhere/x", status_code=200)
    requests_mock.post("https://elsewhere/x", status_code=200)
    result, sleeps = run(settings, console=captured_console)
    assert result.outcome == "rejected"
    assert result.attempts == 1
    assert requests_mock.call_count == 1
    assert requests_mock.request_history[0].url == URL
    assert "https://elsewhere/x" in (result.error or "")
    assert any("redirects are not followed" in h for h in result.hints)
    assert sleeps == []


def test_501_not_retried_but_queued(requests_mock, settings, captured_console) -> None:
    requests_mock.post(URL, status_code=501)
    result, _ = run(settings, console=captured_console)
    assert result.outcome == "queued" and result.attempts == 1


def test_connection_error_retried_then_queued(requests_mock, settings, captured_console) -> None:
    refused = requests.exceptions.ConnectionError(ConnectionRefusedError(111, "Connection refused"))
    requests_mock.post(URL, exc=refused)
    result, sleeps = run(settings, console=captured_console, max_attempts=3)
    assert result.outcome == "queued"
    assert result.attempts == 3
    assert requests_mock.call_count == 3
    assert len(sleeps) == 2
    assert result.status_code is None
    assert "connection refused" in (result.error or "")
    assert any("gave up after 3 attempts" in n for n in result.notes)


def test_read_timeout_retried(requests_mock, settings, captured_console) -> None:
    requests_mock.post(
        URL, [{"exc": requests.exceptions.ReadTimeout("slow")}, {"status_code": 200}]
    )
    result, _ = run(settings, console=captured_console)
    assert result.delivered and result.attempts == 2


def test_tls_error_not_retried(requests_mock, settings, captured_console) -> None:
    requests_mock.post(URL, exc=requests.exceptions.SSLError("certificate verify failed"))
    result, sleeps = run(settings, console=captured_console)
    assert result.outcome == "queued"
    assert result.attempts == 1 and sleeps == []
    assert (result.error or "").startswith("TLS error")
    assert any("--ca-bundle" in h for h in result.hints)


def test_max_attempts_from_settings(requests_mock, make_settings, captured_console) -> None:
    settings = make_settings(api_key=API_KEY, max_attempts=4)
    requests_mock.post(URL, status_code=500)
    result, sleeps = run(settings, console=captured_console)
    assert result.attempts == 4 and requests_mock.call_count == 4
    assert len(sleeps) == 3
    assert result.outcome == "queued"


def test_default_schedule_within_bounds(requests_mock, make_settings, captured_console) -> None:
    settings = make_settings(api_key=API_KEY)
    requests_mock.post(URL, status_code=503)
    result, sleeps = run(settings, console=captured_console)
    assert result.attempts == 8
    assert len(sleeps) == 7
    for n, delay in enumerate(sleeps, start=1):
        d = min(60.0, 2 ** (n - 1))
        assert d / 2 <= delay <= d


def test_deadline_respected(requests_mock, make_settings, monkeypatch, captured_console) -> None:
    clock = {"now": 1000.0}
    monkeypatch.setattr(delivery_module.time, "monotonic", lambda: clock["now"])

    def sleep(seconds: float) -> None:
        clock["now"] += seconds

    settings = make_settings(api_key=API_KEY, deadline=20.0)
    requests_mock.post(URL, status_code=503)
    result = deliver(BODY, ID, URL, settings, sleep=sleep, console=captured_console)
    assert result.outcome == "queued"
    assert clock["now"] - 1000.0 <= 20.0
    assert 3 <= result.attempts < 8
    assert any("deadline" in n for n in result.notes)


def test_quiet_prints_no_retry_lines(requests_mock, settings, captured_console) -> None:
    requests_mock.post(URL, [{"status_code": 503}, {"status_code": 200}])
    run(settings, console=captured_console, quiet=True)
    assert "retrying" not in captured_console.text


@pytest.mark.parametrize("url", ["not a url", "http://", "ftp://x/y"])
def test_invalid_url_is_config_error(settings, url, captured_console) -> None:
    with pytest.raises(ConfigError) as info:
        run(settings, url=url, console=captured_console)
    assert "URL" in info.value.message


def test_header_with_newline_is_config_error_without_value(make_settings, captured_console) -> None:
    secret = "abc-secret-value\ninjected: 1"
    settings = make_settings(api_key=secret)
    with pytest.raises(ConfigError) as info:
        deliver(BODY, ID, URL, settings, sleep=Sleeps(), console=captured_console, subject="s")
    err = info.value
    text = " ".join(str(x) for x in (err, err.message, err.cause, err.fix, err.evidence))
    assert "abc-secret-value" not in text
    assert "injected" not in text
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_ca_bundle_passed_as_verify(requests_mock, make_settings, captured_console, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("x")
    settings = make_settings(api_key=API_KEY, ca_bundle=str(bundle))
    requests_mock.post(URL, status_code=200)
    run(settings, console=captured_console)
    assert requests_mock.last_request.verify == str(bundle)


# ------------------------------------------------------------------- pure helpers


def test_backoff_delay_ranges() -> None:
    bounds = []
    for attempt in range(1, 12):
        low = backoff_delay(attempt, rng=lambda a, b: a)
        high = backoff_delay(attempt, rng=lambda a, b: b)
        bounds.append((low, high))
    assert bounds[:7] == [(0.5, 1), (1, 2), (2, 4), (4, 8), (8, 16), (16, 32), (30, 60)]
    assert all(b == (30, 60) for b in bounds[6:])  # capped at 60
    for attempt in range(1, 10):
        d = min(60.0, 2 ** (attempt - 1))
        for _ in range(20):
            assert d / 2 <= backoff_delay(attempt) <= d


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 5 ") == 5.0
    assert parse_retry_after("0") == 0.0
    date = email.utils.formatdate(now + 90, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(90, abs=1)
    past = email.utils.formatdate(now - 90, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0
    for unusable in (None, "", "soon", "-5", "1.5", "²", "Wed, 99 Foo 2024"):
        assert parse_retry_after(unusable, now=now) is None, unusable


def test_duplicate_answer_is_delivered_and_flagged(requests_mock, settings, captured_console):
    requests_mock.post(URL, status_code=200, json={"duplicate": True})
    result, _ = run(settings, console=captured_console)
    assert result.delivered and result.duplicate


# --------------------------------------------- service.run_callback (the whole job)

REPORT = """<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="S" tests="3" failures="1" skipped="1" time="1.5">
  <testcase classname="pkg.T" name="test_ok" time="0.5"/>
  <testcase classname="pkg.T" name="test_bad" time="0.75">
    <failure message="expected 1">trace</failure>
  </testcase>
  <testcase classname="pkg.T" name="test_skip" time="0"><skipped/></testcase>
</testsuite>
"""


@pytest.fixture
def job(tmp_path, make_settings, monkeypatch):
    """A workspace with one report, an outbox and settings that deliver to URL."""
    from ci_report.jenkins_env import BuildContext

    monkeypatch.setattr(delivery_module, "backoff_delay", lambda attempt: 0.0)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "report.xml").write_text(REPORT)
    settings = make_settings(
        url=URL,
        api_key=API_KEY,
        signature_secret="hmac-secret-0123456789abcdef",
        run_id="64",
        workspace=str(ws),
        junit=["report.xml"],
        outbox=str(tmp_path / "outbox"),
        max_attempts=3,
    )
    context = BuildContext(job_name="team/app", build_number=42, jenkins_url="https://j/")
    return settings, context


@pytest.mark.parametrize(
    ("status", "headline", "pending"),
    [(200, "callback delivered", 0), (503, "callback NOT delivered, kept in the outbox", 1)],
    ids=["delivered", "queued"],
)
def test_a_signal_as_the_outcome_is_reported_waits_for_the_report(
    requests_mock, job, captured_console, monkeypatch, status, headline, pending
) -> None:
    """A SIGHUP arriving once deliver() has returned (here: as the outcome is being reported)
    is acted on after the settle and its report, never between them: the console says where
    the payload is, then the command stops with the signal (exit 129)."""
    import os
    import signal

    from ci_report import signals
    from ci_report.callback import service
    from ci_report.callback.outbox import Outbox
    from ci_report.callback.result_file import read_result_file
    from ci_report.errors import Interrupted

    settings, context = job
    requests_mock.post(URL, status_code=status)
    real_report = service._report

    def report_with_a_signal(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGHUP)  # handled at once, in this thread
        return real_report(*args, **kwargs)

    monkeypatch.setattr(service, "_report", report_with_a_signal)
    recorder = signals.install(signals.IMMEDIATE)
    try:
        with pytest.raises(Interrupted) as stopped:
            service.run_callback(settings, context, console=captured_console)
    finally:
        recorder.uninstall()
        recorder.reset()
    assert stopped.value.exit_code == 129
    assert headline in captured_console.text
    assert "interrupted: the callback is kept" not in captured_console.text
    assert len(Outbox(settings.outbox_path).pending()) == pending  # settled, not left claimed
    assert read_result_file(settings.result_file_path)["outcome"] == (
        "delivered" if status == 200 else "queued"
    )


def test_run_callback_delivered(requests_mock, job, captured_console) -> None:
    from ci_report.callback.outbox import Outbox
    from ci_report.callback.result_file import read_result_file
    from ci_report.callback.service import run_callback

    settings, context = job
    requests_mock.post(URL, status_code=200)
    outcome = run_callback(settings, context, console=captured_console)
    assert outcome.outcome == "delivered" and outcome.exit_code == 0
    sent = requests_mock.last_request
    assert sent.body == outcome.payload_bytes
    assert sent.headers["webhook-id"] == outcome.delivery_id
    payload = json.loads(sent.body)
    assert payload["runId"] == 64
    assert payload["status"] == "failed"
    assert (payload["passedCases"], payload["failedCases"], payload["skippedCases"]) == (1, 1, 1)
    assert payload["durationMs"] == 1500
    assert payload["reports"]["files"] == 1
    data = read_result_file(settings.result_file_path)
    assert settings.result_file_path == Path(settings.workspace) / "ci-report" / "callback.json"
    assert data["outcome"] == "delivered"
    assert data["deliveryId"] == outcome.delivery_id
    assert data["payload"] == payload
    assert Outbox(settings.outbox_path).pending() == []
    assert "callback delivered" in captured_console.text
    assert API_KEY not in settings.result_file_path.read_text()


def test_run_callback_same_results_same_delivery_id(requests_mock, job, captured_console):
    from ci_report.callback.service import run_callback

    settings, context = job
    requests_mock.post(URL, status_code=200)
    first = run_callback(settings, context, console=captured_console)
    second = run_callback(settings, context, console=captured_console)
    assert first.delivery_id == second.delivery_id


def test_run_callback_500s_queued(requests_mock, job, captured_console) -> None:
    from ci_report.callback.outbox import Outbox
    from ci_report.callback.result_file import read_result_file
    from ci_report.callback.service import run_callback

    settings, context = job
    requests_mock.post(URL, status_code=500)
    outcome = run_callback(settings, context, console=captured_console)
    assert outcome.outcome == "queued" and outcome.exit_code == 75
    assert requests_mock.call_count == 3
    box = Outbox(settings.outbox_path)
    pending = box.pending()
    assert pending == [outcome.outbox_file]
    saved = box.load(pending[0])
    assert saved.delivery_id == outcome.delivery_id
    assert saved.body == outcome.payload_bytes
    assert saved.attempts == 3 and saved.last_status == 500 and not saved.rejected
    assert saved.url == URL
    data = read_result_file(settings.result_file_path)
    assert data["outcome"] == "queued" and data["error"] == "HTTP 500"
    assert "NOT delivered" in captured_console.text
    assert API_KEY not in pending[0].read_text()


def test_run_callback_rejected_kept_for_flush(requests_mock, job, captured_console) -> None:
    from ci_report.callback.outbox import Outbox
    from ci_report.callback.service import run_callback

    settings, context = job
    requests_mock.post(URL, status_code=401)
    outcome = run_callback(settings, context, console=captured_console)
    assert outcome.outcome == "rejected" and outcome.exit_code == 65
    entries = [Outbox(settings.outbox_path).load(p) for p in Outbox(settings.outbox_path).pending()]
    assert len(entries) == 1 and entries[0].rejected


def test_run_callback_without_url_raises_and_keeps_payload(job, captured_console) -> None:
    from ci_report.callback.outbox import Outbox
    from ci_report.callback.result_file import read_result_file
    from ci_report.callback.service import run_callback
    from ci_report.errors import ConfigError

    settings, context = job
    settings.url = None
    with pytest.raises(ConfigError) as info:
        run_callback(settings, context, console=captured_console)
    assert "no callback URL" in info.value.message
    pending = Outbox(settings.outbox_path).pending()
    assert len(pending) == 1
    assert any(str(pending[0]) in e for e in info.value.evidence)
    assert read_result_file(settings.result_file_path)["outcome"] == "queued"


def test_run_callback_without_auth_raises_and_keeps_payload(job, captured_console) -> None:
    from ci_report.callback.outbox import Outbox
    from ci_report.callback.service import run_callback
    from ci_report.errors import ConfigError

    settings, context = job
    settings.api_key = settings.signature_secret = None
    with pytest.raises(ConfigError):
        run_callback(settings, context, console=captured_console)
    assert len(Outbox(settings.outbox_path).pending()) == 1


def test_run_callback_dry_run_sends_nothing(requests_mock, job, captured_console, tmp_path):
    from ci_report.callback.service import run_callback

    settings, context = job
    out = tmp_path / "payload.json"
    outcome = run_callback(
        settings, context, dry_run=True, output=str(out), console=captured_console
    )
    assert outcome.outcome == "dry-run"
    assert requests_mock.call_count == 0
    assert out.read_bytes() == outcome.payload_bytes + b"\n"
    assert not settings.result_file_path.exists()


def test_run_callback_truncated_results_all_in_result_file(requests_mock, job, captured_console):
    from ci_report.callback.result_file import read_result_file
    from ci_report.callback.service import run_callback

    settings, context = job
    settings.max_results = 1
    requests_mock.post(URL, status_code=200)
    run_callback(settings, context, console=captured_console)
    data = read_result_file(settings.result_file_path)
    assert data["payload"]["resultsTruncated"] is True
    assert len(data["payload"]["results"]) == 1
    assert data["payload"]["totalCases"] == 3
    assert sorted(r["caseName"] for r in data["allResults"]) == ["test_bad", "test_ok", "test_skip"]


def test_proxy_failure_names_the_proxy_without_credentials(
    requests_mock, settings, captured_console, monkeypatch
) -> None:
    """Regression: a dead proxy showed urllib3's 'HTTPConnectionPool(...) Max retries
    exceeded ... ProxyError(...)' text twice and no fix."""
    monkeypatch.setenv("HTTPS_PROXY", "http://bob:pr0xy-pass@proxy.corp:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    requests_mock.post(
        URL,
        exc=requests.exceptions.ProxyError(
            "Unable to connect to proxy", ConnectionRefusedError(111, "Connection refused")
        ),
    )
    result, _ = run(settings, max_attempts=1)
    assert result.outcome == "queued"
    assert result.error is not None
    assert result.error.startswith(
        "cannot reach the proxy http://proxy.corp:3128: connection refused"
    )
    assert "pr0xy-pass" not in result.error
    assert any("NO_PROXY" in h for h in result.hints)
    assert result.notes == ["gave up after 1 attempt (--max-attempts)"]


def test_407_from_a_proxy_has_a_fix(requests_mock, settings, captured_console) -> None:
    requests_mock.post(URL, status_code=407)
    result, _ = run(settings)
    assert result.outcome == "rejected"
    assert any("proxy" in h and "credentials" in h for h in result.hints)


@pytest.mark.parametrize(
    "url", ["ftp://platform.example/cb", "http://[::1/cb"], ids=["scheme", "host"]
)
def test_an_unusable_callback_url_is_a_configuration_error_after_no_attempt(settings, url) -> None:
    """ci_report.http.url_errors: an unknown scheme or a malformed host is a configuration
    error (the payload is kept by the caller), not a transport failure to retry."""
    from ci_report.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        run(settings, url=url)
    assert info.value.message == "the callback URL is not usable"
