"""The outbox: atomic entries, claims between processes, release, bury, stale and corrupt files."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from ci_report import fileio as fileio_module
from ci_report.callback import outbox as outbox_module
from ci_report.callback.outbox import (
    ENTRY_SCHEMA,
    STALE_CLAIM_S,
    Outbox,
    OutboxEntry,
)
from ci_report.fileio import atomic_write

BODY = '{"runId":64,"status":"failed","name":"é"}'.encode()


def entry(n: int = 1, **kw) -> OutboxEntry:
    values = dict(
        delivery_id=f"msg_{n:032x}",
        body=BODY,
        url="https://platform.example.com/api/jenkins/callback",
        created_at=1_700_000_000.0 + n,
        subject="team/app#42",
    )
    values.update(kw)
    return OutboxEntry(**values)  # type: ignore[arg-type]


@pytest.fixture
def box(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox")


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_save_and_load_roundtrip(box: Outbox) -> None:
    e = entry(attempts=3, last_error="HTTP 503", last_status=503)
    path = box.save(e)
    assert path == box.path / f"{e.delivery_id}.json"
    assert e.path == path
    loaded = box.load(path)
    assert loaded == e
    assert loaded.body == BODY
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["schema"] == ENTRY_SCHEMA
    assert data["deliveryId"] == e.delivery_id
    assert data["createdAtIso"] == "2023-11-14T22:13:21Z"


def test_file_mode_0600(box: Outbox) -> None:
    path = box.save(entry())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


SECRETS = {
    "api_key": "entry-api-key-0123456789",
    "jwt_secret": "entry-jwt-secret-0123456789abcdef0123",
    "signature_secret": "whsec_ZW50cnktaG1hYy1zZWNyZXQtMDEyMzQ1Njc4OQ==",
}


CREDENTIAL_HEADERS = ("X-Api-Key", "Authorization", "webhook-signature")
ENTRY_KEYS = {
    "schema",
    "deliveryId",
    "kind",
    "url",
    "endpoint",
    "credentialFingerprint",
    "seal",
    "createdAt",
    "createdAtIso",
    "firstAttemptAt",
    "attempts",
    "lastError",
    "lastStatus",
    "rejected",
    "subject",
    "body",
}


@pytest.mark.parametrize(
    ("secrets", "url"),
    [
        (SECRETS, "https://platform.example.com/cb"),
        # userinfo is refused with a JWT: the URL password is checked with the other two modes
        (
            {k: v for k, v in SECRETS.items() if k != "jwt_secret"},
            "https://bob:hunter2pw@platform.example.com/cb",
        ),
    ],
    ids=["key+jwt+hmac", "key+hmac+url-password"],
)
def test_no_secret_in_entry(
    secrets, url, requests_mock, tmp_path: Path, make_settings, monkeypatch, captured_console
) -> None:
    """The entry the callback itself writes (run_callback: persist first, then a 503 whose
    body echoes the credential headers back, the way a proxy's error page can): no canary
    secret, no credential sent (JWT, signature, key), no URL password is in the file."""
    from ci_report.callback import delivery
    from ci_report.callback.service import run_callback
    from ci_report.jenkins_env import BuildContext

    monkeypatch.setattr(delivery, "backoff_delay", lambda attempt: 0.0)
    settings = make_settings(
        **secrets, url=url, outbox=str(tmp_path / "outbox"), max_attempts=2, run_id="64"
    )
    settings.workspace = str(tmp_path)
    settings.junit = ["r.xml"]
    (tmp_path / "r.xml").write_text('<testsuite><testcase name="a" time="1"/></testsuite>')

    def echo(request, context) -> str:
        context.status_code = 503
        creds = {h: request.headers[h] for h in CREDENTIAL_HEADERS if h in request.headers}
        return "upstream down; request had " + json.dumps(creds)

    requests_mock.post("https://platform.example.com/cb", text=echo)
    outcome = run_callback(settings, BuildContext(), console=captured_console)
    assert outcome.outcome == "queued"
    sent = requests_mock.request_history
    assert len(sent) == 2
    (path,) = Outbox(settings.outbox_path).pending()
    text = path.read_text()
    data = json.loads(text)
    assert set(data) == ENTRY_KEYS
    assert data["credentialFingerprint"] and data["seal"]
    assert data["lastStatus"] == 503 and data["attempts"] == 2
    assert data["url"] == "https://platform.example.com/cb"
    # the credentials as they went over the wire, read from the requests really made
    wire = [r.headers[h] for r in sent for h in CREDENTIAL_HEADERS if h in r.headers]
    assert len(wire) == len(sent) * len(secrets)  # every mode was really used
    b64 = "ZW50cnktaG1hYy1zZWNyZXQtMDEyMzQ1Njc4OQ=="
    for value in [*secrets.values(), b64, "hunter2pw", *wire]:
        assert value not in text
    for word in ("secret", "x-api-key", "authorization", "signature", "bearer", "token"):
        assert word not in text.lower()


def test_pending_oldest_first(box: Outbox) -> None:
    paths = [box.save(entry(n)) for n in (1, 2, 3)]
    for age, path in zip((30, 10, 20), paths):
        os.utime(path, (time.time() - age, time.time() - age))
    assert box.pending() == [paths[0], paths[2], paths[1]]
    assert len(box) == 3


def test_pending_of_missing_dir_is_empty(tmp_path: Path) -> None:
    assert Outbox(tmp_path / "nothing").pending() == []


def test_save_same_id_replaces(box: Outbox) -> None:
    box.save(entry(1, attempts=1))
    box.save(entry(1, attempts=2))
    assert len(box.pending()) == 1
    assert box.load(box.pending()[0]).attempts == 2


def test_claim_once(box: Outbox) -> None:
    path = box.save(entry())
    claimed = box.claim(path)
    assert claimed is not None and claimed.exists()
    assert not path.exists()
    assert ".claim-" in claimed.name
    assert box.claim(path) is None  # a second claimer gets nothing
    assert box.pending() == []  # a live claim is not pending


def test_release_keeps_attempts(box: Outbox) -> None:
    path = box.save(entry(attempts=2))
    claimed = box.claim(path)
    assert claimed is not None
    e = box.load(claimed)
    e.attempts += 3
    e.last_error = "HTTP 500"
    e.rejected = True
    released = box.release(claimed, e)
    assert released == path and not claimed.exists()
    again = box.load(released)
    assert again.attempts == 5
    assert again.last_error == "HTTP 500"
    assert again.rejected is True
    assert stat.S_IMODE(released.stat().st_mode) == 0o600


def test_release_yields_to_newer_copy(box: Outbox) -> None:
    claimed = box.claim(box.save(entry(attempts=1)))
    assert claimed is not None
    box.save(entry(attempts=9))  # a new callback for the same delivery id meanwhile
    target = box.release(claimed, entry(attempts=2))
    assert box.load(target).attempts == 9
    assert not claimed.exists()


def test_done_removes(box: Outbox) -> None:
    claimed = box.claim(box.save(entry()))
    assert claimed is not None
    box.done(claimed)
    assert not claimed.exists() and box.pending() == []
    box.done(claimed)  # idempotent


def test_bury_moves_to_dead(box: Outbox) -> None:
    e = entry()
    claimed = box.claim(box.save(e))
    assert claimed is not None
    dead = box.bury(claimed, e)
    assert dead == box.dead_path / f"{e.delivery_id}.json"
    assert dead.exists() and not claimed.exists()
    assert box.pending() == []
    assert box.load(dead).delivery_id == e.delivery_id


def test_stale_claim_of_dead_pid_taken_back(box: Outbox) -> None:
    path = box.save(entry())
    orphan = path.with_name(f"{path.name}.claim-{outbox_module._host()}-{dead_pid()}-deadbeef")
    os.rename(path, orphan)
    assert box.pending() == [path]
    assert not orphan.exists()


def test_claim_of_live_pid_kept(box: Outbox) -> None:
    path = box.save(entry())
    claimed = box.claim(path)  # this process: alive
    assert claimed is not None
    assert box.pending() == []
    assert claimed.exists()


def test_old_claim_of_other_host_taken_back(box: Outbox) -> None:
    path = box.save(entry())
    foreign = path.with_name(f"{path.name}.claim-otherhost-{os.getpid()}-cafebabe")
    os.rename(path, foreign)
    assert box.pending() == []  # another host: trusted until it is stale
    old = time.time() - STALE_CLAIM_S - 60
    os.utime(foreign, (old, old))
    assert box.pending() == [path]


def test_stale_claim_does_not_overwrite_newer_entry(box: Outbox) -> None:
    path = box.save(entry(attempts=1))
    orphan = path.with_name(f"{path.name}.claim-{outbox_module._host()}-{dead_pid()}-0badf00d")
    os.rename(path, orphan)
    box.save(entry(attempts=7))
    assert box.pending() == [path]
    assert box.load(path).attempts == 7


def test_iter_claimed_moves_corrupt_file_aside(box: Outbox) -> None:
    good = box.save(entry(1))
    box.path.joinpath("msg_corrupt.json").write_text("{ not json")
    box.path.joinpath("msg_nokey.json").write_text('{"body": "x"}')
    seen = [e.delivery_id for _, e in box.iter_claimed()]
    assert seen == [entry(1).delivery_id]
    assert (box.dead_path / "msg_corrupt.json.corrupt").exists()
    assert (box.dead_path / "msg_nokey.json.corrupt").exists()
    assert box.pending() == [] and not good.exists()  # the good one is claimed, not released


def test_iter_claimed_skips_entry_held_by_a_live_process(box: Outbox) -> None:
    """Another (live) process claims entry 1 first: iterating yields only entry 2; once that
    process is gone its claim is taken back. A real second process, no monkeypatch."""
    first = box.save(entry(1))
    box.save(entry(2))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time;from pathlib import Path;"
            "from ci_report.callback.outbox import Outbox;"
            "print(Outbox(Path(sys.argv[1])).claim(Path(sys.argv[2])), flush=True);"
            "time.sleep(60)",
            str(box.path),
            str(first),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        claim = Path(holder.stdout.readline().strip())  # the claim exists: observed, not slept
        assert claim.exists()
        old = time.time() - 10 * STALE_CLAIM_S
        os.utime(claim, (old, old))  # old, but its process is alive: never taken
        seen = [e.delivery_id for _, e in box.iter_claimed()]
        assert seen == [entry(2).delivery_id]
        assert claim.exists()
    finally:
        holder.kill()
        holder.wait()
    assert box.pending() == [first]  # its process is dead: taken back


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "d" / "f.json"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.json"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    atomic_write(tmp_path / "g", b"x", mode=0o644)
    assert stat.S_IMODE((tmp_path / "g").stat().st_mode) == 0o644


def test_atomic_write_failure_keeps_old_file_and_no_temp(tmp_path, monkeypatch) -> None:
    target = tmp_path / "f.json"
    atomic_write(target, b"old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(fileio_module.os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_saved_entries_leave_no_temp_files(box: Outbox) -> None:
    for n in range(5):
        box.save(entry(n))
    assert all(p.name.startswith("msg_") and p.suffix == ".json" for p in box.path.iterdir())


# ------------------------------------------------ service.flush_outbox (resend)

URL = "https://platform.example.com/api/jenkins/callback"
DOWN = "https://down.example.com/api/jenkins/callback"


@pytest.fixture
def flush_settings(tmp_path: Path, make_settings, monkeypatch):
    from ci_report.callback import delivery

    monkeypatch.setattr(delivery, "backoff_delay", lambda attempt: 0.0)
    return make_settings(
        api_key="flush-api-key", outbox=str(tmp_path / "outbox"), max_attempts=2, url=URL
    )


def queue(settings, n: int, url: str = URL, age_s: float = 60.0, **kw) -> Path:
    """An entry created ``age_s`` ago by a build with ``settings``' credentials, for ``url``;
    ``n`` orders them (lower = older file)."""
    from ci_report.callback.auth import EntryBinding
    from ci_report.jenkins_env import normalize_endpoint

    box = Outbox(settings.outbox_path)
    made = entry(n, url=url, created_at=time.time() - age_s, **kw)
    made.bind(EntryBinding(settings, normalize_endpoint(url)))
    path = box.save(made)
    mtime = time.time() - 1000 + n
    os.utime(path, (mtime, mtime))
    return path


def test_flush_delivers_everything(requests_mock, flush_settings, captured_console) -> None:
    from ci_report.callback.service import flush_outbox

    for n in (1, 2, 3):
        queue(flush_settings, n, attempts=4)
    requests_mock.post(URL, status_code=200)
    summary = flush_outbox(flush_settings, console=captured_console)
    assert (summary.delivered, summary.remaining, summary.dead) == (3, 0, 0)
    ids = [r.headers["webhook-id"] for r in requests_mock.request_history]
    assert ids == [entry(n).delivery_id for n in (1, 2, 3)]  # oldest first, original ids
    assert all(r.body == BODY for r in requests_mock.request_history)
    assert all(r.headers["X-Api-Key"] == "flush-api-key" for r in requests_mock.request_history)
    assert list(Outbox(flush_settings.outbox_path).path.iterdir()) == []


def test_flush_url_override(requests_mock, flush_settings, captured_console) -> None:
    from ci_report.callback.service import flush_outbox

    queue(flush_settings, 1, url=DOWN)  # ours (our credentials), made for an endpoint that moved
    requests_mock.post(URL, status_code=200)
    summary = flush_outbox(flush_settings, console=captured_console, url_override=URL)
    assert summary.delivered == 1
    assert requests_mock.last_request.url == URL


def test_flush_entry_without_url_waits(requests_mock, flush_settings, captured_console) -> None:
    from ci_report.callback.service import flush_outbox

    queue(flush_settings, 1, url=None)
    summary = flush_outbox(flush_settings, console=captured_console)
    assert summary.remaining == 1 and summary.delivered == 0
    assert "flush --url" in summary.errors[0]
    assert requests_mock.call_count == 0


def test_flush_explicit_retries_rejected_and_counts(
    requests_mock, flush_settings, captured_console
):
    from ci_report.callback.service import flush_outbox

    queue(flush_settings, 1, rejected=True, attempts=1)
    requests_mock.post(URL, status_code=403)
    summary = flush_outbox(flush_settings, console=captured_console)
    assert summary.rejected == 1 and summary.remaining == 1
    assert requests_mock.call_count == 1
    kept = Outbox(flush_settings.outbox_path)
    again = kept.load(kept.pending()[0])
    assert again.rejected and again.attempts == 2 and again.last_status == 403


def test_flush_auto_skips_rejected_and_stops_at_transport_failure(
    requests_mock, flush_settings, captured_console
) -> None:
    from ci_report.callback.service import flush_outbox

    queue(flush_settings, 1, rejected=True)  # waits for an explicit flush
    queue(flush_settings, 2)  # delivered
    queue(flush_settings, 3)  # the endpoint goes down: stop here
    queue(flush_settings, 4)  # not tried this time
    refused = requests.exceptions.ConnectionError(ConnectionRefusedError(111, "Connection refused"))
    requests_mock.post(URL, [{"status_code": 200}, {"exc": refused}])
    summary = flush_outbox(flush_settings, console=captured_console, auto=True)
    assert summary.skipped_rejected == 1
    assert summary.delivered == 1
    assert summary.remaining == 3
    assert "connection refused" in (summary.stopped_reason or "")
    sent = [(r.url, r.headers["webhook-id"]) for r in requests_mock.request_history]
    assert sent == [(URL, entry(2).delivery_id), (URL, entry(3).delivery_id)]  # one try each
    box = Outbox(flush_settings.outbox_path)
    left = {box.load(p).delivery_id: box.load(p) for p in box.pending()}
    assert set(left) == {entry(n).delivery_id for n in (1, 3, 4)}
    assert left[entry(3).delivery_id].attempts == 1
    assert left[entry(4).delivery_id].attempts == 0
    assert not any(".claim-" in p.name for p in box.path.iterdir())


def test_flush_ttl_expiry_moves_to_dead(requests_mock, flush_settings, captured_console) -> None:
    from ci_report.callback.service import flush_outbox

    old = queue(flush_settings, 1, age_s=8 * 86_400)
    queue(flush_settings, 2)
    requests_mock.post(URL, status_code=200)
    summary = flush_outbox(flush_settings, console=captured_console)
    assert summary.dead == 1 and summary.delivered == 1
    assert requests_mock.call_count == 1
    dead = Outbox(flush_settings.outbox_path).dead_path / old.name
    assert dead.exists()
    errors = [line for line in captured_console.lines if "expired" in line]
    assert len(errors) == 1
    assert entry(1).delivery_id in errors[0] and "NOT delivered" in errors[0]


def test_flush_ttl_expiry_logged_as_error(requests_mock, flush_settings) -> None:
    import io
    import json

    from ci_report.callback.service import flush_outbox
    from ci_report.console import Console

    stream = io.StringIO()
    queue(flush_settings, 1, age_s=30 * 86_400)
    flush_outbox(flush_settings, console=Console(log_format="json", stream=stream))
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    expired = [r for r in records if "expired" in r["message"]]
    assert [r["level"] for r in expired] == ["error"]
    assert expired[0]["deliveryId"] == entry(1).delivery_id


def test_flush_ttl_from_settings(requests_mock, flush_settings, captured_console) -> None:
    from ci_report.callback.service import flush_outbox

    flush_settings.outbox_ttl_days = 0.5
    queue(flush_settings, 1, age_s=86_400)
    summary = flush_outbox(flush_settings, console=captured_console)
    assert summary.dead == 1 and requests_mock.call_count == 0


def test_flush_needs_auth(make_settings, tmp_path: Path, captured_console) -> None:
    from ci_report.callback.service import flush_outbox
    from ci_report.errors import ConfigError

    with pytest.raises(ConfigError):
        flush_outbox(make_settings(outbox=str(tmp_path)), console=captured_console)


def test_run_callback_flushes_earlier_entries_first(
    requests_mock, flush_settings, tmp_path: Path, captured_console
) -> None:
    from ci_report.callback.service import run_callback
    from ci_report.jenkins_env import BuildContext

    (tmp_path / "r.xml").write_text('<testsuite><testcase name="a" time="1"/></testsuite>')
    queue(flush_settings, 1)
    flush_settings.url = URL
    flush_settings.workspace = str(tmp_path)
    flush_settings.junit = ["r.xml"]
    requests_mock.post(URL, status_code=200)
    outcome = run_callback(flush_settings, BuildContext(), console=captured_console)
    assert outcome.outcome == "delivered"
    ids = [r.headers["webhook-id"] for r in requests_mock.request_history]
    assert ids == [entry(1).delivery_id, outcome.delivery_id]
    assert Outbox(flush_settings.outbox_path).pending() == []
    assert "resent 1 earlier callback" in captured_console.text


def _callback_in(tmp_path: Path, settings, report: str = "r.xml") -> None:
    (tmp_path / report).write_text('<testsuite><testcase name="a" time="1"/></testsuite>')
    settings.url = URL
    settings.workspace = str(tmp_path)
    settings.junit = [report]


def test_run_callback_outcome_first_then_backlog(
    requests_mock, flush_settings, tmp_path: Path, captured_console
) -> None:
    """Regression: the auto-flush summary was printed before the callback's own outcome."""
    from ci_report.callback.service import run_callback
    from ci_report.jenkins_env import BuildContext

    _callback_in(tmp_path, flush_settings)
    flush_settings.run_id = "64"
    captured_console.debug_enabled = False
    queue(flush_settings, 1)
    requests_mock.post(URL, status_code=200)
    run_callback(flush_settings, BuildContext(), console=captured_console)
    lines = captured_console.lines
    assert lines[0].startswith("[ci-report] callback delivered"), lines
    assert "outbox backlog: resent 1 earlier callback(s)" in captured_console.text


def test_run_callback_does_not_resend_its_own_queued_copy(
    requests_mock, flush_settings, tmp_path: Path, captured_console
) -> None:
    """Regression: a re-run of a build whose callback was queued sent it twice (once as an
    'earlier callback', then again: 'the receiver already had it'), and a delivered callback
    left its queued copy in the outbox for a later flush."""
    from ci_report.callback.service import run_callback
    from ci_report.jenkins_env import BuildContext

    _callback_in(tmp_path, flush_settings)
    requests_mock.post(URL, status_code=503)
    first = run_callback(flush_settings, BuildContext(), console=captured_console)
    assert first.outcome == "queued"
    box = Outbox(flush_settings.outbox_path)
    assert len(box.pending()) == 1
    requests_mock.reset_mock()
    requests_mock.post(URL, status_code=200)
    again = run_callback(flush_settings, BuildContext(), console=captured_console)
    assert again.outcome == "delivered" and again.delivery_id == first.delivery_id
    assert requests_mock.call_count == 1
    assert box.pending() == []


def test_run_callback_bad_case_map_still_delivers(
    requests_mock, flush_settings, tmp_path: Path, captured_console
) -> None:
    """Regression: a missing or broken --case-map was an 'internal error': no callback at all."""
    from ci_report.callback.service import run_callback
    from ci_report.jenkins_env import BuildContext

    _callback_in(tmp_path, flush_settings)
    requests_mock.post(URL, status_code=200)
    (tmp_path / "bad.json").write_text("{bad")
    for case_map in (tmp_path / "missing.json", tmp_path / "bad.json"):
        flush_settings.case_map = str(case_map)
        outcome = run_callback(flush_settings, BuildContext(), console=captured_console)
        assert outcome.outcome == "delivered"
        assert f"cannot use the case map {case_map}" in captured_console.text


@pytest.mark.parametrize("value", ["null", "bogus"])
def test_run_callback_unusable_build_result_still_delivers(
    value, requests_mock, flush_settings, tmp_path: Path, captured_console
) -> None:
    """Regression: --build-result "${currentBuild.result}" (null) sent no callback."""
    import json

    from ci_report.callback.service import run_callback
    from ci_report.jenkins_env import BuildContext

    _callback_in(tmp_path, flush_settings)
    flush_settings.build_result = value
    requests_mock.post(URL, status_code=200)
    outcome = run_callback(flush_settings, BuildContext(), console=captured_console)
    assert outcome.outcome == "delivered"
    assert json.loads(outcome.payload_bytes)["status"] == "success"
    assert "ignored, the status follows the test results" in captured_console.text


def test_run_callback_since_skipping_everything_says_so(
    flush_settings, tmp_path: Path, captured_console
) -> None:
    """Regression: reports all older than --since were reported as 'not found, pass --junit'."""
    from ci_report.callback.service import run_callback
    from ci_report.jenkins_env import BuildContext

    _callback_in(tmp_path, flush_settings)
    flush_settings.junit = ["*.xml"]
    flush_settings.since = int((time.time() + 3600) * 1000)
    run_callback(flush_settings, BuildContext(), dry_run=True, console=captured_console)
    text = captured_console.text
    assert "older than this build (--since" in text
    assert "--junit GLOB" not in text


# ------------------------------------------------ trust: binding, seal, directory and entry checks


def _binding(make_settings, **secrets):
    from ci_report.callback.auth import EntryBinding

    return EntryBinding(make_settings(**secrets), URL)


def test_fingerprint_and_seal_depend_on_the_credentials_and_reveal_none(make_settings) -> None:
    ours = _binding(make_settings, api_key="key-a-0123456789", signature_secret="whsec_YWJjZA==")
    same = _binding(make_settings, api_key="key-a-0123456789", signature_secret="whsec_YWJjZA==")
    other = _binding(make_settings, api_key="key-b-0123456789")
    assert ours.fingerprint == same.fingerprint != other.fingerprint
    assert len(ours.fingerprint) == 64 and "key-a" not in ours.fingerprint
    e = entry().bind(ours)
    assert e.sealed_by(same) and not e.sealed_by(other)
    for change in ({"body": b"{}"}, {"subject": "other#1"}, {"endpoint": DOWN}):
        forged = entry().bind(ours)
        for name, value in change.items():
            setattr(forged, name, value)
        assert not forged.sealed_by(ours), change


def test_world_writable_or_foreign_directory_is_refused(box: Outbox) -> None:
    from ci_report.callback.outbox import UntrustedOutbox

    box.ensure()
    assert stat.S_IMODE(box.path.stat().st_mode) == 0o700
    os.chmod(box.path, 0o755)
    box.check()  # ours and not writable by others: tightened quietly
    assert stat.S_IMODE(box.path.stat().st_mode) == 0o700
    os.chmod(box.path, 0o777)
    with pytest.raises(UntrustedOutbox, match="writable by others"):
        box.save(entry())
    if os.geteuid() == 0:
        os.chmod(box.path, 0o700)
        os.chown(box.path, 54_321, 54_321)
        with pytest.raises(UntrustedOutbox, match="belongs to uid 54321"):
            box.check()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"deliveryId": "msg_', "truncated"),
        ('{"deliveryId": "../../x", "body": "b"}', "no valid deliveryId"),
        ('{"deliveryId": "msg_1", "body": 7}', "no body"),
        ('["a list"]', "not a JSON object"),
        (b"\xff\xfe".decode("latin-1"), "truncated"),
    ],
    ids=["nested", "truncated", "traversal", "body-type", "list", "undecodable"],
)
def test_hostile_entries_are_buried_with_a_reason(box: Outbox, content: str, reason) -> None:
    box.ensure()
    good = box.save(entry(1))
    os.utime(good, (time.time() - 100, time.time() - 100))  # good one first
    bad = box.path / "msg_bad.json"
    bad.write_text(content, encoding="latin-1")
    os.chmod(bad, 0o600)
    reported = []
    seen = [e.delivery_id for _, e in box.iter_claimed(on_bad=lambda *a: reported.append(a))]
    assert seen == [entry(1).delivery_id]
    ((name, why, dead),) = reported
    assert name == "msg_bad.json" and reason in why and dead.parent == box.dead_path


def test_foreign_owned_or_group_writable_entry_is_refused(box: Outbox) -> None:
    from ci_report.callback.outbox import BadEntry

    path = box.save(entry(1))
    os.chmod(path, 0o666)
    with pytest.raises(BadEntry, match="writable by others"):
        box.load(path)
    if os.geteuid() == 0:
        os.chmod(path, 0o600)
        os.chown(path, 54_321, 54_321)
        with pytest.raises(BadEntry, match="owned by uid 54321"):
            box.load(path)


def test_flush_leaves_other_endpoints_and_credentials_alone(
    requests_mock, flush_settings, make_settings, captured_console
) -> None:
    from ci_report.callback.service import flush_outbox

    theirs = make_settings(api_key="their-api-key-000", url=URL, outbox=str(flush_settings.outbox))
    queue(theirs, 1)  # our endpoint, their credentials
    queue(flush_settings, 2, url=DOWN)  # our credentials, another endpoint
    queue(flush_settings, 3)  # ours
    requests_mock.post(URL, status_code=200)
    summary = flush_outbox(flush_settings, console=captured_console)
    assert (summary.delivered, summary.foreign, summary.remaining) == (1, 2, 0)
    assert [r.headers["webhook-id"] for r in requests_mock.request_history] == [
        entry(3).delivery_id
    ]
    adopted = flush_outbox(flush_settings, console=captured_console, adopt=True)
    assert (adopted.delivered, adopted.foreign) == (1, 1)  # the other endpoint stays alone
    last = requests_mock.last_request
    assert last.headers["webhook-id"] == entry(1).delivery_id
    assert last.headers["X-Api-Key"] == "flush-api-key"


def test_v1_entries_without_fingerprint_are_sent_only_when_adopted(
    requests_mock, flush_settings, captured_console
) -> None:
    from ci_report.callback.service import flush_outbox

    box = Outbox(flush_settings.outbox_path)
    old = entry(1, created_at=time.time() - 60)
    data = old.to_json()
    data["schema"] = "ci-report/outbox/v1"
    for name in ("endpoint", "credentialFingerprint", "seal", "firstAttemptAt"):
        del data[name]
    box.ensure()
    atomic_write(box.path / f"{old.delivery_id}.json", json.dumps(data))
    requests_mock.post(URL, status_code=200)
    assert flush_outbox(flush_settings, console=captured_console).foreign == 1
    assert requests_mock.call_count == 0
    assert flush_outbox(flush_settings, console=captured_console, adopt=True).delivered == 1
