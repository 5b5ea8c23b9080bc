"""The image-push report (schema ``ci-report/image-push/v1``) and the console summary block."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence

from .diagnosis import Diagnosis, fmt_bytes, fmt_duration, signal_name

__all__ = ["SCHEMA", "build_report", "print_summary", "write_report"]

SCHEMA = "ci-report/image-push/v1"


def build_report(
    *,
    diagnosis: Diagnosis,
    exit_code: Optional[int],
    phase: Optional[str],
    elapsed: Optional[float],
    timeout: Optional[float],
    estimate: Optional[dict[str, Any]],
    destinations: Sequence[str],
    digest: Optional[str] = None,
    **extra: Any,
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "outcome": diagnosis.outcome,
        "exitCode": exit_code,
        "phase": phase,
        "elapsedSeconds": None if elapsed is None else round(elapsed, 1),
        "timeoutSeconds": None if timeout is None else int(timeout),
        "estimate": estimate,
        "destinations": list(destinations),
        "digest": digest,
        "diagnosis": diagnosis.to_dict(),
    }
    report.update({k: v for k, v in extra.items() if v is not None})
    return report


def write_report(path: str | os.PathLike[str], report: dict[str, Any]) -> Path:
    """Write atomically (temp file + rename), so a reader never sees half a report."""
    from ..fileio import atomic_write

    target = Path(path)
    atomic_write(target, json.dumps(report, indent=2, sort_keys=False) + "\n", mode=0o644)
    return target


_HEADLINE = {
    "pushed": "image pushed",
    "failed": "image push FAILED",
    "timed-out": "image push TIMED OUT",
    "terminated": "image push TERMINATED",
    "skipped": "image push skipped",
}


def exit_text(exit_code: Optional[int]) -> str:
    if exit_code is None:
        return "no exit code recorded"
    sig = signal_name(exit_code)
    return f"{exit_code} ({sig})" if sig else str(exit_code)


def print_summary(console: Any, report: dict[str, Any], diagnosis: Diagnosis) -> None:
    """One outcome line, then phase, elapsed/timeout, exit, cause, evidence and fixes."""
    outcome = report["outcome"]
    head = _HEADLINE.get(outcome, outcome)
    if diagnosis.code:
        head += f" [{diagnosis.code}]"
    if outcome == "pushed":
        head += ": " + ", ".join(report["destinations"])
        if report.get("digest"):
            head += f" @ {report['digest']}"
    facts: list[tuple[str, str]] = []
    if report.get("phase"):
        facts.append(("phase", str(report["phase"])))
    elapsed, timeout = report.get("elapsedSeconds"), report.get("timeoutSeconds")
    if elapsed is not None:
        text = fmt_duration(elapsed)
        if timeout:
            text += f" of the {timeout} s timeout"
            if timeout >= 60:
                text += f" ({fmt_duration(timeout)})"
        facts.append(("elapsed", text))
    if outcome != "skipped":
        facts.append(("exit", exit_text(report.get("exitCode"))))
    estimate = report.get("estimate") or {}
    total = estimate.get("totalBytes") if isinstance(estimate, dict) else None
    if total:
        facts.append(("estimate", f"{fmt_bytes(total)} to push"))
    if report.get("pushSeconds"):
        facts.append(("push", fmt_duration(report["pushSeconds"])))
    if diagnosis.cause:
        facts.append(("decided", diagnosis.cause))
    level = "outcome" if outcome in ("pushed", "skipped") else "error"
    console.block(
        head,
        level=level,
        cause=diagnosis.summary if diagnosis.code else None,
        evidence=diagnosis.evidence,
        fixes=[f"{i}. {fix}" for i, fix in enumerate(diagnosis.fixes, 1)],
        facts=facts,
        outcome=outcome,
        code=diagnosis.code,
    )
