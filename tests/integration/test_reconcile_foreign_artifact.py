"""The reconciler and a build whose archived ci-report/callback.json names another run.

A build reports only the run it was started for: the foreign file is left aside (never
delivered, never applied), and the run is closed from Jenkins' own data (build result and test
report). Each build is read once per look (the reconciler hands its answer to sync). Fake
Jenkins on 127.0.0.1, real SQLite ledger."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterator

import pytest
from fake_jenkins import FakeJenkins
from ledger_scenarios import TEST_REPORT, archived

from ci_report.config import Settings
from ci_report.console import Console
from ci_report.platform.jenkins import JenkinsClient
from ci_report.platform.reconcile import Reconciler
from ci_report.platform.runs import open_ledger

pytestmark = pytest.mark.integration


@pytest.fixture
def jenkins() -> Iterator[FakeJenkins]:
    fake = FakeJenkins().start()
    yield fake
    fake.stop()


def test_foreign_archived_run_id_is_ignored_and_rebuilt_from_jenkins(
    jenkins: FakeJenkins, tmp_path: Path
) -> None:
    job = jenkins.add_job("app")
    other_body, other_id, data = archived(tmp_path, "r-other", "app", 1, "SUCCESS")
    jenkins.add_build(
        job,
        result="UNSTABLE",
        test_report=TEST_REPORT,
        artifacts={"ci-report/callback.json": data},
    )
    stream = io.StringIO()
    console = Console(stream=stream)
    ledger = open_ledger(str(tmp_path / "ledger.db"), console=console)
    try:
        ledger.create("app", run_id="r-mine")
        ledger.update(
            "r-mine", reason="build #1 started", status="running", build_number=1,
            trigger_status="success",
        )  # fmt: skip
        client = JenkinsClient(jenkins.url, jenkins.user, jenkins.token)
        reconciler = Reconciler(
            ledger, lambda: client, callback_grace=0, settings=Settings(), console=console
        )
        run, reason, errors = reconciler.reconcile_one_detail("r-mine")

        assert errors == [], stream.getvalue()
        # closed from Jenkins' data, not left open and then called lost
        assert (run.status, run.result_source) == ("unstable", "test-report"), reason
        (stored,) = ledger.callbacks()
        assert stored["run_id"] == "r-mine" and stored["webhook_id"] != other_id
        assert stored["payload"]["runId"] == "r-mine"
        assert (stored["failed"], stored["passed"]) == (1, 4)  # Jenkins' test report
        assert ledger.get("r-other") is None  # the foreign payload was never applied
        assert other_body not in [c["payload"] for c in ledger.callbacks()]
        assert 'names run "r-other": ignored, never sent' in reason, reason
        # one read of the build per look: the reconciler's answer is handed to sync
        build_reads = [p for m, p in jenkins.received if p.split("?")[0] == "/job/app/1/api/json"]
        assert len(build_reads) == 1, build_reads
    finally:
        ledger.close()
