"""SIGTERM / SIGINT during delivery: the payload is saved, the process exits 143 / 130 at once."""

from __future__ import annotations

import signal
import time

import pytest
from conftest import applied

pytestmark = pytest.mark.integration

EXIT_WITHIN_S = 5.0  # the contract: save what is in flight, exit within 5 s


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["TERM", "INT"]
)
@pytest.mark.parametrize("phase", ["request-held", "backoff-sleep"])
def test_signal_mid_delivery_saves_and_exits(signum, code, phase, cli, receiver, fault_servers):
    # request-held: the server holds the request; backoff-sleep: 503 then the retry wait
    server = fault_servers(receiver.url, default="hold" if phase == "request-held" else "503")
    env = cli.env(
        CI_REPORT_URL=server.url,
        CI_REPORT_READ_TIMEOUT="60",
        CI_REPORT_MAX_ATTEMPTS="5",
        RUN_ID="9100",
    )
    proc = cli.popen(["callback", "--strict"], env=env)
    try:
        server.wait_for_requests(1, timeout=20)
        if phase == "backoff-sleep":
            time.sleep(0.2)  # the answer is in; the process is now waiting to retry
        sent = time.monotonic()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=EXIT_WITHIN_S + 5)
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
