"""The executions page in a real headless Chromium (Debian's chromium + chromedriver, driven by
selenium): the runs of a ledger are listed, a run left stuck by the fake Jenkins is marked, and
"Sync now" reached with the keyboard closes it through the real reconciler. Screenshots are
written to ``build/test-artifacts/`` (or ``$CI_REPORT_TEST_ARTIFACTS``)."""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from fake_jenkins import FakeJenkins
from fault_server import WHSEC

from ci_report.config import Settings
from ci_report.console import Console
from ci_report.platform.executions_api import ExecutionsAPI
from ci_report.platform.jenkins import JenkinsClient
from ci_report.platform.receiver import CALLBACK_PATH, ReceiverHandle, start_receiver
from ci_report.platform.reconcile import Reconciler
from ci_report.platform.runs import open_ledger, trigger_run
from ci_report.platform.tracking import Tracking
from ci_report.platform.watch import setup_watch

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
PARAMS = ["CI_REPORT_TRIGGER_ID", "RUN_ID"]
TEST_REPORT = {"failCount": 0, "passCount": 12, "skipCount": 1, "suites": []}

needs_browser = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and chromedriver not installed (Debian packages chromium, chromium-driver)",
)


def artifacts_dir() -> Path:
    where = Path(os.environ.get("CI_REPORT_TEST_ARTIFACTS") or REPO / "build" / "test-artifacts")
    where.mkdir(parents=True, exist_ok=True)
    return where


class OffsetClock:
    """The ledger's and reconciler's clock: runs are recorded "an hour ago" by moving it back."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def _callback(run_id: str, job: str, number: int) -> bytes:
    return json.dumps(
        {
            "runId": run_id,
            "status": "success",
            "passedCases": 41,
            "failedCases": 0,
            "skippedCases": 0,
            "totalCases": 41,
            "build": {"jobName": job, "buildNumber": number, "result": "SUCCESS"},
        }
    ).encode()


def _signed(body: bytes, webhook_id: str) -> dict[str, str]:
    from ci_report.callback.auth import hmac_key, hmac_signature

    ts = int(time.time())
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": hmac_signature(hmac_key(WHSEC), webhook_id, ts, body),
        "Content-Type": "application/json",
    }


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Fake Jenkins + SQLite ledger + reconciler + receiver, with four runs:
    r-stuck (its build finished, the callback never came, no change for an hour),
    r-done (closed by its callback), r-no-job (trigger failed), r-hostile (a hostile job name)."""
    fake = FakeJenkins().start()
    out = io.StringIO()
    console = Console(stream=out)
    clock = OffsetClock()
    watch = setup_watch(stuck_after_s=1800)
    ledger = open_ledger(
        str(tmp_path / "runs.db"), console=console, observer=watch.observer, clock=clock
    )

    def client() -> JenkinsClient:
        return JenkinsClient(fake.url, fake.user, fake.token)

    reconciler = Reconciler(
        ledger,
        client,
        settings=Settings(),
        console=console,
        observer=watch.observer,
        clock=clock,
    )

    def trigger(job: str, parameters: dict[str, Any], run_id: Any) -> Any:
        c = client()
        try:
            return trigger_run(
                ledger, c, job, parameters, run_id, console=console, poll_interval=0.05
            )
        finally:
            c.close()

    api = ExecutionsAPI(ledger, reconciler, trigger)
    handle: ReceiverHandle = start_receiver(
        signature_secrets=[WHSEC],
        tracking=Tracking(ledger, reconciler, api),
        observer=watch.observer,
        stuck_after_s=1800,
    )
    base = handle.base_url
    fake.add_job("team/app/deploy", params=list(PARAMS), duration=0.2, test_report=TEST_REPORT)
    fake.add_job("team/app/main", params=list(PARAMS), duration=0.2)
    clock.offset = -3600.0  # what follows happened an hour ago
    for job, run_id in (("team/app/deploy", "r-stuck"), ("team/app/main", "r-done")):
        r = requests.post(
            base + "/api/executions",
            json={"job": job, "parameters": {"RUN_ID": run_id}, "runId": run_id},
            timeout=30,
        )
        assert r.status_code == 201, r.text
    r = requests.post(
        base + "/api/executions",
        json={"job": "team/web/nightly", "parameters": {}, "runId": "r-no-job"},
        timeout=30,
    )
    assert r.status_code == 201 and r.json()["status"] == "trigger_failed", r.text
    ledger.create('<img src=x onerror="document.title=1">', {}, run_id="r-hostile")
    ledger.update("r-hostile", reason="<script>x()</script>", status="aborted")
    clock.offset = -1800.0
    # r-done's build reports back; r-stuck's callback is lost
    deadline = time.monotonic() + 20
    main = fake.jobs["team/app/main"]
    while not (main.builds and not main.builds[1].building(time.monotonic())):
        assert time.monotonic() < deadline, "team/app/main never built"
        time.sleep(0.05)
    body = _callback("r-done", "team/app/main", 1)
    r = requests.post(base + CALLBACK_PATH, data=body, headers=_signed(body, "msg_done"), timeout=5)
    assert r.status_code == 200, r.text
    clock.offset = 0.0
    deploy = fake.jobs["team/app/deploy"]
    while not (deploy.builds and not deploy.builds[1].building(time.monotonic())):
        assert time.monotonic() < deadline, "team/app/deploy never built"
        time.sleep(0.05)
    try:
        yield {"base": base, "ledger": ledger, "fake": fake, "console": out, "watch": watch}
    finally:
        handle.stop()
        reconciler.stop()
        ledger.close()
        fake.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1366,768",  # a laptop screen
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@needs_browser
def test_a_stuck_run_is_marked_and_sync_now_closes_it(
    platform: dict[str, Any], browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base = platform["base"]
    browser.get(base + "/")
    assert browser.title == "Executions · ci-report"
    rows = {
        row.find_element(By.CSS_SELECTOR, "td.id").text: row
        for row in browser.find_elements(By.CSS_SELECTOR, "tbody tr")
    }
    assert set(rows) == {"r-stuck", "r-done", "r-no-job", "r-hostile"}
    stuck = rows["r-stuck"]
    assert "is-stuck" in stuck.get_attribute("class")
    assert "STUCK" in stuck.text and "queued" in stuck.text and "team/app/deploy" in stuck.text
    for other in ("r-done", "r-no-job", "r-hostile"):
        assert "STUCK" not in rows[other].text, other
    assert "callback" in rows["r-done"].text and "41/41 passed" in rows["r-done"].text
    assert "job-not-found" in rows["r-no-job"].text
    # the hostile job name and reason are shown as text, never run
    assert '<img src=x onerror="document.title=1">' in rows["r-hostile"].text
    assert "<script>x()</script>" in rows["r-hostile"].text
    assert browser.title == "Executions · ci-report"
    shot = artifacts_dir() / "executions-page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

    # the stuck filter, from the keyboard-reachable form
    browser.get(base + "/?status=stuck")
    listed = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "tbody td.id")]
    assert listed == ["r-stuck"]

    # open the run, reach Sync now with Tab alone and press Enter
    stuck_link = browser.find_element(By.LINK_TEXT, "r-stuck")
    stuck_link.click()
    assert browser.current_url == base + "/runs/r-stuck"
    assert "This run is stuck" in browser.find_element(By.TAG_NAME, "main").text
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    for _ in range(40):
        active = browser.switch_to.active_element
        if active.get_attribute("id") == "sync-now":
            break
        active.send_keys(Keys.TAB)
    else:
        pytest.fail("Sync now cannot be reached with the Tab key")
    # the focused button is visibly outlined
    outline = browser.execute_script("return getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")
    browser.switch_to.active_element.send_keys(Keys.ENTER)

    main = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if browser.current_url.endswith("/runs/r-stuck?synced=1"):
            main = browser.find_element(By.TAG_NAME, "main").text
            break
        time.sleep(0.05)
    assert main is not None, browser.page_source[:2000]
    assert "Synced with Jenkins" in main
    assert "STUCK" not in main and "This run is stuck" not in main
    history = [
        [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        for tr in browser.find_elements(
            By.XPATH, "//h2[text()='History']/following-sibling::table[1]/tbody/tr"
        )
    ]
    assert history[-1][2] == "success", history
    run = platform["ledger"].get("r-stuck")
    assert run.status == "success" and run.result_source == "test-report"
    assert run.passed == 12
    assert browser.save_screenshot(str(artifacts_dir() / "executions-run-synced.png"))

    # and the list no longer marks anything stuck
    browser.get(base + "/")
    assert "STUCK" not in browser.find_element(By.CSS_SELECTOR, "tbody").text
    print(platform["console"].getvalue())


@needs_browser
def test_a_cross_site_page_cannot_press_sync_now(platform: dict[str, Any], browser: Any) -> None:
    """A page on another origin posts the form to the receiver: refused, the run stays open."""
    from selenium.webdriver.common.by import By

    base = platform["base"]
    attack = (
        "<!doctype html><title>attacker</title>"
        f'<form id="f" method="post" action="{base}/runs/r-stuck/sync">'
        '<input name="sync_token" value="guess"><button id="go">go</button></form>'
    )
    evil = _serve_once(attack)
    try:
        browser.get(evil)
        browser.find_element(By.ID, "go").click()
        deadline = time.monotonic() + 15
        while browser.current_url.startswith(evil) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "refused" in browser.page_source.lower() or "forbidden" in browser.page_source
    finally:
        _stop_served()
    run = platform["ledger"].get("r-stuck")
    assert run.status == "queued"


_served: list[Any] = []


def _serve_once(html: str) -> str:
    """Serve one page from another origin (127.0.0.1, another port)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    data = html.encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _served.append(server)
    return f"http://127.0.0.1:{server.server_address[1]}/"


def _stop_served() -> None:
    while _served:
        server = _served.pop()
        server.shutdown()
        server.server_close()
