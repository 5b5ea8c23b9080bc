"""Many ``callback`` and ``flush`` processes on ONE outbox: nothing lost, nothing sent twice."""

from __future__ import annotations

import json
import time

import pytest
from fault_server import Cli, applied, outbox_leftovers, receiver_requests_by_id

pytestmark = pytest.mark.integration

FIRST_WAVE = 8
SECOND_WAVE = 4
FLUSHERS = 2


def test_parallel_callbacks_and_flushes_share_one_outbox(tmp_path, receiver, fault_servers):
    endpoint = fault_servers(receiver.url, default="503")  # the platform is down
    outbox = tmp_path / "shared-outbox"
    procs = []  # (kind, build, Cli, Popen)

    def start_callback(build: int):
        cli = Cli(tmp_path / f"build-{build}")
        env = cli.env(
            CI_REPORT_URL=endpoint.url,
            CI_REPORT_OUTBOX=str(outbox),
            BUILD_NUMBER=str(build),
            RUN_ID=str(5000 + build),
            CI_REPORT_MAX_ATTEMPTS="2",
        )
        procs.append(("callback", build, cli, cli.popen(["callback", "--strict"], env=env)))

    def start_flush(n: int):
        cli = Cli(tmp_path / f"flush-{n}")
        env = cli.env(CI_REPORT_OUTBOX=str(outbox))
        args = ["flush", "--url", endpoint.url]
        procs.append(("flush", n, cli, cli.popen(args, env=env)))

    for build in range(1, FIRST_WAVE + 1):
        start_callback(build)
    # wait until part of the first wave has queued its callback, the rest still retrying
    deadline = time.monotonic() + 30
    while len(list(outbox.glob("msg_*.json"))) < FIRST_WAVE // 2:
        assert time.monotonic() < deadline, "the first wave never queued"
        time.sleep(0.02)
    endpoint.set_default("ok")  # the platform is back
    for n in range(FLUSHERS):
        start_flush(n)
    for build in range(FIRST_WAVE + 1, FIRST_WAVE + SECOND_WAVE + 1):
        start_callback(build)

    results = {}
    for kind, n, cli, proc in procs:
        out, err = proc.communicate(timeout=60)
        results[(kind, n)] = (proc.returncode, err)
        assert "Traceback" not in err, err
        assert out == ""
        if kind == "callback":
            outcome = cli.result()["outcome"]
            # the first wave may have queued (75) or delivered on its retry (0)
            assert (proc.returncode, outcome) in ((0, "delivered"), (75, "queued")), err
            if n > FIRST_WAVE:
                assert (proc.returncode, outcome) == (0, "delivered"), err
        else:
            assert proc.returncode == 0, err

    # what is still waiting belongs to a first-wave build that queued after the flushes ended
    queued_ids = {
        cli.result()["deliveryId"]
        for kind, _n, cli, proc in procs
        if kind == "callback" and proc.returncode == 75
    }
    waiting = {json.loads(p.read_text())["deliveryId"] for p in outbox.glob("msg_*.json")}
    assert waiting <= queued_ids
    final = Cli(tmp_path / "final")
    res = final.run(["flush", "--strict"], env=final.env(CI_REPORT_OUTBOX=str(outbox)))
    assert res.returncode == 0, res

    # every callback applied exactly once; the outbox holds nothing, not even a claim or a temp
    executions = applied(receiver)
    builds = range(1, FIRST_WAVE + SECOND_WAVE + 1)
    assert sorted(executions) == sorted(str(5000 + b) for b in builds)
    assert {e["applied_count"] for e in executions.values()} == {1}
    assert outbox_leftovers(outbox) == []

    # no delivery id reached the receiver twice: each entry was sent by one process only
    per_id = receiver_requests_by_id(receiver)
    assert len(per_id) == FIRST_WAVE + SECOND_WAVE
    twice = {i: n for i, n in per_id.items() if n != 1}
    assert twice == {}, f"sent more than once: {twice}; {results}"
