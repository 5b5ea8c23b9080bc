"""The ``callback`` and ``flush`` jobs: parse, build, sign, deliver, keep what was not delivered.

Plain functions for the CLI, the Jenkins library, ``sync`` and other programs. They report through
the console and return outcomes; exit codes are derived from the outcome by the caller.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ..console import Console, get_console
from ..errors import (
    EXIT_CONFIG,
    EXIT_DATAERR,
    EXIT_OK,
    EXIT_TEMPFAIL,
    ConfigError,
    Interrupted,
)
from ..jenkins_env import BuildContext
from .auth import check_auth_settings
from .delivery import DeliveryResult, deliver, make_session
from .outbox import Outbox, OutboxEntry
from .payload import build_payload, canonical_body, make_delivery_id, normalize_build_result
from .result_file import ResultSpill, write_result_file

if TYPE_CHECKING:
    from ..config import Settings
    from ..junit import TestRun

OUTCOME_EXIT = {
    "delivered": EXIT_OK,
    "dry-run": EXIT_OK,
    "queued": EXIT_TEMPFAIL,
    "rejected": EXIT_DATAERR,
    "config-error": EXIT_CONFIG,
}


@dataclass
class CallbackOutcome:
    outcome: str  # delivered | queued | rejected | dry-run | config-error
    delivery_id: str
    payload_bytes: bytes
    url: Optional[str] = None
    delivery: Optional[DeliveryResult] = None
    result_file: Optional[Path] = None
    outbox_file: Optional[Path] = None

    @property
    def exit_code(self) -> int:
        """The ``--strict`` exit code (without ``--strict`` the command exits 0)."""
        return OUTCOME_EXIT[self.outcome]


@dataclass
class FlushSummary:
    delivered: int = 0
    rejected: int = 0
    remaining: int = 0
    dead: int = 0
    skipped_rejected: int = 0
    stopped_reason: Optional[str] = None
    errors: list[str] = field(default_factory=list)


def _counts(run: TestRun) -> str:
    parts = [f"{run.passed} passed", f"{run.failed + run.errored} failed"]
    if run.errored:
        parts[-1] += f" ({run.errored} error{'s' if run.errored != 1 else ''})"
    parts.append(f"{run.skipped} skipped")
    return ", ".join(parts)


def collect(settings: Settings, console: Console, spill: Optional[ResultSpill]) -> TestRun:
    """Find and parse the reports, telling the console what was found and what was not."""
    from ..junit import discover_reports, parse_reports

    discovery = discover_reports(settings.junit or None, settings.workspace_path, settings.since)
    if discovery.files:
        # some reports found: say which patterns found nothing (when none did, one line below)
        for pattern in discovery.unmatched_patterns:
            console.warn(f"no report matches {pattern!r}")
    if discovery.skipped_old and discovery.files:
        console.info(
            f"skipped {len(discovery.skipped_old)} report(s) older than this build "
            f"(--since), e.g. {discovery.skipped_old[0]}"
        )
    case_map = _load_case_map(settings, console)
    from .payload import case_entry

    on_case = (lambda case: spill.add(case_entry(case))) if spill is not None else None
    run = parse_reports(
        discovery.files,
        max_results=settings.max_results,
        max_message=settings.max_message,
        case_map=case_map,
        on_case=on_case,
    )
    for error in run.parse_errors:
        console.warn(f"cannot read report {error.file}: {error.error}")
    if run.failed_after_pass:
        names = ", ".join(run.failed_after_pass[:3])
        console.warn(
            f"{len(run.failed_after_pass)} failing execution(s) of a test whose earlier execution "
            f"of the same name passed were counted as one flaky pass (rerun semantics): {names}; "
            "give repeated tests distinct names if they are different tests"
        )
    if not run.files:
        _warn_no_reports(settings, console, discovery.skipped_old)
    return run


def _warn_no_reports(settings: Settings, console: Console, skipped_old: list[Path]) -> None:
    """One line that says why no report was read and what to do about it."""
    root = settings.workspace_path
    status_fix = (
        "; pass --build-result (Jenkins: currentBuild.currentResult) so the status is right"
        if not settings.build_result
        else ""
    )
    if skipped_old:
        console.warn(
            f"no JUnit report found: all {len(skipped_old)} report(s) found under {root} are "
            f"older than this build (--since {settings.since}), e.g. {skipped_old[0]}; the "
            "tests did not write reports in this build, or --since is not "
            f"currentBuild.startTimeInMillis{status_fix}"
        )
    elif settings.junit:
        where = ", ".join(repr(p) for p in settings.junit)
        console.warn(
            f"no JUnit report found: no report matches {where} under {root} (relative patterns "
            f"start at WORKSPACE); check the path and that the tests ran{status_fix}"
        )
    else:
        fix = status_fix[2:] if status_fix else "pass --junit GLOB if your reports are elsewhere"
        console.warn(f"no JUnit report found in the default locations under {root}; {fix}")


def _load_case_map(settings: Settings, console: Console) -> Optional[dict[str, Any]]:
    """The --case-map file; one that cannot be read costs the caseIds, never the callback."""
    if not settings.case_map:
        return None
    from ..junit import load_case_map

    path = Path(settings.case_map)
    try:
        return dict(load_case_map(path))
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        console.warn(
            f"cannot use the case map {path}: {reason}; caseIds not in the reports are null "
            '(fix: a JSON object {"classname.name": caseId} or CSV lines key,caseId)'
        )
        return None


def run_callback(
    settings: Settings,
    context: Optional[BuildContext] = None,
    *,
    dry_run: bool = False,
    output: Optional[str] = None,
    console: Optional[Console] = None,
) -> CallbackOutcome:
    """Parse the reports, build the payload and deliver it (or queue it in the outbox)."""
    console = console or get_console()
    context = context or BuildContext.from_env()
    build_result = _build_result(settings.build_result, console)
    if settings.run_id is None:
        console.warn("no run id: set RUN_ID or pass --run-id (runId will be null)")
    spill = None if dry_run else ResultSpill(settings.max_results)
    try:
        run = collect(settings, console, spill)
        payload = build_payload(
            run,
            context,
            run_id=settings.run_id,
            build_result=build_result,
            duration_ms=settings.duration_ms,
            status_style=settings.status_style,
        )
        body = canonical_body(payload)
        delivery_id = settings.delivery_id or make_delivery_id(context, body)
        run_label = "(no id)" if payload["runId"] is None else payload["runId"]
        unreadable = f", {len(run.parse_errors)} unreadable" if run.parse_errors else ""
        summary = (
            f"run {run_label} {payload['status']}: {_counts(run)} "
            f"from {len(run.files)} report file(s){unreadable}"
        )
        facts = {"runId": payload["runId"], "status": payload["status"]}
        _write_output(output, body)
        if dry_run:
            console.outcome(
                f"dry run: {summary}; nothing sent",
                outcome="dry-run",
                deliveryId=delivery_id,
                **facts,
            )
            return CallbackOutcome("dry-run", delivery_id, body)
        outcome = _deliver_and_record(
            settings, context, console, body, delivery_id, summary, spill, facts
        )
        if run.results_truncated:
            console.detail(
                "results",
                f"{len(payload['results'])} of {payload['totalCases']} cases in the payload "
                f"(--max-results {settings.max_results}, failures first); every case is under "
                f"allResults in {outcome.result_file}",
            )
        return outcome
    finally:
        if spill is not None:
            spill.close()


def _build_result(value: Optional[str], console: Console) -> Optional[str]:
    """The Jenkins build result; one that cannot be used is reported, never a lost callback."""
    from ..errors import ConfigError

    if value is not None and str(value).strip().lower() in ("null", "none"):
        console.warn(
            f"--build-result is {value!r}: ignored, the status follows the test results "
            "(currentBuild.result is null while a build is still successful: pass "
            "currentBuild.currentResult)"
        )
        return None
    try:
        return normalize_build_result(value)
    except ConfigError as err:
        console.warn(f"{err.message}: ignored, the status follows the test results; {err.fix}")
        return None


def _write_output(output: Optional[str], body: bytes) -> None:
    if not output:
        return
    if output == "-":
        import sys

        sys.stdout.buffer.write(body + b"\n")
        sys.stdout.flush()
    else:
        import os
        import stat

        from ..fileio import atomic_write

        target = Path(output)
        try:
            special = not stat.S_ISREG(os.stat(target).st_mode)
        except OSError:
            special = False
        if special:
            # /dev/null, /dev/stdout, a FIFO: write into it; a temp file + rename would
            # replace the device node itself (as root, --output /dev/null broke /dev/null)
            with open(target, "wb") as fh:
                fh.write(body + b"\n")
        else:
            atomic_write(target, body + b"\n", mode=0o644)


def _deliver_and_record(
    settings: Settings,
    context: BuildContext,
    console: Console,
    body: bytes,
    delivery_id: str,
    summary: str,
    spill: Optional[ResultSpill],
    facts: Optional[dict[str, Any]] = None,
) -> CallbackOutcome:
    url = settings.callback_url
    outbox = Outbox(settings.outbox_path)
    entry = OutboxEntry(
        delivery_id=delivery_id,
        body=body,
        url=url,
        created_at=time.time(),
        subject=context.identity,
    )
    result_path = settings.result_file_path

    def record(outcome: str, delivery: Optional[DeliveryResult], error: Optional[str]) -> None:
        write_result_file(
            result_path,
            payload_bytes=body,
            delivery_id=delivery_id,
            url=url,
            outcome=outcome,
            attempts=delivery.attempts if delivery else 0,
            status_code=delivery.status_code if delivery else None,
            error=error,
            spill=spill,
        )

    # configuration first: a broken one keeps the payload, so nothing is lost
    try:
        auth_error: Optional[ConfigError] = None
        try:
            for warning in check_auth_settings(settings):
                console.warn(warning)
        except ConfigError as err:
            auth_error = err
        if not url:
            also = [f"also: {auth_error.message}"] if auth_error else []
            raise ConfigError(
                "no callback URL configured",
                fix="set API_CALLBACK_URL (the platform base URL) or CI_REPORT_URL (full URL), "
                "or pass --url"
                + (
                    "; and bind at least one of JENKINS_API_KEY, JENKINS_JWT_SECRET, "
                    "JENKINS_SIGNATURE_SECRET with withCredentials"
                    if auth_error and not settings.auth_modes
                    else ""
                ),
                evidence=also,
            )
        if auth_error is not None:
            raise auth_error
    except ConfigError as err:
        entry.last_error = err.message
        outbox_file = outbox.save(entry)
        record("queued", None, err.message)
        err.evidence.append(f"payload kept in the outbox: {outbox_file}")
        err.message = f"callback NOT sent ({err.message}): {summary}"
        raise

    if url.startswith("http://") and settings.api_key and not _is_loopback(url):
        console.warn(
            "the API key goes over plain http://: anyone on the path can read it; "
            "use an https:// URL"
        )

    delivery: Optional[DeliveryResult] = None
    backlog: Optional[FlushSummary] = None
    try:
        # inside the try: a signal during the auto-flush must not lose this build's payload
        backlog = _auto_flush(settings, console, outbox, skip_id=delivery_id)
        delivery = deliver(body, delivery_id, url, settings, console=console, subject=entry.subject)
    except Interrupted:
        entry.last_error = "interrupted during delivery"
        saved = outbox.save(entry)
        record("queued", delivery, entry.last_error)
        console.warn(f"interrupted: the callback is kept in the outbox ({saved})")
        raise
    except Exception:
        entry.last_error = "internal error during delivery"
        saved = outbox.save(entry)
        record("queued", delivery, entry.last_error)
        console.warn(f"the callback is kept in the outbox ({saved})")
        raise

    outbox_file: Optional[Path] = None
    if not delivery.delivered:
        entry.attempts = delivery.attempts
        entry.last_error = delivery.error
        entry.last_status = delivery.status_code
        entry.rejected = delivery.outcome == "rejected"
        outbox_file = outbox.save(entry)
    else:
        # an earlier run of this build left this very callback in the outbox: it has arrived
        outbox.discard(delivery_id)
    record(delivery.outcome, delivery, delivery.error)
    _report(console, delivery, summary, url, delivery_id, outbox_file, result_path, facts or {})
    if backlog is not None and (backlog.delivered or backlog.remaining):
        waiting = f", {backlog.remaining} still waiting" if backlog.remaining else ""
        why = ""
        if backlog.skipped_rejected:
            why = (
                f" ({backlog.skipped_rejected} rejected by the receiver earlier: "
                "'ci-report flush' after fixing the configuration)"
            )
        elif backlog.stopped_reason:
            why = f" ({backlog.stopped_reason})"
        console.detail(
            "outbox backlog",
            f"resent {backlog.delivered} earlier callback(s){waiting}{why}",
        )
    return CallbackOutcome(
        delivery.outcome, delivery_id, body, url, delivery, result_path, outbox_file
    )


def _report(
    console: Console,
    delivery: DeliveryResult,
    summary: str,
    url: str,
    delivery_id: str,
    outbox_file: Optional[Path],
    result_path: Path,
    facts: dict[str, Any],
) -> None:
    from ..jenkins_env import strip_credentials

    attempts = f"{delivery.attempts} attempt{'s' if delivery.attempts != 1 else ''}"
    status = f"HTTP {delivery.status_code}, " if delivery.status_code else ""
    fields = {
        "outcome": delivery.outcome,
        "deliveryId": delivery_id,
        **facts,
        "url": strip_credentials(url),
        "attempts": delivery.attempts,
        "statusCode": delivery.status_code,
    }
    if delivery.delivered:
        dup = "; the receiver already had it (applied once)" if delivery.duplicate else ""
        console.outcome(
            f"callback delivered: {summary} ({status}{attempts}, {delivery.elapsed_s:.1f} s){dup}",
            **fields,
        )
        console.detail("to", f"{url} as {delivery_id}")
        return
    headline = (
        "callback REJECTED by the receiver"
        if delivery.outcome == "rejected"
        else "callback NOT delivered, kept in the outbox"
    )
    answer = f"answered HTTP {delivery.status_code}" if delivery.status_code else "no answer"
    evidence = [f"POST {url}: {answer} ({attempts}, {delivery.elapsed_s:.1f} s)"]
    evidence.extend(delivery.notes)
    if delivery.response_excerpt:
        evidence.append(f"response body: {delivery.response_excerpt}")
    fixes = list(delivery.hints)
    if delivery.outcome == "queued":
        fixes.append("it is resent by the next 'ci-report callback' or by 'ci-report flush'")
    else:
        fixes.append("after fixing the configuration, 'ci-report flush' sends it again")
    console.block(
        f"{headline}: {summary}",
        level="error",
        cause=delivery.error,
        evidence=evidence,
        fixes=fixes,
        **fields,
    )
    # where it is kept comes last: outcome, cause, evidence and fix are what a person reads first
    console.detail("outbox", str(outbox_file))
    console.detail("result file", str(result_path))


def _is_loopback(url: str) -> bool:
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def _auto_flush(
    settings: Settings, console: Console, outbox: Outbox, skip_id: Optional[str] = None
) -> Optional[FlushSummary]:
    """Resend what earlier builds left behind, within ``flush_budget`` seconds. The caller
    reports the summary after its own outcome (the outcome comes first)."""
    pending = outbox.pending()
    if settings.flush_budget <= 0 or not any(p.name != f"{skip_id}.json" for p in pending):
        return None
    return flush_outbox(
        settings,
        console=console,
        budget_s=settings.flush_budget,
        auto=True,
        skip_ids={skip_id} if skip_id else None,
    )


def flush_outbox(
    settings: Settings,
    *,
    console: Optional[Console] = None,
    budget_s: Optional[float] = None,
    url_override: Optional[str] = None,
    auto: bool = False,
    skip_ids: Optional[set[str]] = None,
) -> FlushSummary:
    """Resend outbox entries, oldest first, each under its original delivery id.

    ``auto`` (the bounded flush at the start of every callback) sends each entry once and skips
    entries the receiver rejected (they wait for a fixed configuration and an explicit flush).
    A transport failure stops the run: the endpoint is down, the rest waits for next time.
    ``skip_ids``: entries left alone and not counted (the callback being sent right now).
    """
    console = console or get_console()
    check_auth_settings(settings)
    outbox = Outbox(settings.outbox_path)
    summary = FlushSummary()
    ttl_s = settings.outbox_ttl_days * 86_400
    start = time.monotonic()
    session = make_session(settings)
    stop = False
    try:
        for claimed, entry in outbox.iter_claimed(skip_ids):
            if stop:
                outbox.release(claimed, entry)
                summary.remaining += 1
                continue
            age = time.time() - entry.created_at
            if age > ttl_s:
                dead = outbox.bury(claimed, entry)
                summary.dead += 1
                console.error(
                    f"outbox entry {entry.delivery_id} expired after {age / 86400:.1f} days "
                    f"without delivery and moved to {dead}: this result was NOT delivered",
                    deliveryId=entry.delivery_id,
                )
                continue
            url = url_override or _resend_url(entry.url, settings.callback_url)
            left = None if budget_s is None else budget_s - (time.monotonic() - start)
            if not url or (auto and entry.rejected) or (left is not None and left <= 0.5):
                outbox.release(claimed, entry)
                summary.remaining += 1
                if auto and entry.rejected:
                    summary.skipped_rejected += 1
                elif not url:
                    summary.errors.append(f"{entry.delivery_id}: no URL (use flush --url)")
                continue
            deadline = settings.deadline if left is None else min(settings.deadline, left)
            try:
                result = deliver(
                    entry.body,
                    entry.delivery_id,
                    url,
                    settings,
                    console=console,
                    session=session,
                    subject=entry.subject,
                    max_attempts=1 if auto else None,
                    deadline_s=deadline,
                    timeout_s=left,
                    quiet=auto,
                )
            except BaseException:
                outbox.release(claimed, entry)
                raise
            if result.delivered:
                outbox.done(claimed)
                summary.delivered += 1
                console.debug(f"outbox: delivered {entry.delivery_id}")
                continue
            entry.attempts += result.attempts
            entry.last_error = result.error
            entry.last_status = result.status_code
            entry.rejected = result.outcome == "rejected"
            outbox.release(claimed, entry)
            summary.remaining += 1
            if entry.rejected:
                summary.rejected += 1
                summary.errors.append(f"{entry.delivery_id}: {result.error}")
            else:
                summary.stopped_reason = result.error
                stop = True
    finally:
        session.close()
    return summary


def _resend_url(stored: Optional[str], configured: Optional[str]) -> Optional[str]:
    """The outbox keeps URLs without ``user:password@``; when the configured URL is the same
    endpoint, use it, credentials included."""
    from ..jenkins_env import strip_credentials

    if stored and configured and strip_credentials(configured) == stored:
        return configured
    return stored


def deliver_or_queue(
    body: bytes,
    delivery_id: str,
    url: str,
    settings: Settings,
    *,
    console: Optional[Console] = None,
    subject: Optional[str] = None,
) -> DeliveryResult:
    """Deliver ``body``; if that fails, keep it in the outbox for ``flush``."""
    console = console or get_console()
    check_auth_settings(settings)
    result = deliver(body, delivery_id, url, settings, console=console, subject=subject)
    if not result.delivered:
        Outbox(settings.outbox_path).save(
            OutboxEntry(
                delivery_id=delivery_id,
                body=body,
                url=url,
                created_at=time.time(),
                attempts=result.attempts,
                last_error=result.error,
                last_status=result.status_code,
                rejected=result.outcome == "rejected",
                subject=subject,
            )
        )
    return result
