"""``ci-report demo``: the README's first command, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_demo_runs_the_whole_path_and_shows_what_arrived() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JENKINS_", "CI_REPORT_"))}
    res = subprocess.run(
        [sys.executable, "-m", "ci_report", "demo", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    executions = {row["run_id"]: row for row in json.loads(res.stdout)["executions"]}
    # the bundled examples, verified by all three modes, applied once despite the re-send
    first = executions["1001"]
    assert first["modes"] == "api-key,jwt,hmac"
    assert first["applied_count"] == 1
    assert first["passed"] + first["failed"] + first["skipped"] == first["total"] > 0
    # the callback that found the endpoint down arrived through the outbox flush
    assert executions["1002"]["status"] == "success"
    assert "the receiver already had it (applied once)" in res.stderr
    assert "kept in the outbox" in res.stderr
    assert "outbox flushed: 1 delivered, 0 remaining" in res.stderr
    # the demo's generated secrets never reach the console
    for line in res.stderr.splitlines():
        assert line.startswith("[ci-report]"), line
    assert "whsec_" not in res.stderr
