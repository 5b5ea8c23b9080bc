"""The run ledger (SQLite): records, transitions with history, leases, callbacks."""

from __future__ import annotations

import json
import threading
from typing import Any, Optional

import pytest

from ci_report.platform.events import Observer
from ci_report.platform.runs import OPEN_STATUSES, RUN_STATUSES, Run, open_ledger


class Recorder(Observer):
    def __init__(self) -> None:
        self.transitions: list[tuple[str, Optional[str], str]] = []

    def run_transition(self, run_id: str, old: Optional[str], new: str, reason: str) -> None:
        self.transitions.append((run_id, old, new))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(tmp_path: Any, clock: Clock) -> Any:
    obs = Recorder()
    led = open_ledger(str(tmp_path / "runs.db"), observer=obs, clock=clock)
    led.recorder = obs
    yield led
    led.close()


def body(run_id: Any, number: int, result: str = "SUCCESS", **extra: Any) -> bytes:
    doc = {
        "runId": run_id,
        "status": "success" if result == "SUCCESS" else "failed",
        "passedCases": 3,
        "failedCases": 0 if result == "SUCCESS" else 1,
        "skippedCases": 0,
        "totalCases": 3 if result == "SUCCESS" else 4,
        "build": {"jobName": "team/app", "buildNumber": number, "result": result},
    }
    doc.update(extra)
    return json.dumps(doc).encode()


def test_create_records_queued_pending_and_redacts_secret_parameters(ledger: Any) -> None:
    run = ledger.create("team/app", {"VERSION": "1.2", "DEPLOY_TOKEN": "s3cr3t"}, run_id="64")
    assert (run.status, run.trigger_status, run.attempts) == ("queued", "pending", 0)
    assert run.parameters == {"VERSION": "1.2", "DEPLOY_TOKEN": "***"}
    raw = ledger.db.conn.execute("SELECT parameters FROM runs").fetchone()[0]
    assert "s3cr3t" not in raw
    data = run.to_json()
    assert data["runId"] == "64" and data["createdAt"].endswith("Z")
    assert set(data) >= {"triggerStatus", "resultSource", "passedCases", "statusReason"}
    assert ledger.history("64")[0]["to"] == "queued"
    assert ledger.recorder.transitions == [("64", None, "queued")]


def test_create_twice_returns_the_existing_run(ledger: Any) -> None:
    _first, created = ledger.create_or_get("team/app", {}, run_id="7")
    again, created_again = ledger.create_or_get("other", {"A": "1"}, run_id="7")
    assert created and not created_again
    assert again.job == "team/app"
    assert len(ledger.list()) == 1
    assert ledger.create("team/app").run_id != "7"  # assigned ids are fresh


def test_update_keeps_one_history_row_per_transition(ledger: Any, clock: Clock) -> None:
    ledger.create("team/app", run_id="1")
    clock.now += 5
    ledger.update("1", reason="queue item #100", queue_id=100)  # no status change
    ledger.update("1", reason="build #3 started", status="running", build_number=3)
    clock.now += 5
    run = ledger.update("1", reason="synced", status="failed", result_source="status-only")
    history = ledger.history("1")
    assert [(h["from"], h["to"]) for h in history] == [
        (None, "queued"),
        ("queued", "running"),
        ("running", "failed"),
    ]
    assert history[-1]["source"] == "reconciler"
    assert run.finished_at == clock.now and run.status_reason == "synced"
    assert not run.is_open()
    with pytest.raises(ValueError):
        ledger.update("1", reason="x", status="bogus")
    with pytest.raises(ValueError):
        ledger.update("1", reason="x", lease_owner="me")


def test_expect_open_never_reopens_or_overwrites_a_final_run(ledger: Any) -> None:
    ledger.create("team/app", run_id="1")
    ledger.apply_callback("msg_a", body("1", 3), ["hmac"])
    run = ledger.update("1", reason="late sync", expect_open=True, status="lost")
    assert run.status == "success"
    assert [h["to"] for h in ledger.history("1")] == ["queued", "success"]


def test_list_filters_and_newest_first(ledger: Any, clock: Clock) -> None:
    for n in range(3):
        clock.now += 1
        ledger.create("a" if n < 2 else "b", run_id=str(n))
    ledger.update("0", reason="x", status="cancelled")
    assert [r.run_id for r in ledger.list()] == ["2", "1", "0"]
    assert [r.run_id for r in ledger.list(status="queued", job="a")] == ["1"]
    assert [r.run_id for r in ledger.list(status=list(OPEN_STATUSES))] == ["2", "1"]
    assert [r.run_id for r in ledger.list(limit=1, offset=1)] == ["1"]
    counts = ledger.counts_by_status()
    assert set(counts) == set(RUN_STATUSES)
    assert (counts["queued"], counts["cancelled"]) == (2, 1)


def test_stuck_measures_changes_not_checks(ledger: Any, clock: Clock) -> None:
    ledger.create("a", run_id="old")
    clock.now += 600
    ledger.create("a", run_id="new")
    ledger.checked("old", done_seen_at=clock.now)  # a look is not a change
    assert [r.run_id for r in ledger.stuck(300)] == ["old"]
    assert ledger.get("old").attempts == 1
    assert ledger.get("old").last_checked_at == clock.now
    assert ledger.oldest_open_age_s() == pytest.approx(600)
    ledger.update("old", reason="moved", status="running")
    assert ledger.stuck(300) == []


def test_leases_are_exclusive_until_they_run_out(ledger: Any, clock: Clock) -> None:
    ledger.create("a", run_id="1")
    assert ledger.claim("1", "replica-a", 30)
    assert not ledger.claim("1", "replica-b", 30)
    assert ledger.claim("1", "replica-a", 30)  # renewal
    clock.now += 31
    assert ledger.claim("1", "replica-b", 30)  # a crashed holder's lease ran out
    ledger.release("1", "replica-a")  # not the holder: no effect
    assert not ledger.claim("1", "replica-a", 30)
    ledger.release("1", "replica-b")
    assert ledger.claim("1", "replica-a", 30)


def test_claim_races_have_one_winner(ledger: Any) -> None:
    ledger.create("a", run_id="1")
    wins: list[str] = []
    barrier = threading.Barrier(8)

    def grab(name: str) -> None:
        barrier.wait()
        if ledger.claim("1", name, 60):
            wins.append(name)

    threads = [threading.Thread(target=grab, args=(f"r{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1


def test_callback_closes_a_known_run_once(ledger: Any) -> None:
    ledger.create("team/app", run_id="64")
    status, answer = ledger.apply_callback("msg_1", body(64, 5, "UNSTABLE"), ["hmac"])
    assert (status, answer["outcome"], answer["status"]) == (200, "applied", "unstable")
    status, again = ledger.apply_callback("msg_1", body(64, 5, "UNSTABLE"), ["hmac"])
    assert (status, again["outcome"], again["duplicate"]) == (200, "duplicate", True)
    run = ledger.get("64")
    assert (run.status, run.result_source, run.build_number) == ("unstable", "callback", 5)
    assert (run.passed, run.failed, run.total) == (3, 1, 4)
    assert run.trigger_status == "success"
    assert ledger.callbacks()[0]["applied_count"] == 1
    assert [h["to"] for h in ledger.history("64")] == ["queued", "unstable"]


def test_reused_id_with_other_body_and_bad_bodies(ledger: Any) -> None:
    ledger.apply_callback("msg_1", body(1, 1), [])
    status, answer = ledger.apply_callback("msg_1", body(1, 2), [])
    assert (status, answer["outcome"], answer["accepted"]) == (422, "error", False)
    assert ledger.apply_callback("msg_2", b"\xff", [])[0] == 400
    assert ledger.apply_callback("msg_3", b"[1]", [])[0] == 400
    assert ledger.apply_callback("msg_3", body(1, 1, "FAILURE"), [])[0] == 200  # not burnt


def test_older_build_callback_never_overwrites_the_newer_result(ledger: Any) -> None:
    ledger.create("team/app", run_id="9")
    ledger.apply_callback("msg_new", body("9", 8), ["hmac"])
    status, answer = ledger.apply_callback("msg_old", body("9", 7, "FAILURE"), ["hmac"])
    assert status == 200 and answer["stale"] is True and answer["outcome"] == "stale"
    assert "#7" in answer["message"] and "#8" in answer["message"]
    run = ledger.get("9")
    assert (run.status, run.build_number) == ("success", 8)
    assert ledger.callbacks()[0]["build"] == 8  # the stored record was not replaced
    # its retry is answered the same way
    assert ledger.apply_callback("msg_old", body("9", 7, "FAILURE"), [])[1]["stale"] is True


def test_unknown_run_is_stored_as_before(ledger: Any) -> None:
    status, answer = ledger.apply_callback("msg_1", body(None, 3), ["api-key"])
    assert status == 200 and answer["execution"] == "build:team/app#3"
    assert ledger.list() == []
    (record,) = ledger.callbacks()
    assert record["modes"] == "api-key" and record["payload"]["build"]["buildNumber"] == 3


def test_recovered_payload_sets_its_result_source(ledger: Any) -> None:
    ledger.create("team/app", run_id="5")
    ledger.apply_callback("msg_s", body("5", 2), ["sync"], result_source="test-report")
    assert ledger.get("5").result_source == "test-report"
    assert ledger.history("5")[-1]["source"] == "test-report"


def test_run_from_row_round_trip() -> None:
    run = Run(run_id="x", job="j", created_at=0.0, updated_at=0.0)
    assert run.is_open() and run.age_s(10.0) == 10.0
    assert run.to_json()["startedAt"] is None
