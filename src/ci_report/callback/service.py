"""The ``callback`` and ``flush`` jobs: parse, build, sign, deliver, keep what was not delivered.

Plain functions for the CLI, the Jenkins library, ``sync`` and other programs. They report through
the console and return outcomes; exit codes are derived from the outcome by the caller.
"""

from __future__ import annotations

import contextlib
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
from .payload import build_body, make_delivery_id, normalize_build_result
from .result_file import ResultSpill, write_result_file

if TYPE_CHECKING:
    from ..config import Settings
    from ..junit import TestRun
    from .delivery import DeliveryResult
    from .outbox import Outbox, OutboxEntry

# auth, delivery and outbox (http.client, ssl, email: ~40 ms and ~4 MB) are imported where a
# callback is kept or sent: a dry run never needs them

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
    foreign: int = 0  # entries of another endpoint or other credentials, left alone
    stopped_reason: Optional[str] = None
    errors: list[str] = field(default_factory=list)
    buried: list[str] = field(default_factory=list)  # moved to dead/ by this flush, and why


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
    on_case = spill.add if spill is not None else None  # CaseResults, encoded only if needed
    run = parse_reports(
        discovery.files,
        max_results=settings.max_results,
        max_message=settings.max_message,
        case_map=case_map,
        on_case=on_case,
        on_passed=spill.add_passed if spill is not None else None,  # no record: its text
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
    spill = None if dry_run else ResultSpill(settings.max_results, settings.result_file_path.parent)
    try:
        run = collect(settings, console, spill)
        payload, body = build_body(  # the payload's results are only in the body
            run,
            context,
            run_id=settings.run_id,
            build_result=build_result,
            duration_ms=settings.duration_ms,
            status_style=settings.status_style,
        )
        delivery_id = settings.delivery_id or make_delivery_id(context, body)
        run_label = "(no id)" if payload["runId"] is None else payload["runId"]
        unreadable = f", {len(run.parse_errors)} unreadable" if run.parse_errors else ""
        summary = (
            f"run {run_label} {payload['status']}: {_counts(run)} "
            f"from {len(run.files)} report file(s){unreadable}"
        )
        facts = {"runId": payload["runId"], "status": payload["status"]}
        if dry_run:
            _write_output(output, body)
            console.outcome(
                f"dry run: {summary}; nothing sent",
                outcome="dry-run",
                deliveryId=delivery_id,
                **facts,
            )
            return CallbackOutcome("dry-run", delivery_id, body)
        outcome = _deliver_and_record(
            settings, context, console, body, delivery_id, summary, spill, facts, output=output
        )
        if run.results_truncated:
            console.detail(
                "results",
                f"{len(run.results)} of {payload['totalCases']} cases in the payload "
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

        sys.stdout.buffer.write(body)
        sys.stdout.buffer.write(b"\n")
        sys.stdout.flush()
    else:
        import os
        import stat

        from ..fileio import atomic_writer

        target = Path(output)
        try:
            special = not stat.S_ISREG(os.stat(target).st_mode)
        except OSError:
            special = False
        # the body and its newline written apart: no second copy of the body in memory
        if special:
            # /dev/null, /dev/stdout, a FIFO: write into it; a temp file + rename would
            # replace the device node itself (as root, --output /dev/null broke /dev/null)
            with open(target, "wb") as fh:
                fh.write(body)
                fh.write(b"\n")
        else:
            with atomic_writer(target, mode=0o644) as fh:
                fh.write(body)
                fh.write(b"\n")


class _Keeper:
    """Where this build's callback is kept while it is sent: the outbox, else the workspace
    (``$WORKSPACE/ci-report/outbox/``), else only the result file. Every write holds signals
    off (a signal then acts after the write), and no failure to write ever stops the send."""

    def __init__(self, settings: Settings, console: Console, entry: OutboxEntry) -> None:
        self.settings = settings
        self.console = console
        self.entry = entry
        self.outbox: Optional[Outbox] = None
        self.claim: Optional[Path] = None  # our claim: no other process sends it meanwhile
        self.problems: list[str] = []

    def candidates(self) -> list[Outbox]:
        from .outbox import Outbox

        boxes = [Outbox(self.settings.outbox_path)]
        fallback = fallback_outbox_path(self.settings)
        if fallback != boxes[0].path:
            boxes.append(Outbox(fallback))
        return boxes

    def persist(self, *, claimed: bool) -> Optional[Path]:
        """Write the entry (as our claim while we send it); returns where, or None."""
        from ..signals import held

        with held():
            if self.outbox is not None and self.claim is not None:
                # already ours: rewrite it in place (attempt record)
                try:
                    return self._rewrite_claim()
                except OSError as exc:
                    self.problems.append(f"{self.outbox.path}: {_reason(exc)}")
            for box in self.candidates():
                try:
                    box.ensure()
                    if claimed:
                        self._adopt_earlier(box)
                    path = box.save(self.entry, claimed=claimed)
                except OSError as exc:
                    self.problems.append(f"{box.path}: {_reason(exc)}")
                    continue
                self.outbox, self.claim = box, (path if claimed else None)
                return path
        return None

    def _rewrite_claim(self) -> Path:
        from ..fileio import atomic_write

        assert self.outbox is not None and self.claim is not None
        atomic_write(self.claim, self.outbox._serialize(self.entry), make_parents=False)
        return self.claim

    def _adopt_earlier(self, box: Outbox) -> None:
        """An earlier run of this very build left this delivery id in the outbox: take over
        its attempt record (the attempt count covers the delivery id's whole life)."""
        path = box.path / f"{self.entry.delivery_id}.json"
        if not path.is_file():
            return
        claimed = box.claim(path)
        if claimed is None:
            return
        try:
            earlier = box.load(claimed)
            if earlier.body == self.entry.body:
                self.entry.attempts = max(self.entry.attempts, earlier.attempts)
                self.entry.first_attempt_at = earlier.first_attempt_at or earlier.created_at
                self.entry.created_at = min(self.entry.created_at, earlier.created_at)
            box.done(claimed)
        except Exception:  # an unreadable earlier copy: ours supersedes it
            with contextlib.suppress(OSError):
                box.done(claimed)

    def settle(self, delivered: bool) -> Optional[Path]:
        """After the send: delivered -> the entry goes; otherwise it is given back (pending)."""
        from ..signals import held

        with held():
            if self.outbox is None or self.claim is None:
                if delivered:
                    return None
                # never written (or only as pending): try once more, as a pending entry
                return self.persist(claimed=False) if self.outbox is None else self.entry.path
            box, claim = self.outbox, self.claim
            self.claim = None
            try:
                if delivered:
                    box.done(claim)
                    box.discard(self.entry.delivery_id)
                    return None
                return box.release(claim, self.entry)
            except OSError as exc:
                self.problems.append(f"{box.path}: {_reason(exc)}")
                return claim if claim.exists() else None

    def where(self) -> str:
        if self.entry.path is not None and self.outbox is not None:
            return str(self.outbox.path / f"{self.entry.delivery_id}.json")
        return "nowhere but the result file"

    def warn_if_displaced(self, result_path: Path) -> None:
        """Say exactly where the payload is when the outbox could not keep it."""
        if not self.problems:
            return
        primary = self.candidates()[0]
        if self.outbox is not None and self.outbox.path == primary.path:
            return
        if self.outbox is not None:
            self.console.block(
                f"the outbox {primary.path} cannot be used: the callback is kept in the "
                f"workspace instead, at {self.entry.path}",
                level="warning",
                cause="; ".join(self.problems),
                fixes=[
                    f"resend it with 'ci-report flush --outbox {self.outbox.path}' (the Jenkins "
                    "library archives ci-report/); fix the outbox (CI_REPORT_OUTBOX or --outbox "
                    "to a directory of this user, mode 0700)"
                ],
            )
        else:
            self.console.block(
                "no outbox can keep this callback: if it is not delivered, the payload is only "
                f"in the result file {result_path}",
                level="error",
                cause="; ".join(self.problems),
                fixes=["set CI_REPORT_OUTBOX (or --outbox) to a writable directory of this user"],
            )


def fallback_outbox_path(settings: Settings) -> Path:
    """Where callbacks are kept when the outbox cannot be used: ``$WORKSPACE/ci-report/outbox``."""
    return settings.workspace_path / "ci-report" / "outbox"


def _reason(exc: BaseException) -> str:
    from .outbox import UntrustedOutbox

    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc, UntrustedOutbox):
        return exc.strerror
    return str(exc) or type(exc).__name__


def check_callback_url(url: str, settings: Settings, console: Console) -> None:
    """Refuse a URL that cannot be sent to, or whose credentials would replace the JWT; a
    ``user:password@`` is never sent (see the README). Its password is redacted everywhere."""
    from urllib.parse import urlsplit

    from ..jenkins_env import strip_credentials, url_userinfo

    userinfo = url_userinfo(url)
    if userinfo:
        console.add_secret(userinfo)
        console.add_secret(userinfo.partition(":")[2])
    shown = strip_credentials(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(
            "the callback URL is not usable",
            cause=f"{shown!r} is not an http(s)://host/... URL",
            fix="set CI_REPORT_URL to a full http(s):// URL (API_CALLBACK_URL: the base URL)",
        )
    if userinfo and settings.jwt_secret:
        raise ConfigError(
            "the callback URL carries user:password@ and JWT mode is on",
            cause="userinfo in the URL would become 'Authorization: Basic' and replace the JWT",
            fix="remove user:password@ from CI_REPORT_URL / API_CALLBACK_URL (ci-report never "
            "sends it); the JWT, API key or signature authenticate the callback",
        )
    if userinfo:
        console.warn(
            f"the callback URL carries user:password@: it is NOT sent (only to {shown}); "
            "authenticate with JENKINS_API_KEY, JENKINS_JWT_SECRET or JENKINS_SIGNATURE_SECRET"
        )


def _deliver_and_record(
    settings: Settings,
    context: BuildContext,
    console: Console,
    body: bytes,
    delivery_id: str,
    summary: str,
    spill: Optional[ResultSpill],
    facts: Optional[dict[str, Any]] = None,
    output: Optional[str] = None,
) -> CallbackOutcome:
    """Persist first, then send, one save site: the outbox entry and the result file
    (``queued``) are on disk before the first attempt, and settled after it. ``output``
    (``--output``) is written after the entry, so nothing that goes wrong there loses it."""
    from ..jenkins_env import normalize_endpoint
    from ..signals import held
    from .auth import EntryBinding
    from .delivery import deliver
    from .outbox import OutboxEntry

    url = settings.callback_url
    entry = OutboxEntry(
        delivery_id=delivery_id,
        body=body,
        url=url,
        created_at=time.time(),
        subject=context.identity,
    )
    entry.bind(EntryBinding(settings, normalize_endpoint(url)))
    keeper = _Keeper(settings, console, entry)
    result_path = settings.result_file_path
    result_problem: list[str] = []

    def record(outcome: str, delivery: Optional[DeliveryResult], error: Optional[str]) -> None:
        with held():
            try:
                write_result_file(
                    result_path,
                    payload_bytes=body,
                    delivery_id=delivery_id,
                    url=url,
                    outcome=outcome,
                    attempts=entry.attempts,
                    status_code=delivery.status_code if delivery else entry.last_status,
                    error=error,
                    spill=spill,
                )
            except OSError as exc:
                if not result_problem:
                    result_problem.append(_reason(exc))
                    console.warn(
                        f"cannot write the result file {result_path}: {_reason(exc)} "
                        f"(the callback is kept in {keeper.where()})"
                    )

    # configuration first: a broken one keeps the payload, so nothing is lost
    try:
        checked_url = _check_configuration(settings, url, console)
    except ConfigError as err:
        entry.last_error = err.message
        saved = keeper.persist(claimed=False)
        record("queued", None, err.message)
        keeper.warn_if_displaced(result_path)
        try:
            _write_output(output, body)
        except OSError as exc:
            console.warn(f"cannot write --output {output}: {_reason(exc)}")
        err.evidence.append(
            f"payload kept in the outbox: {saved}"
            if saved
            else f"payload kept only in the result file: {result_path}"
        )
        err.message = f"callback NOT sent ({err.message}): {summary}"
        raise
    url = checked_url

    if url.startswith("http://") and settings.api_key and not _is_loopback(url):
        console.warn(
            "the API key goes over plain http://: anyone on the path can read it; "
            "use an https:// URL"
        )

    # persist first: on disk (claimed by us) before the first attempt, so that neither a
    # signal nor kill -9 during the send can lose it
    entry.first_attempt_at = entry.first_attempt_at or time.time()
    entry.last_error = "not delivered yet: the process stopped while sending"
    delivery: Optional[DeliveryResult] = None
    backlog: Optional[FlushSummary] = None
    earlier_attempts = entry.attempts
    reported = False

    def settle_and_report(done: DeliveryResult) -> Optional[Path]:
        entry.attempts = earlier_attempts + done.attempts
        entry.last_error = done.error
        entry.last_status = done.status_code
        entry.rejected = done.outcome == "rejected"
        settled = keeper.settle(delivered=done.delivered)
        record(done.outcome, done, done.error)
        _report(console, done, summary, url, delivery_id, settled, result_path, facts or {})
        return settled

    try:
        # inside the try: a signal held off during these writes is raised right after them,
        # and the handlers below settle what was written
        keeper.persist(claimed=True)
        earlier_attempts = entry.attempts  # an earlier run's attempts, adopted
        record("queued", None, entry.last_error)
        if spill is not None:
            spill.prepare(result_path)  # the settled file's array is copied while we send
        keeper.warn_if_displaced(result_path)
        _write_output(output, body)
        # a backlog that cannot be flushed never affects this build's own delivery
        backlog = _auto_flush(settings, console, skip_id=delivery_id)
        delivery = deliver(
            body,
            delivery_id,
            url,
            settings,
            console=console,
            subject=entry.subject,
            earlier_attempts=earlier_attempts,
            first_attempt_at=entry.first_attempt_at,
            backlog=_backlog_count(settings, keeper),
        )
        # the outcome is known: settle it and report it whole; a signal arriving meanwhile is
        # acted on right after (exit 128 + signal), never between the settle and its report
        with held():
            outbox_file = settle_and_report(delivery)
            _report_backlog(console, backlog)
            reported = True
    except Interrupted:
        if reported:
            raise  # after the outcome was settled and reported: nothing left in flight
        if delivery is not None:  # arrived as deliver() returned: settle what it says
            settle_and_report(delivery)
            raise
        entry.last_error = "interrupted during delivery"
        saved = keeper.settle(delivered=False)
        record("queued", delivery, entry.last_error)
        console.warn(f"interrupted: the callback is kept in the outbox ({saved or result_path})")
        raise
    except Exception as exc:
        if delivery is not None:
            raise  # the settle or its report failed: the outcome is not to be rewritten
        entry.last_error = (
            exc.message if isinstance(exc, ConfigError) else "internal error during delivery"
        )
        saved = keeper.settle(delivered=False)
        record("queued", delivery, entry.last_error)
        console.warn(f"the callback is kept in the outbox ({saved or result_path})")
        raise

    return CallbackOutcome(
        delivery.outcome, delivery_id, body, url, delivery, result_path, outbox_file
    )


def _check_configuration(settings: Settings, url: Optional[str], console: Console) -> str:
    """The callback URL (returned) and the auth settings, checked before anything is sent: a
    :class:`ConfigError` naming every problem found (the caller keeps the payload)."""
    from .auth import check_auth_settings

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
    check_callback_url(url, settings, console)
    if auth_error is not None:
        raise auth_error
    return url


def _report_backlog(console: Console, backlog: Optional[FlushSummary]) -> None:
    """One console line for the earlier callbacks this run resent, if any."""
    if backlog is None or not (backlog.delivered or backlog.remaining or backlog.dead):
        return
    waiting = f", {backlog.remaining} still waiting" if backlog.remaining else ""
    why = ""
    if backlog.skipped_rejected:
        why = (
            f" ({backlog.skipped_rejected} rejected by the receiver earlier: "
            "'ci-report flush' after fixing the configuration)"
        )
    elif backlog.stopped_reason:
        why = f" ({backlog.stopped_reason})"
    buried = f", {backlog.dead} moved to dead/" if backlog.dead else ""
    console.detail(
        "outbox backlog", f"resent {backlog.delivered} earlier callback(s){waiting}{buried}{why}"
    )


def _backlog_count(settings: Settings, keeper: _Keeper) -> Optional[int]:
    """Other entries waiting in this agent's outbox (ours is a claim, not counted)."""
    from .outbox import Outbox

    try:
        return len(Outbox(settings.outbox_path).pending())
    except Exception:
        return None


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

    url = strip_credentials(url) or url
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
    settings: Settings, console: Console, skip_id: Optional[str] = None
) -> Optional[FlushSummary]:
    """Resend what earlier builds left behind, within ``flush_budget`` seconds. The caller
    reports the summary after its own outcome (the outcome comes first). Nothing in the
    outbox can stop this build's own delivery: any failure here is one warning."""
    if settings.flush_budget <= 0:
        return None  # no time given to the backlog: not even a look at the outbox
    from .outbox import Outbox

    try:
        pending = Outbox(settings.outbox_path).pending()
        if not any(p.name != f"{skip_id}.json" for p in pending):
            return None
        return flush_outbox(
            settings,
            console=console,
            budget_s=settings.flush_budget,
            auto=True,
            skip_ids={skip_id} if skip_id else None,
        )
    except Interrupted:
        raise
    except Exception as exc:
        console.warn(
            f"the outbox backlog was not resent ({_reason(exc)}); this build's callback is "
            "sent anyway"
        )
        return None


def flush_outbox(
    settings: Settings,
    *,
    console: Optional[Console] = None,
    budget_s: Optional[float] = None,
    url_override: Optional[str] = None,
    auto: bool = False,
    skip_ids: Optional[set[str]] = None,
    outbox_path: Optional[Path] = None,
    adopt: bool = False,
) -> FlushSummary:
    """Resend outbox entries, oldest first, each under its original delivery id.

    Only entries of this build's endpoint and credentials are sent (fingerprint and seal, see
    :mod:`.outbox`): an entry made for another endpoint or with other credentials is left alone
    and counted in ``foreign``; one that carries our fingerprint but not our seal was altered
    or forged, and moves to ``dead/``. ``url_override`` (``flush --url``) sends our own entries
    to another URL (the operator says the endpoint moved); it never sends another's entries.

    ``adopt`` (``flush --adopt``, an operator's explicit choice after fixing a wrong key): entries
    made for the configured endpoint with *other* credentials are re-bound to ours and sent;
    entries of other endpoints are still left alone.

    ``auto`` (the bounded flush at the start of every callback) sends each entry once and skips
    entries the receiver rejected (they wait for a fixed configuration and an explicit flush).
    A transport failure stops the run: the endpoint is down, the rest waits for next time.
    ``skip_ids``: entries left alone and not counted (the callback being sent right now).
    """
    from ..jenkins_env import normalize_endpoint, strip_credentials
    from .auth import EntryBinding, check_auth_settings
    from .delivery import deliver, make_session
    from .outbox import Outbox

    console = console or get_console()
    check_auth_settings(settings)
    outbox = Outbox(outbox_path or settings.outbox_path)
    summary = FlushSummary()
    if not outbox.path.is_dir():
        return summary
    outbox.check()  # refuses a directory others could have planted entries in
    configured = settings.callback_url
    if configured:
        check_callback_url(configured, settings, console)
    binding = EntryBinding(settings, normalize_endpoint(configured))
    if url_override:
        check_callback_url(url_override, settings, console)
    ttl_s = settings.outbox_ttl_days * 86_400
    start = time.monotonic()
    pending = outbox.pending()
    waiting = len(pending)
    session = make_session(settings)
    stop = False

    def on_bad(name: str, reason: str, dead: Path) -> None:
        summary.dead += 1
        summary.buried.append(f"{name}: {reason}")
        console.error(
            f"outbox entry {name} cannot be used ({reason}): moved to {dead}; it is never sent "
            "(look at it, then delete it)"
        )

    try:
        for claimed, entry in outbox.iter_claimed(skip_ids, on_bad=on_bad, pending=pending):
            waiting = max(0, waiting - 1)
            if (
                adopt
                and not url_override
                and entry.endpoint is not None
                and entry.endpoint == binding.endpoint
                and not entry.sealed_by(binding)
            ):
                entry.bind(binding)  # the operator vouches for it: ours from now on
                console.info(f"outbox: adopting {entry.delivery_id} (flush --adopt)")
            if entry.fingerprint != binding.fingerprint:
                # made with other credentials (another team, a third party, an older
                # ci-report): never signed with ours, not counted as ours
                outbox.release(claimed, entry)
                summary.foreign += 1
                continue
            if not entry.sealed_by(binding):
                dead = outbox.bury(claimed, entry, suffix=".forged")
                summary.dead += 1
                summary.buried.append(f"{entry.delivery_id}: seal does not match")
                console.error(
                    f"outbox entry {entry.delivery_id} claims this build's credentials but its "
                    f"seal does not match (altered or planted): moved to {dead}, never sent",
                    deliveryId=entry.delivery_id,
                )
                continue
            url = url_override
            if not url_override:
                if entry.endpoint is not None and entry.endpoint == binding.endpoint:
                    url = configured
                elif entry.endpoint is not None:
                    # our credentials, another endpoint: they belong to the configured one
                    outbox.release(claimed, entry)
                    summary.foreign += 1
                    continue
            if stop:
                outbox.release(claimed, entry)
                summary.remaining += 1
                continue
            age = time.time() - entry.created_at
            if age > ttl_s:
                dead = outbox.bury(claimed, entry)
                summary.dead += 1
                summary.buried.append(f"{entry.delivery_id}: expired")
                console.error(
                    f"outbox entry {entry.delivery_id} expired after {age / 86400:.1f} days "
                    f"without delivery and moved to {dead}: this result was NOT delivered",
                    deliveryId=entry.delivery_id,
                )
                continue
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
                    earlier_attempts=entry.attempts,
                    first_attempt_at=entry.first_attempt_at or entry.created_at,
                    backlog=waiting,
                )
            except BaseException:
                from ..signals import held

                with held():
                    outbox.release(claimed, entry)
                raise
            if result.delivered:
                outbox.done(claimed)
                summary.delivered += 1
                console.debug(f"outbox: delivered {entry.delivery_id}")
                continue
            entry.attempts += result.attempts
            entry.first_attempt_at = result.first_attempt_at
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
    if summary.foreign:
        console.debug(
            f"outbox: {summary.foreign} entr{'y' if summary.foreign == 1 else 'ies'} of another "
            f"endpoint or other credentials left alone (this flush sends only to "
            f"{strip_credentials(configured) or '(no URL)'} with its own credentials)"
        )
    return summary


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
    from ..jenkins_env import normalize_endpoint
    from .auth import EntryBinding, check_auth_settings
    from .delivery import deliver
    from .outbox import Outbox, OutboxEntry

    console = console or get_console()
    check_auth_settings(settings)

    check_callback_url(url, settings, console)
    result = deliver(body, delivery_id, url, settings, console=console, subject=subject)
    if not result.delivered:
        entry = OutboxEntry(
            delivery_id=delivery_id,
            body=body,
            url=url,
            created_at=time.time(),
            attempts=result.attempts,
            last_error=result.error,
            last_status=result.status_code,
            rejected=result.outcome == "rejected",
            subject=subject,
            first_attempt_at=result.first_attempt_at,
        )
        entry.bind(EntryBinding(settings, normalize_endpoint(url)))
        Outbox(settings.outbox_path).save(entry)
    return result
