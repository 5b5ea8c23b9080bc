"""The report JSON (ci-report/image-push/v1) and the console summary block."""

from __future__ import annotations

import io
import json
from pathlib import Path

from ci_report.console import Console
from ci_report.image.diagnosis import RunFacts, diagnose
from ci_report.image.report import build_report, print_summary, write_report

LINES = ['time="2026-11-23T18:14:26Z" level=info msg="Pushing image to reg.example.com/a/b:1"']


def _report():
    d = diagnose(
        RunFacts(
            exit_code=143,
            elapsed=600.0,
            timeout=600.0,
            deadline_hit=True,
            lines=LINES,
            estimate={"totalBytes": 300_000_000},
            bandwidth_bps=500_000.0,
        )
    )
    rep = build_report(
        diagnosis=d,
        exit_code=143,
        phase="push",
        elapsed=600.0,
        timeout=600,
        estimate={"totalBytes": 300_000_000},
        destinations=["reg.example.com/a/b:1"],
    )
    return d, rep


def test_report_schema_fields(tmp_path: Path) -> None:
    _, rep = _report()
    path = write_report(tmp_path / "sub" / "r.json", rep)
    data = json.loads(path.read_text())
    assert data["schema"] == "ci-report/image-push/v1"
    assert {
        "outcome",
        "exitCode",
        "phase",
        "elapsedSeconds",
        "timeoutSeconds",
        "estimate",
        "destinations",
        "digest",
        "diagnosis",
    } <= set(data)
    assert data["outcome"] == "timed-out" and data["diagnosis"]["code"] == "push-timeout"
    assert set(data["diagnosis"]) == {"code", "summary", "evidence", "fixes"}


def test_summary_block_order() -> None:
    d, rep = _report()
    out = io.StringIO()
    print_summary(Console(stream=out, color="never"), rep, d)
    text = out.getvalue().splitlines()
    assert text[0] == "[ci-report] image push TIMED OUT [push-timeout]"
    labels = [line[len("[ci-report]") :].split(":")[0].strip() for line in text[1:]]
    assert labels.index("phase") < labels.index("elapsed") < labels.index("cause")
    assert labels.index("cause") < labels.index("evidence") < labels.index("fix")
    assert any("fix: 1. --timeout " in line for line in text)


def test_summary_json_lines() -> None:
    d, rep = _report()
    out = io.StringIO()
    print_summary(Console(stream=out, log_format="json"), rep, d)
    first = json.loads(out.getvalue().splitlines()[0])
    assert first["code"] == "push-timeout" and first["outcome"] == "timed-out"
