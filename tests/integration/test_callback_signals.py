"""SIGTERM / SIGINT during delivery: the payload is saved, the process exits 143 / 130 at once."""

from __future__ import annotations

import signal
import time

import pytest
from fault_server import applied, outbox_leftovers

pytestmark = pytest.mark.integration

EXIT_WITHIN_S = 5.0  # the contract: save what is in flight, exit within 5 s


def read_stderr_until(proc, marker: str, timeout: float) -> str:
    """Read ``proc``'s stderr (raw, below the text wrapper) until ``marker`` shows up."""
    import os
    import selectors

    fd = proc.stderr.fileno()
    seen = b""
    end = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while marker.encode() not in seen:
            left = end - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise TimeoutError(f"no {marker!r} on stderr: {seen.decode(errors='replace')}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError(f"stderr closed before {marker!r}: {seen.decode()}")
            seen += chunk
    return seen.decode()


def wait_until_asleep(pid: int, timeout: float) -> None:
    """Until ``pid``'s main thread is in the kernel's sleep (``/proc/<pid>/wchan``): the
    "retrying in" line comes right *before* the sleep, and a signal landing between the two
    would not test the sleep. Where the kernel hides wchan, a short wait into the long sleep."""
    wchan = f"/proc/{pid}/wchan"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(wchan) as f:
                where = f.read().strip()
        except OSError:
            where = ""
        if where in ("", "0"):  # not shown here: the sleep is 60 s long, be well inside it
            time.sleep(0.5)
            return
        if "nanosleep" in where:
            return
        time.sleep(0.01)
    raise TimeoutError(f"process {pid} never went to sleep")


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["TERM", "INT"]
)
@pytest.mark.parametrize("phase", ["request-held", "backoff-sleep"])
def test_signal_mid_delivery_saves_and_exits(signum, code, phase, cli, receiver, fault_servers):
    # request-held: the server holds the request; backoff-sleep: 429 with Retry-After: 60, then
    # the retry wait. Both last far longer than EXIT_WITHIN_S, so a signal only acted on once
    # the request or the sleep is over cannot pass (a plain 503's first backoff is under 1 s).
    server = fault_servers(receiver.url, default="hold" if phase == "request-held" else "429:60")
    env = cli.env(
        CI_REPORT_URL=server.url,
        CI_REPORT_READ_TIMEOUT="60",
        CI_REPORT_DEADLINE="300",
        CI_REPORT_MAX_ATTEMPTS="5",
        RUN_ID="9100",
    )
    proc = cli.popen(["callback", "--strict"], env=env)
    try:
        server.wait_for_requests(1, timeout=20)
        early = ""
        if phase == "backoff-sleep":
            # observed, not assumed: the process says it waits to retry right before it sleeps
            early = read_stderr_until(proc, "retrying in 60.0 s", timeout=20)
            wait_until_asleep(proc.pid, timeout=20)
        sent = time.monotonic()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=EXIT_WITHIN_S + 5)
        err = early + err
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, err
    assert took <= EXIT_WITHIN_S, f"exit took {took:.1f} s"
    assert "Traceback" not in err
    assert out == ""
    assert "kept in the outbox" in err, err
    assert len(server.requests) == 1

    result = cli.result()
    assert result["outcome"] == "queued"
    (entry,) = cli.outbox_entries()
    assert entry["deliveryId"] == result["deliveryId"] == server.requests[0].webhook_id
    assert "9100" not in applied(receiver)

    server.release()
    flushed = cli.run(["flush", "--strict", "--url", receiver.url], env=env)
    assert flushed.returncode == 0, flushed
    assert cli.outbox_entries() == []
    assert applied(receiver)["9100"]["applied_count"] == 1
    assert [r["webhook_id"] for r in receiver.requests()] == [result["deliveryId"]]


def _queue_earlier_build(cli, server) -> str:
    """Build 1 could not deliver: its callback waits in the outbox, addressed to ``server``."""
    env = cli.env(CI_REPORT_URL=server.url, CI_REPORT_MAX_ATTEMPTS="1", BUILD_NUMBER="1")
    res = cli.run(["callback", "--strict"], env=env)
    assert res.returncode == 75, res
    (entry,) = cli.outbox_entries()
    return entry["deliveryId"]


def test_signal_during_auto_flush_keeps_this_builds_payload(cli, receiver, fault_servers):
    """Regression: SIGTERM while the start-of-callback flush resent an older entry lost the
    current build's payload (the flush ran outside the save-on-interrupt guard)."""
    earlier = fault_servers(receiver.url, default="503")
    earlier_id = _queue_earlier_build(cli, earlier)
    earlier.set_default("ok")
    earlier.push("hold")  # the resend of build 1 is held; build 2's own send would pass
    env = cli.env(
        CI_REPORT_URL=earlier.url,  # the same endpoint: an outbox resends only there
        BUILD_NUMBER="2",
        RUN_ID="9200",
        CI_REPORT_READ_TIMEOUT="30",
        CI_REPORT_FLUSH_BUDGET="30",
    )
    proc = cli.popen(["callback", "--strict"], env=env)
    try:
        earlier.wait_for_requests(2, timeout=20)  # the auto-flush is resending build 1
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=EXIT_WITHIN_S + 5)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143, err
    assert took <= EXIT_WITHIN_S
    ids = {e["deliveryId"] for e in cli.outbox_entries()}
    assert earlier_id in ids, "the entry being flushed was lost"
    assert len(ids) == 2, f"this build's callback was lost: {ids}\n{err}"
    assert cli.result()["outcome"] == "queued"
    earlier.release()
    flushed = cli.run(["flush", "--strict", "--url", receiver.url], env=env)
    assert flushed.returncode == 0, flushed
    assert {e["applied_count"] for e in receiver.executions()} == {1}
    assert len(receiver.executions()) == 2


def test_auto_flush_stays_within_its_budget(cli, receiver, fault_servers):
    """Regression: the start-of-callback flush was bounded by CI_REPORT_FLUSH_BUDGET only
    between requests; one unanswered request held the build for the full read timeout."""
    earlier = fault_servers(receiver.url, default="503")
    _queue_earlier_build(cli, earlier)
    earlier.set_default("ok")
    earlier.push("hold")  # the resend of build 1 is held; build 2's own send passes
    env = cli.env(
        CI_REPORT_URL=earlier.url,  # the same endpoint: an outbox resends only there
        BUILD_NUMBER="2",
        RUN_ID="9300",
        CI_REPORT_READ_TIMEOUT="30",
        CI_REPORT_FLUSH_BUDGET="1",
    )
    started = time.monotonic()
    res = cli.run(["callback", "--strict"], env=env, timeout=60)
    took = time.monotonic() - started
    assert res.returncode == 0, res
    # a 1 s budget, far from the 30 s read timeout (generous bound for a slow machine)
    assert took < 15, f"the auto-flush held the build {took:.1f} s"
    assert "1 still waiting" in res.stderr, res
    assert applied(receiver)["9300"]["applied_count"] == 1
    assert len(cli.outbox_entries()) == 1


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_flush_killed_mid_send_loses_nothing(signum, code, cli, receiver, fault_servers):
    """A flush stopped while it holds an entry: SIGTERM gives it back at once; after SIGKILL
    the claim of the dead process is taken back by the next flush. Delivered once either way."""
    earlier = fault_servers(receiver.url, default="503")
    delivery_id = _queue_earlier_build(cli, earlier)
    earlier.set_default("hold")
    env = cli.env(CI_REPORT_URL=earlier.url, CI_REPORT_READ_TIMEOUT="30", RUN_ID="9400")
    proc = cli.popen(["flush", "--strict"], env=env)
    try:
        earlier.wait_for_requests(2, timeout=20)
        assert cli.outbox_entries() == []  # claimed by the flush
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=EXIT_WITHIN_S + 5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, err
    if signum == signal.SIGTERM:
        (entry,) = cli.outbox_entries()  # given back, not left as a claim
        assert entry["deliveryId"] == delivery_id
    earlier.release()
    flushed = cli.run(["flush", "--strict", "--url", receiver.url], env=env)
    assert flushed.returncode == 0, flushed
    assert "1 delivered, 0 remaining" in flushed.stderr, flushed
    assert outbox_leftovers(cli.outbox) == []
    assert applied(receiver)["64"]["applied_count"] == 1
