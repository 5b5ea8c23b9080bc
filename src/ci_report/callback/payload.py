"""The callback payload (schema ``ci-report/callback/v1``), its canonical bytes and delivery id.

The first seven fields are exactly those of the hand-written curl callbacks platforms already
accept; the rest are additions they can ignore. The body holds nothing that changes between
attempts or re-runs, so its hash (and so the delivery id) is stable.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Optional, Union

from ..jenkins_env import BuildContext

if TYPE_CHECKING:
    from ..junit import CaseResult, TestRun

SCHEMA = "ci-report/callback/v1"
BUILD_RESULTS = ("SUCCESS", "UNSTABLE", "FAILURE", "ABORTED", "NOT_BUILT")
_EXTENDED = {
    "SUCCESS": "success",
    "UNSTABLE": "unstable",
    "FAILURE": "failed",
    "ABORTED": "aborted",
    "NOT_BUILT": "not_built",
}


def canonical_body(payload: Mapping[str, Any]) -> bytes:
    """Serialize once: sorted keys, compact separators, UTF-8, no NaN. These bytes are signed
    and sent as they are."""
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def make_delivery_id(context: BuildContext, body: bytes, kind: str = "callback") -> str:
    """``msg_`` + 32 hex: the same for every attempt and every re-run with identical results."""
    canonical = "\n".join(
        [
            context.jenkins_url or "",
            context.job_name or "",
            "" if context.build_number is None else str(context.build_number),
            kind,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    return "msg_" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def run_id_value(raw: Optional[str]) -> Union[int, str, None]:
    """All digits -> a JSON number (as platforms send it); other text stays a string."""
    if raw is None:
        return None
    text = str(raw).strip()
    if not text:
        return None
    return int(text) if text.isascii() and text.isdigit() else text


def normalize_build_result(value: Optional[str]) -> Optional[str]:
    if value is None or not str(value).strip():
        return None
    result = str(value).strip().upper().replace("-", "_").replace(" ", "_")
    if result not in BUILD_RESULTS:
        from ..errors import ConfigError

        raise ConfigError(
            f"unknown build result {value!r}",
            fix="use one of " + ", ".join(BUILD_RESULTS) + " (Jenkins: currentBuild.currentResult)",
        )
    return result


def decide_status(
    build_result: Optional[str], *, failed_cases: int, total_cases: int, style: str = "default"
) -> str:
    """The build result wins when given; otherwise the test results decide. With neither
    (no report and no build result) the status is ``failed``: silence is never success."""
    if build_result:
        if style == "extended":
            return _EXTENDED[build_result]
        return "success" if build_result == "SUCCESS" else "failed"
    if failed_cases > 0 or total_cases == 0:
        return "failed"
    return "success"


def case_entry(case: CaseResult) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "caseId": case.case_id,
        "caseName": case.name,
        "className": case.classname,
        "status": case.status,
        "duration": case.duration_ms,
        "errorMessage": case.message,
    }
    if case.flaky:
        entry["flaky"] = True
    return entry


@dataclass(frozen=True)
class RunSummary:
    """The neutral run model a payload is made from, whoever counted the tests: the JUnit
    parser (:func:`summary_from_run`) or Jenkins' own test report (``ci-report sync``).

    ``failed`` includes the errored cases; ``errored`` is None when the source cannot tell
    errors from failures (Jenkins' test report). ``results`` are payload entries already.
    """

    passed: int
    failed: int
    skipped: int
    errored: Optional[int]
    duration_ms: int
    results: list[dict[str, Any]]
    truncated: bool
    reports: dict[str, Any]

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped


def summary_from_run(
    run: TestRun, *, duration_ms: Optional[int] = None, with_results: bool = True
) -> RunSummary:
    """The parsed JUnit reports as a :class:`RunSummary` (``results`` left empty without
    ``with_results``: :func:`build_body` writes them straight from the records)."""
    if duration_ms is None:
        duration_ms = run.suites_time_ms if run.suites_time_ms is not None else run.cases_time_ms
    return RunSummary(
        passed=run.passed,
        failed=run.failed + run.errored,
        skipped=run.skipped,
        errored=run.errored,
        duration_ms=int(duration_ms or 0),
        results=[case_entry(c) for c in run.results] if with_results else [],
        truncated=bool(run.results_truncated),
        reports={
            "files": len(run.files),
            "parseErrors": [{"file": e.file, "error": e.error} for e in run.parse_errors],
        },
    )


def assemble_payload(
    summary: RunSummary,
    context: BuildContext,
    *,
    run_id: Optional[str],
    build_result: Optional[str],
    status_style: str = "default",
) -> dict[str, Any]:
    """The payload of docs/design.md section 4: the one place its fields are written."""
    return {
        "runId": run_id_value(run_id),
        "status": decide_status(
            build_result,
            failed_cases=summary.failed,
            total_cases=summary.total,
            style=status_style,
        ),
        "passedCases": summary.passed,
        "failedCases": summary.failed,
        "skippedCases": summary.skipped,
        "durationMs": summary.duration_ms,
        "results": summary.results,
        "schema": SCHEMA,
        "errorCases": summary.errored,
        "totalCases": summary.total,
        "build": {
            "jobName": context.job_name,
            "buildNumber": context.build_number,
            "buildUrl": context.build_url,
            "result": build_result,
            "node": context.node,
            "gitCommit": context.git_commit,
            "gitBranch": context.git_branch,
            "changeId": context.change_id,
        },
        "reports": summary.reports,
        "resultsTruncated": summary.truncated,
    }


def build_payload(
    run: TestRun,
    context: BuildContext,
    *,
    run_id: Optional[str],
    build_result: Optional[str],
    duration_ms: Optional[int] = None,
    status_style: str = "default",
) -> dict[str, Any]:
    """The payload from parsed reports and the build context."""
    return assemble_payload(
        summary_from_run(run, duration_ms=duration_ms),
        context,
        run_id=run_id,
        build_result=build_result,
        status_style=status_style,
    )


_encode_str = json.encoder.encode_basestring  # what canonical_body's json.dumps uses for a str
_int_text = int.__repr__
_RESULTS_KEY = b'"results":['
_BATCH = 1000  #: results encoded per piece of the body
_FLAKY = ',"flaky":true'


def _result_text(case: CaseResult) -> str:
    """``canonical_body`` of ``case_entry(case)``: formatted directly for the field types the
    parser gives (str, int, None; a bool is excluded first), else through the dict."""
    cid, cls, msg, dur = case.case_id, case.classname, case.message, case.duration_ms
    if dur.__class__ is int and cid is not True and cid is not False:
        try:
            if cid is None:
                case_id = "null"
            else:
                case_id = _encode_str(cid) if cid.__class__ is str else _int_text(cid)
            return (
                f'{{"caseId":{case_id},"caseName":{_encode_str(case.name)}'
                f',"className":{"null" if cls is None else _encode_str(cls)}'
                f',"duration":{_int_text(dur)}'
                f',"errorMessage":{"null" if msg is None else _encode_str(msg)}'
                f'{_FLAKY if case.flaky else ""},"status":{_encode_str(case.status)}}}'
            )
        except TypeError:
            pass
    return canonical_body(case_entry(case)).decode("utf-8")


def build_body(
    run: TestRun,
    context: BuildContext,
    *,
    run_id: Optional[str],
    build_result: Optional[str],
    duration_ms: Optional[int] = None,
    status_style: str = "default",
) -> tuple[dict[str, Any], bytes]:
    """The payload without its ``results`` (which only the body holds) and the body: exactly
    ``canonical_body(build_payload(...))``, with the results written straight from the records
    in batches into one buffer (no entry dicts, no second copy of the body in memory)."""
    import io

    payload = assemble_payload(
        summary_from_run(run, duration_ms=duration_ms, with_results=False),
        context,
        run_id=run_id,
        build_result=build_result,
        status_style=status_style,
    )
    head = canonical_body(payload)
    # keys are sorted and every '"' inside a string is escaped: the key is found once
    if head.count(_RESULTS_KEY) != 1:  # pragma: no cover - cannot happen, see above
        return payload, canonical_body({**payload, "results": [case_entry(c) for c in run.results]})
    cut = head.index(_RESULTS_KEY) + len(_RESULTS_KEY)
    out = io.BytesIO()
    out.write(head[:cut])
    results = run.results
    for start in range(0, len(results), _BATCH):
        text = ",".join([_result_text(c) for c in results[start : start + _BATCH]])
        out.write(("," + text if start else text).encode("utf-8"))
    out.write(head[cut:])
    del payload["results"]
    return payload, out.getvalue()
