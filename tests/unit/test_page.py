"""The executions page: what a person sees, what is escaped, and who may press Sync now."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import urlencode

import pytest

from ci_report.platform.page import ExecutionsPage, human_age, is_loopback_host, safe_link

NOW = 1_800_000_000.0
HOST = {"Host": "127.0.0.1:8765"}


@dataclass
class FakeRun:
    run_id: str
    job: str
    status: str = "queued"
    parameters: dict[str, Any] = field(default_factory=dict)
    trigger_id: Optional[str] = None
    queue_id: Optional[int] = None
    build_number: Optional[int] = None
    build_url: Optional[str] = None
    trigger_status: str = "success"
    trigger_message: Optional[str] = None
    trigger_code: Optional[str] = None
    result_source: Optional[str] = None
    passed: Optional[int] = None
    failed: Optional[int] = None
    skipped: Optional[int] = None
    total: Optional[int] = None
    created_at: float = NOW - 60
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    updated_at: float = NOW - 60
    last_checked_at: Optional[float] = None
    attempts: int = 0
    status_reason: Optional[str] = None


class FakeLedger:
    """The ledger contract's reads over a dict (newest first by created_at)."""

    def __init__(self, runs: list[FakeRun]) -> None:
        self.runs = {r.run_id: r for r in runs}
        self.hist: dict[str, list[dict[str, Any]]] = {}
        self.list_calls: list[dict[str, Any]] = []

    def get(self, run_id: str) -> Optional[FakeRun]:
        return self.runs.get(run_id)

    def list(self, status=None, job=None, limit=200, offset=0) -> list[FakeRun]:
        self.list_calls.append({"status": status, "job": job, "limit": limit, "offset": offset})
        runs = sorted(self.runs.values(), key=lambda r: r.created_at, reverse=True)
        runs = [r for r in runs if (status is None or r.status == status)]
        runs = [r for r in runs if (job is None or r.job == job)]
        return runs[offset : offset + limit]

    def stuck(self, older_than_s: float, limit: Optional[int] = None) -> list[FakeRun]:
        found = [
            r
            for r in sorted(self.runs.values(), key=lambda r: r.updated_at)
            if r.status in ("queued", "running") and NOW - r.updated_at >= older_than_s
        ]
        return found[:limit] if limit else found

    def history(self, run_id: str) -> list[dict[str, Any]]:
        return self.hist.get(run_id, [])

    def counts_by_status(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.runs.values():
            out[r.status] = out.get(r.status, 0) + 1
        return out


def fixture_ledger() -> FakeLedger:
    ledger = FakeLedger(
        [
            FakeRun(
                "run-stuck",
                "team/app/main",
                status="running",
                build_number=41,
                build_url="http://127.0.0.1:9/job/team/job/app/job/main/41/",
                created_at=NOW - 7200,
                updated_at=NOW - 3600,
                status_reason="build started",
            ),
            FakeRun(
                "run-fresh",
                "team/app/main",
                status="running",
                build_number=42,
                build_url="javascript:alert(1)",
                trigger_message="queued as item #7",
                created_at=NOW - 120,
                updated_at=NOW - 100,
            ),
            FakeRun(
                "run-bad-trigger",
                '<script>alert("job")</script>',
                status="trigger_failed",
                trigger_status="failed",
                trigger_code="job-missing",
                trigger_message='no job "<img src=x onerror=alert(1)>": check the job name',
                created_at=NOW - 30,
                updated_at=NOW - 30,
                parameters={"VERSION": "<b>1.0</b>", "API_TOKEN": "***"},
            ),
            FakeRun(
                "run-long",
                "team/long/main",
                status="running",
                build_number=7,
                created_at=NOW - 10800,
                updated_at=NOW - 60,
                status_reason="build running (a long one, still changing)",
            ),
            FakeRun(
                "run-done",
                "team/lib/main",
                status="success",
                result_source="callback",
                passed=10,
                failed=0,
                total=10,
                created_at=NOW - 9000,
                updated_at=NOW - 8000,
            ),
        ]
    )
    ledger.hist["run-stuck"] = [
        {
            "at": "2027-01-15T08:00:00.000Z",
            "from": None,
            "to": "queued",
            "reason": "created",
            "source": "trigger",
        },
        {
            "at": "2027-01-15T08:01:00.000Z",
            "from": "queued",
            "to": "running",
            "reason": "build #41 started <now>",
            "source": "reconciler",
        },
    ]
    return ledger


def page(ledger: Optional[FakeLedger] = None, **kwargs: Any) -> ExecutionsPage:
    kwargs.setdefault("stuck_after_s", 1800)
    return ExecutionsPage(ledger or fixture_ledger(), clock=lambda: NOW, secret=b"k" * 32, **kwargs)


def get(p: ExecutionsPage, path: str, headers: Optional[dict[str, str]] = None, **query: str):
    return p.handle("GET", path, {k: [v] for k, v in query.items()}, headers or HOST)


def text(response: Any) -> str:
    return response.body.decode()


def rows(html: str) -> dict[str, str]:
    """run id -> its table row."""
    out = {}
    for row in re.findall(r"<tr[^>]*>.*?</tr>", html, re.S):
        m = re.search(r"<code>([^<]+)</code></a></td>", row)
        if m:
            out[m.group(1)] = row
    return out


def test_list_shows_each_run_with_status_job_build_reason_source_and_age() -> None:
    r = get(page(), "/")
    assert r.status == 200 and r.content_type.startswith("text/html")
    html = text(r)
    got = rows(html)
    assert list(got) == ["run-bad-trigger", "run-fresh", "run-stuck", "run-done", "run-long"]
    stuck = got["run-stuck"]
    assert 'class="is-stuck"' in stuck and "STUCK" in stuck
    assert '<a href="http://127.0.0.1:9/job/team/job/app/job/main/41/">#41</a>' in stuck
    assert "2 h" in stuck and "1 h ago" in stuck
    fresh = got["run-fresh"]
    assert "STUCK" not in fresh and "is-stuck" not in fresh
    assert "#42" in fresh and "javascript:" not in fresh  # not a link
    # old, but it changed a minute ago: not stuck
    assert "STUCK" not in got["run-long"] and "is-stuck" not in got["run-long"]
    assert (
        "job-missing" in got["run-bad-trigger"] and "check the job name" in got["run-bad-trigger"]
    )
    assert "callback" in got["run-done"] and "10/10 passed" in got["run-done"]
    # the summary leads with the stuck count, as a link to the stuck filter
    assert 'href="/?status=stuck">&#9888; stuck: <strong>1</strong>' in html


def test_everything_from_a_run_is_escaped() -> None:
    p = page()
    html = text(get(p, "/")) + text(get(p, "/runs/run-bad-trigger"))
    assert "<script>" not in html and "<img" not in html and "<b>1.0" not in html
    assert "&lt;script&gt;alert(&quot;job&quot;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_filters_by_status_job_and_stuck() -> None:
    ledger = fixture_ledger()
    p = page(ledger)
    assert list(rows(text(get(p, "/", status="success")))) == ["run-done"]
    assert ledger.list_calls[-1]["status"] == "success"
    assert list(rows(text(get(p, "/", job="team/app/main")))) == ["run-fresh", "run-stuck"]
    assert list(rows(text(get(p, "/", status="stuck")))) == ["run-stuck"]
    # the chosen filters stay selected in the form
    html = text(get(p, "/", status="running", job="team/app/main"))
    assert '<option value="running" selected>' in html
    assert 'value="team/app/main"' in html
    # an unknown status is no filter at all, not an error
    assert len(rows(text(get(p, "/", status="' OR 1=1 --")))) == 5
    assert "No runs matching these filters" in text(get(p, "/", job="nope"))


def test_pages_through_long_lists() -> None:
    runs = [FakeRun(f"r{i:03d}", "j", created_at=NOW - i, updated_at=NOW - i) for i in range(150)]
    p = page(FakeLedger(runs))
    first = text(get(p, "/"))
    assert len(rows(first)) == 100 and 'href="/?offset=100">Older runs' in first
    second = text(get(p, "/", offset="100"))
    assert len(rows(second)) == 50 and "Newer runs" in second and "Older runs" not in second
    assert len(rows(text(get(p, "/", offset="-5")))) == 100
    assert len(rows(text(get(p, "/", offset="x")))) == 100


def test_run_detail_has_history_parameters_and_a_sync_form() -> None:
    p = page()
    html = text(get(p, "/runs/run-stuck"))
    assert "STUCK" in html and "build started" in html
    assert "build #41 started &lt;now&gt;" in html and "reconciler" in html
    form = re.search(r'<form class="sync" method="post" action="([^"]+)">(.*?)</form>', html, re.S)
    assert form and form.group(1) == "/runs/run-stuck/sync"
    assert f'name="sync_token" value="{p.csrf_token("run-stuck")}"' in form.group(2)
    assert '<button type="submit" class="primary" id="sync-now">Sync now</button>' in form.group(2)
    assert 'name="csrf_token"' not in form.group(2)
    # the receiver server's own CSRF token rides along when it has one (escaped)
    with_server = text(p.handle("GET", "/runs/run-stuck", {}, HOST, server_csrf='t"<'))
    assert '<input type="hidden" name="csrf_token" value="t&quot;&lt;">' in with_server
    detail = text(get(p, "/runs/run-bad-trigger"))
    assert "API_TOKEN" in detail and "***" in detail
    assert "Trigger failure" in detail and "job-missing" in detail
    # a successful trigger's message is not shown as a failure
    fresh = text(get(p, "/runs/run-fresh"))
    assert "Trigger failure" not in fresh and "success (queued as item #7)" in fresh
    assert get(p, "/runs/nope").status == 404


def test_security_headers_forbid_scripts_and_framing() -> None:
    r = get(page(), "/")
    assert "script-src" not in r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Referrer-Policy"] == "same-origin"


def test_without_an_api_token_only_loopback_host_names_are_served() -> None:
    # a DNS-rebinding page reaches 127.0.0.1 with its own name in Host
    r = get(page(), "/", {"Host": "evil.example:8765"})
    assert r.status == 421 and "--api-token" in text(r)
    assert get(page(), "/", {"Host": "localhost:8765"}).status == 200
    assert get(page(), "/", {"Host": "[::1]:8765"}).status == 200
    assert get(page(token_protected=True), "/", {"Host": "ci.example.com"}).status == 200


class Sync:
    def __init__(self, answer: tuple[int, dict[str, Any]] = (200, {"status": "success"})) -> None:
        self.calls: list[str] = []
        self.answer = answer

    def __call__(self, run_id: str) -> tuple[int, dict[str, Any]]:
        self.calls.append(run_id)
        return self.answer


def post(p: ExecutionsPage, run_id: str, headers: dict[str, str], token: Optional[str] = None):
    body = urlencode({"sync_token": p.csrf_token(run_id) if token is None else token}).encode()
    h = {**HOST, "Content-Type": "application/x-www-form-urlencoded", **headers}
    return p.handle("POST", f"/runs/{run_id}/sync", {}, h, body)


def test_sync_now_runs_the_sync_and_redirects_back() -> None:
    sync = Sync()
    p = page(sync=sync)
    r = post(p, "run-stuck", {"Origin": "http://127.0.0.1:8765"})
    assert r.status == 303 and r.headers["Location"] == "/runs/run-stuck?synced=1"
    assert sync.calls == ["run-stuck"]
    # without Origin, a same-origin Referer is enough
    r = post(p, "run-stuck", {"Referer": "http://127.0.0.1:8765/runs/run-stuck"})
    assert r.status == 303 and sync.calls == ["run-stuck", "run-stuck"]
    # the run is still open (Jenkins did not answer, or the build still runs): said so
    shown = text(get(p, "/runs/run-stuck", synced="1"))
    assert "Synced with Jenkins" not in shown and "the run is still" in shown
    done = text(get(p, "/runs/run-done", synced="1"))
    assert "Synced with Jenkins" in done and "still" not in done


@pytest.mark.parametrize(
    ("headers", "token", "status"),
    [
        ({}, None, 403),  # no Origin, no Referer
        ({"Origin": "http://evil.example"}, None, 403),
        ({"Origin": "null"}, None, 403),
        ({"Origin": "http://127.0.0.1:8765.evil.example"}, None, 403),
        ({"Referer": "http://evil.example/http://127.0.0.1:8765/"}, None, 403),
        ({"Origin": "http://127.0.0.1:8765"}, "0" * 64, 403),  # forged token
        ({"Origin": "http://127.0.0.1:8765"}, "", 403),
        ({"Origin": "http://127.0.0.1:8765", "Content-Type": "text/plain"}, None, 400),
    ],
)
def test_cross_site_or_forged_sync_requests_are_refused(
    headers: dict[str, str], token: Optional[str], status: int
) -> None:
    sync = Sync()
    r = post(page(sync=sync), "run-stuck", headers, token)
    assert r.status == status
    assert sync.calls == []


def test_a_token_for_one_run_does_not_sync_another() -> None:
    sync = Sync()
    p = page(sync=sync)
    r = post(p, "run-fresh", {"Origin": "http://127.0.0.1:8765"}, p.csrf_token("run-stuck"))
    assert r.status == 403 and sync.calls == []


def test_a_failed_sync_is_shown_on_the_run_page() -> None:
    sync = Sync((502, {"error": "Jenkins unreachable: <connection refused>"}))
    r = post(page(sync=sync), "run-stuck", {"Origin": "http://127.0.0.1:8765"})
    assert r.status == 502
    assert "Sync failed: Jenkins unreachable: &lt;connection refused&gt;" in text(r)

    def boom(run_id: str) -> tuple[int, dict[str, Any]]:
        raise RuntimeError("secret detail")

    r = post(page(sync=boom), "run-stuck", {"Origin": "http://127.0.0.1:8765"})
    assert r.status == 500 and "secret detail" not in text(r) and "RuntimeError" in text(r)
    r = post(page(), "run-stuck", {"Origin": "http://127.0.0.1:8765"})
    assert r.status == 503 and "--jenkins-url" in text(r)


def test_methods_and_unknown_paths() -> None:
    p = page(sync=Sync())
    assert p.handle("POST", "/", {}, HOST).status == 405
    assert p.handle("GET", "/runs/run-stuck/sync", {}, HOST).status == 405
    assert p.handle("DELETE", "/runs/run-stuck", {}, HOST).status == 405
    assert get(p, "/nothing").status == 404


def test_small_helpers() -> None:
    assert human_age(5) == "5 s" and human_age(125) == "2 min" and human_age(3600) == "1 h"
    assert human_age(3 * 86400 + 7200) == "3 d 2 h"
    assert safe_link("https://jenkins.example/job/a/1/") == "https://jenkins.example/job/a/1/"
    assert safe_link("javascript:alert(1)") is None and safe_link("//evil") is None
    assert is_loopback_host("127.0.0.2:80") and not is_loopback_host("127.0.0.1.evil.example")
    assert not is_loopback_host(None) and not is_loopback_host("10.0.0.1:80")
