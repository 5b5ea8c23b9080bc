"""Recover the result of a build whose callback never arrived.

For one build (or a batch of ``{runId, job, build}`` lines):

1. read the build; still running -> say so, deliver nothing;
2. finished, with the archived ``ci-report/callback.json`` -> its payload, re-serialized with
   :func:`canonical_body` (the exact bytes of the original), under its **original delivery id**:
   the receiver dedupes, so a late original and a sync are never applied twice;
3. finished, no artifact -> a payload (schema ``ci-report/callback/v1``) from the build result and
   Jenkins' own ``testReport/api/json``. Counts only ever come from that report; with no report
   the payload is status only, with ``reports.files: 0`` and a note saying so.

Without ``deliver`` nothing is sent: the caller shows what would be.

What the build archived is data, never configuration: the file is written by whoever wrote the
Jenkinsfile, so its ``url`` is never used (the payload goes only to the URL the platform
configured: ``--url``, ``CI_REPORT_URL`` or ``API_CALLBACK_URL``, with the platform's
credentials), and a payload for another ``runId`` than the one asked for is refused. Every read
from Jenkins is capped in size and time (see :class:`JenkinsClient`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional, Union

from ..callback.result_file import ARTIFACT_PATH, parse_result_file
from ..console import Console, get_console
from ..errors import EXIT_FAILURE as EXIT_FAILED
from ..errors import EXIT_NOTHING, EXIT_USAGE, ConfigError, InputError
from ..errors import EXIT_OK as EXIT_DONE
from .jenkins import (
    JenkinsClient,
    JenkinsError,
    JenkinsHTTPError,
    JenkinsUnavailable,
    job_full_name,
    split_userinfo,
)

if TYPE_CHECKING:
    from ..config import Settings

BUILD_TREE = (
    "number,url,building,result,duration,timestamp,queueId,builtOn,"
    "actions[_class,lastBuiltRevision[SHA1,branch[name]]]"
)

_CASE_STATUS = {
    "PASSED": "passed",
    "FIXED": "passed",
    "FAILED": "failed",
    "REGRESSION": "failed",
    "SKIPPED": "skipped",
}


@dataclass
class SyncOutcome:
    """``state``: ``running``, ``recovered`` (a payload is ready or sent), ``not-found`` or
    ``error``. ``source``: ``artifact``, ``test-report`` or ``status-only``."""

    job: str
    number: int
    run_id: Optional[Union[int, str]] = None
    state: str = "not-found"
    source: Optional[str] = None
    build_result: Optional[str] = None
    payload: Optional[dict[str, Any]] = None
    body: Optional[bytes] = None
    delivery_id: Optional[str] = None
    url: Optional[str] = None
    delivery: Optional[str] = None  # delivered | queued | rejected; None = not sent
    attempts: int = 0
    error: Optional[str] = None
    notes: list[str] = field(default_factory=list)

    usage_error: bool = False  # the error is configuration (credentials, permissions, URL)
    # the runId of an archived file left aside (``foreign_artifact="ignore"``), for the log
    ignored_run_id: Optional[str] = None

    @property
    def exit_code(self) -> int:
        if self.state in ("not-found",):
            return EXIT_NOTHING
        if self.state == "error":
            # Never 3: "Jenkins could not be read" is not "nothing to recover".
            return EXIT_USAGE if self.usage_error else EXIT_FAILED
        if self.delivery in ("queued", "rejected"):
            return EXIT_FAILED
        return EXIT_DONE

    def summary(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "job": self.job,
            "build": self.number,
            "state": self.state,
            "source": self.source,
            "buildResult": self.build_result,
            "deliveryId": self.delivery_id,
            "url": self.url,
            "delivery": self.delivery,
            "attempts": self.attempts,
            "error": self.error,
            "notes": self.notes,
        }


# -- payload from Jenkins' own data ------------------------------------------------------
def _git(build: dict[str, Any]) -> tuple[Optional[str], Optional[str]]:
    from ..jenkins_env import clean_branch

    for action in build.get("actions") or []:
        revision = (action or {}).get("lastBuiltRevision")
        if revision:
            branches = revision.get("branch") or []
            name = branches[0].get("name") if branches else None
            return revision.get("SHA1"), clean_branch(name)
    return None, None


def _suites(report: dict[str, Any]) -> Iterable[dict[str, Any]]:
    yield from report.get("suites") or []
    for child in report.get("childReports") or []:  # aggregated (matrix, multi-module)
        yield from ((child or {}).get("result") or {}).get("suites") or []


def payload_from_jenkins(
    job: str,
    build: dict[str, Any],
    report: Optional[dict[str, Any]],
    *,
    run_id: Optional[str],
    max_results: int = 10_000,
    max_message: int = 8_000,
    status_style: str = "default",
) -> tuple[dict[str, Any], str, list[str]]:
    """(payload, source, notes) from the build JSON and ``testReport/api/json``."""
    from ..callback.payload import RunSummary, assemble_payload, normalize_build_result
    from ..jenkins_env import BuildContext

    result = normalize_build_result(build.get("result"))
    notes: list[str] = []
    cases: list[dict[str, Any]] = []
    counts = None
    if report is not None and any(
        isinstance(report.get(k), int) for k in ("passCount", "failCount", "skipCount")
    ):
        passed = int(report.get("passCount") or 0)
        failed = int(report.get("failCount") or 0)
        skipped = int(report.get("skipCount") or 0)
        counts = (passed, failed, skipped)
        for suite in _suites(report):
            for case in suite.get("cases") or []:
                status = _CASE_STATUS.get(str(case.get("status", "")).upper())
                if status is None:
                    status = "skipped" if case.get("skipped") else "passed"
                message = case.get("errorDetails")
                if isinstance(message, str) and len(message) > max_message:
                    message = message[:max_message] + "…"
                duration = case.get("duration")
                cases.append(
                    {
                        "caseId": None,
                        "caseName": case.get("name"),
                        "className": case.get("className"),
                        "status": status,
                        "duration": round(float(duration) * 1000)
                        if isinstance(duration, (int, float))
                        else None,
                        "errorMessage": message if status == "failed" else None,
                    }
                )
        source = "test-report"
        notes.append(
            "counts from Jenkins' test report (testReport/api/json); Jenkins does not tell "
            "errors from failures, so errorCases is null and errors count as failed"
        )
        if not cases:
            notes.append("the test report lists no individual cases: counts only")
    else:
        source = "status-only"
        notes.append(
            "no ci-report/callback.json artifact and no Jenkins test report: status only "
            "(the zero counts mean 'unknown', not 'no tests')"
        )
    failed_first = sorted(cases, key=lambda c: 0 if c["status"] == "failed" else 1)
    passed, failed, skipped = counts or (0, 0, 0)
    git_commit, git_branch = _git(build)
    summary = RunSummary(
        passed=passed,
        failed=failed,
        skipped=skipped,
        errored=None if counts else 0,
        duration_ms=int(build.get("duration") or 0),
        results=failed_first[:max_results],
        truncated=len(failed_first) > max_results,
        reports={
            "files": 0,
            "parseErrors": [],
            "source": "jenkins-test-report" if counts else "none",
            "note": "recovered by ci-report sync: " + notes[0],
        },
    )
    context = BuildContext(
        job_name=job_full_name(job),
        build_number=build.get("number"),
        build_url=build.get("url"),
        node=build.get("builtOn") or None,
        git_commit=git_commit,
        git_branch=git_branch,
    )
    payload = assemble_payload(
        summary, context, run_id=run_id, build_result=result, status_style=status_style
    )
    return payload, source, notes


def _from_artifact(data: bytes) -> tuple[dict[str, Any], str, Optional[str], str]:
    """(payload, delivery id, url, outcome recorded by the build) from callback.json."""
    archived = parse_result_file(data)
    return archived.payload, archived.delivery_id, archived.url, archived.outcome


# -- one build -------------------------------------------------------------------------

REFUSE = "refuse"  # an archived payload for another runId: the outcome is an error
IGNORE = "ignore"  # ... : left aside, the payload is rebuilt from Jenkins' data


def sync_build(
    client: JenkinsClient,
    job: str,
    number: int,
    settings: Settings,
    *,
    deliver: bool = False,
    run_id: Optional[str] = None,
    url: Optional[str] = None,
    console: Optional[Console] = None,
    build: Optional[dict[str, Any]] = None,
    foreign_artifact: str = REFUSE,
) -> SyncOutcome:
    """Recover (and with ``deliver``, send) the callback of ``job`` #``number``.

    ``build``: the build's JSON (``BUILD_TREE``) when the caller has just read it, so it is not
    read twice. An archived file for another ``runId`` than ``run_id`` is refused
    (``foreign_artifact="refuse"``: the ``sync`` command, exit 2), or (``"ignore"``: the
    reconciler) left aside and the payload rebuilt from Jenkins' own data; it is never sent."""
    if foreign_artifact not in (REFUSE, IGNORE):
        raise ValueError(f"foreign_artifact must be {REFUSE!r} or {IGNORE!r}")
    from ..callback.payload import canonical_body, make_delivery_id, run_id_value
    from ..jenkins_env import BuildContext

    console = console or get_console()
    out = SyncOutcome(job=job_full_name(job), number=int(number), run_id=run_id_value(run_id))
    if build is None:
        build = client.build(job, number, tree=BUILD_TREE)
    if build is None:
        out.state = "not-found"
        try:
            client.job_info(job)
        except JenkinsHTTPError as exc:
            if exc.status != 404:
                raise
            out.error = f"no job {out.job!r} (or {client.user or 'anonymous'} cannot see it)"
            out.notes.extend(n for n in [exc.fix] if n)
        else:
            out.error = (
                f"no build #{number} of {out.job} (never run, deleted, or discarded by the "
                "job's build retention)"
            )
        return out
    out.build_result = build.get("result")
    if build.get("building") is not False:
        out.state = "running"
        out.notes.append(
            f"build #{number} is still running"
            + (f" (result so far: {build.get('result')})" if build.get("result") else "")
            + ": its own callback will report it; nothing sent"
        )
        return out
    out.state = "recovered"
    artifact = client.artifact(job, number, ARTIFACT_PATH)
    payload: Optional[dict[str, Any]] = None
    file_url = None
    if artifact is not None:
        try:
            payload, out.delivery_id, file_url, recorded = _from_artifact(artifact)
        except ValueError as exc:
            out.notes.append(f"{exc}; building the payload from Jenkins' data instead")
            payload = None
        else:
            wanted = run_id_value(run_id)
            archived = payload.get("runId")
            foreign = wanted is not None and archived is not None and str(archived) != str(wanted)
            if foreign and foreign_artifact == IGNORE:
                out.notes.append(
                    f"the archived {ARTIFACT_PATH} reports runId {_shown_id(archived)}, not "
                    f"{wanted!r}: ignored (never sent); the result is rebuilt from Jenkins' own "
                    "data"
                )
                payload, out.delivery_id, file_url = None, None, None
                out.ignored_run_id = _shown_id(archived)
            elif foreign:
                out.state = "error"
                out.usage_error = True
                out.error = (
                    f"the archived {ARTIFACT_PATH} reports runId {_shown_id(archived)}, not "
                    f"{wanted!r}: refused (a build reports only the run it was started for)"
                )
                out.notes.append(
                    "check the runId given for this build: the build was started for another run"
                    " (or its Jenkinsfile sends a fixed runId)"
                )
                out.payload = None
                return out
            else:
                out.source = "artifact"
                out.notes.append(
                    f"archived {ARTIFACT_PATH} found (the build recorded outcome '{recorded}'); "
                    f"resending its exact body under the original delivery id"
                )
                if wanted is not None and archived is None:
                    payload["runId"] = wanted
                    out.delivery_id = None  # a different body needs its own id
                    out.notes.append(
                        f"the archived payload had no runId; set it to {wanted!r} (new body, "
                        "so a new delivery id)"
                    )
                out.run_id = payload.get("runId")
    if payload is None:
        report = client.test_report(job, number)
        payload, out.source, notes = payload_from_jenkins(
            job,
            build,
            report,
            run_id=run_id,
            max_results=settings.max_results,
            max_message=settings.max_message,
            status_style=settings.status_style,
        )
        out.notes.extend(notes)
    out.payload = payload
    out.body = canonical_body(payload)
    if out.delivery_id is None:
        context = BuildContext(
            jenkins_url=client.base_url, job_name=out.job, build_number=out.number
        )
        out.delivery_id = make_delivery_id(context, out.body)
    out.url = url or settings.callback_url
    if file_url and file_url != out.url:
        out.notes.append(
            f"the archived file names the URL {_shown_url(file_url)}: ignored (sync delivers "
            "only to the URL configured on the platform side)"
        )
    if not deliver:
        return out
    if not out.url:
        raise ConfigError(
            "no callback URL to deliver to",
            cause="sync never delivers to a URL written in the build's archived file",
            fix="set CI_REPORT_URL (or API_CALLBACK_URL), or pass --url",
        )
    from ..callback.service import deliver_or_queue

    result = deliver_or_queue(
        out.body,
        out.delivery_id,
        out.url,
        settings,
        console=console,
        subject=f"{out.job}#{out.number}",
    )
    out.delivery = result.outcome
    out.attempts = result.attempts
    if not result.delivered:
        out.error = result.error
        out.notes.extend(result.hints)
    return out


def _shown_id(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _shown_url(url: Any) -> str:
    """A URL from the artifact as a note may show it: no userinfo, bounded."""
    text = str(url)
    try:
        text = split_userinfo(text)[0]
    except ValueError:
        text = "***@" + text.rpartition("@")[2] if "@" in text else text
    return repr(text if len(text) <= 200 else text[:197] + "...")


# -- batches ---------------------------------------------------------------------------
@dataclass
class BatchEntry:
    job: str
    build: int
    run_id: Optional[str] = None
    line: int = 0


def read_batch(path: Union[str, Path]) -> list[BatchEntry]:
    """JSON lines ``{"runId": .., "job": "a/b", "build": 12}``; blank and ``#`` lines skipped."""
    entries = []
    try:
        text = Path(path).read_text(encoding="utf-8") if str(path) != "-" else _stdin()
    except OSError as exc:
        raise InputError(f"cannot read {path}", cause=exc.strerror) from None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            doc = json.loads(line)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            missing = [k for k in ("job", "build") if k not in doc]
            if missing:
                raise ValueError("missing " + " and ".join(repr(k) for k in missing))
            job, build = doc["job"], doc["build"]
            if not isinstance(job, str) or not str(build).strip().isdigit():
                raise ValueError("job must be a string and build a number")
        except ValueError as exc:
            raise InputError(
                f"{path} line {n} is not a {{runId, job, build}} JSON object",
                cause=str(exc),
                fix='one object per line, e.g. {"runId": 64, "job": "team/app", "build": 12}',
            ) from None
        run_id = doc.get("runId")
        entries.append(BatchEntry(job, int(build), None if run_id is None else str(run_id), line=n))
    return entries


def _stdin() -> str:
    import sys

    return sys.stdin.read()


def sync_batch(
    client: JenkinsClient,
    entries: list[BatchEntry],
    settings: Settings,
    *,
    deliver: bool = False,
    max_entries: Optional[int] = None,
    url: Optional[str] = None,
    console: Optional[Console] = None,
) -> list[SyncOutcome]:
    """Each entry on its own: one failing build never stops the others."""
    console = console or get_console()
    chosen = entries[:max_entries] if max_entries else entries
    if max_entries and len(entries) > max_entries:
        console.info(f"processing the first {max_entries} of {len(entries)} entries (--max)")
    return [
        sync_one(
            client,
            entry.job,
            entry.build,
            settings,
            deliver=deliver,
            run_id=entry.run_id,
            url=url,
            console=console,
        )
        for entry in chosen
    ]


def sync_one(
    client: JenkinsClient,
    job: str,
    number: int,
    settings: Settings,
    *,
    deliver: bool = False,
    run_id: Optional[str] = None,
    url: Optional[str] = None,
    console: Optional[Console] = None,
) -> SyncOutcome:
    """:func:`sync_build`, with a Jenkins failure (unreachable, 401, a login page) turned into
    an ``error`` outcome instead of an exception: one build's failure is one line of output."""
    from ..callback.payload import run_id_value

    try:
        return sync_build(
            client, job, number, settings, deliver=deliver, run_id=run_id, url=url, console=console
        )
    except JenkinsError as exc:
        outcome = SyncOutcome(
            job=job_full_name(job),
            number=int(number),
            run_id=run_id_value(run_id),
            state="error",
            error=exc.message + (f" ({exc.cause})" if exc.cause else ""),
            usage_error=not isinstance(exc, JenkinsUnavailable),
        )
        if exc.fix:
            outcome.notes.append(exc.fix)
        return outcome


def batch_exit_code(outcomes: list[SyncOutcome]) -> int:
    if any(o.exit_code in (EXIT_FAILED, EXIT_USAGE) for o in outcomes):
        return EXIT_FAILED
    if not outcomes or all(o.state == "not-found" for o in outcomes):
        return EXIT_NOTHING
    return EXIT_DONE
