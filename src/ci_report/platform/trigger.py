"""Trigger a Jenkins job and know which build is ours; optionally wait for its result.

The algorithm (Jenkins remote API; docs/platform.md "ci-report trigger"):

1. read the job's parameter definitions; when it defines the trigger-id parameter
   (``CI_REPORT_TRIGGER_ID``), send a fresh UUID in it: the POST becomes safe to retry (an
   identical waiting item merges) and the build can be found again by that value;
2. POST ``buildWithParameters`` (or ``build``) without following redirects: 201 = a new queue
   item, 303 = merged into an identical one; the queue id comes from ``Location``;
3. poll the queue item with backoff until it names a build (``executable.number``); print
   ``why`` when it changes, warn once on ``stuck``; ``cancelled`` ends it; a 404 (the item left
   the queue more than 5 minutes ago, or the controller restarted) is resolved by finding the
   build whose ``queueId`` is ours;
4. with ``wait``, poll the build until ``building`` is false (``result`` alone is not a done
   signal: a Pipeline run can carry one while it still runs).

Connection errors and 5xx while polling are waited out (a controller restart), within the
queue and build deadlines. SIGTERM/SIGINT cancel what this trigger started: the queue item,
or the running build; never an item another trigger shares (a merge).
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from ..console import Console, get_console
from ..errors import (
    EXIT_ABORTED,
    EXIT_CANCELLED,
    EXIT_FAILURE,
    EXIT_LOST,
    EXIT_TIMEOUT,
    EXIT_UNSTABLE,
    Interrupted,
)
from ..errors import EXIT_OK as EXIT_SUCCESS
from .jenkins import JenkinsClient, JenkinsError, JenkinsUnavailable, job_full_name

DEFAULT_TRIGGER_ID_PARAM = "CI_REPORT_TRIGGER_ID"

RESULT_EXIT = {
    "SUCCESS": EXIT_SUCCESS,
    "FAILURE": EXIT_FAILURE,
    "UNSTABLE": EXIT_UNSTABLE,
    "ABORTED": EXIT_ABORTED,
    "NOT_BUILT": EXIT_ABORTED,
}
CANCEL_TIMEOUT = (2.0, 3.0)
_NUMBERS = re.compile(r"\d+(?:\.\d+)?")  # a signal must be handled within ~5 s


@dataclass
class TriggerOutcome:
    """What happened. ``state``: ``queued`` (queue item known, build not followed: the
    ledger's trigger), ``started`` (build number known, not waited for),
    ``finished``, ``cancelled``, ``timed-out``, ``lost`` or ``interrupted`` (SIGTERM/SIGINT)."""

    job: str
    state: str = "lost"
    queue_id: Optional[int] = None
    merged: bool = False
    number: Optional[int] = None
    url: Optional[str] = None
    result: Optional[str] = None
    duration_ms: Optional[int] = None
    waited_s: float = 0.0
    trigger_id: Optional[str] = None
    message: str = ""
    fixes: list[str] = field(default_factory=list)
    code: Optional[str] = None  # a stable failure code (see :func:`failure_code`)

    @property
    def exit_code(self) -> int:
        if self.state == "finished":
            return RESULT_EXIT.get(self.result or "", EXIT_LOST)
        if self.state == "started":
            return EXIT_SUCCESS
        if self.state == "cancelled":
            return EXIT_CANCELLED
        if self.state == "timed-out":
            return EXIT_TIMEOUT
        return EXIT_LOST

    def to_json(self) -> dict[str, Any]:
        return {
            "queueId": self.queue_id,
            "merged": self.merged,
            "number": self.number,
            "url": self.url,
            "result": self.result,
            "durationMs": self.duration_ms,
            "waitedSeconds": round(self.waited_s, 1),
            "outcome": self.state,
            "triggerId": self.trigger_id,
            "code": self.code or self.state,
            "message": self.message or None,
        }


def parse_params(pairs: Sequence[str]) -> list[tuple[str, str]]:
    """``KEY=VALUE`` strings -> pairs (a key may repeat: multi-value parameters)."""
    from ..errors import InputError

    out = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(
                f"parameter {pair!r} is not KEY=VALUE", fix="pass -p NAME=value, once per parameter"
            )
        out.append((key.strip(), value))
    return out


class _Poll:
    """Backoff: start, x1.5 per poll, capped."""

    def __init__(self, start: float, cap: float) -> None:
        self.start, self.cap, self.current = start, max(start, cap), start

    def next(self) -> float:
        value = self.current
        self.current = min(self.cap, self.current * 1.5)
        return value

    def reset(self) -> None:
        self.current = self.start


class Trigger:
    """One trigger-and-wait. Use :func:`trigger_build` unless you need the pieces."""

    def __init__(
        self,
        client: JenkinsClient,
        job: str,
        params: Sequence[tuple[str, str]] = (),
        *,
        wait: bool = False,
        queue_timeout: float = 600.0,
        build_timeout: float = 3600.0,
        cancel_on_timeout: bool = False,
        trigger_id_param: Optional[str] = None,
        poll_interval: float = 2.0,
        poll_max: float = 15.0,
        lost_grace: float = 30.0,
        post_attempts: int = 5,
        trigger_id: Optional[str] = None,
        resolve_build: bool = True,
        strict_params: bool = False,
        console: Optional[Console] = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.client = client
        self.job = job
        self.params = list(params)
        self.wait = wait
        self.queue_timeout = queue_timeout
        self.build_timeout = build_timeout
        self.cancel_on_timeout = cancel_on_timeout
        self.trigger_id_param = trigger_id_param
        self.poll_interval = poll_interval
        self.poll_max = poll_max
        self.lost_grace = lost_grace
        self.post_attempts = max(1, post_attempts)
        self.given_trigger_id = trigger_id
        self.resolve_build = resolve_build
        self.strict_params = strict_params
        self.console = console or get_console()
        self.clock = clock
        self.sleep = sleep
        self.outcome = TriggerOutcome(job=job_full_name(job))
        self._start = 0.0
        self._unreachable_since: Optional[float] = None

    # -- entry point ---------------------------------------------------------------------
    def run(self) -> TriggerOutcome:
        self._start = self.clock()
        try:
            self._prepare()
            if not self._post():
                return self._finish()
            if not self.resolve_build:
                # the queue item exists; the caller (the run ledger) follows it from here
                if self.outcome.number is None:
                    self.outcome.state = "queued"
                else:
                    self.outcome.state = "started"
                return self._finish()
            try:
                if self._wait_queue() and self.wait:
                    self._wait_build()
            except JenkinsError as exc:
                self._lost_after_trigger(exc)
        except Interrupted:
            self._finish()
            self._cancel_started(reason="interrupted")
            if self.outcome.state != "finished":
                self.outcome.state = "interrupted"
            raise
        return self._finish()

    def _lost_after_trigger(self, exc: JenkinsError) -> None:
        """Jenkins stopped answering usably after the trigger (401, a login page, ...): the
        build may well run, so say which one it is instead of losing it in an error."""
        out = self.outcome
        out.state = "lost"
        started = (
            f"build #{out.number}" if out.number is not None else f"queue item #{out.queue_id}"
        )
        out.message = f"triggered ({started}), then stopped following it: {exc.message}" + (
            f" ({exc.cause})" if exc.cause else ""
        )
        out.fixes = [f for f in [exc.fix] if f] + [
            f"it may still run in Jenkins: look at {out.url or self.client.job_url(self.job)}"
        ]

    def _finish(self) -> TriggerOutcome:
        self.outcome.waited_s = self.clock() - self._start
        return self.outcome

    # -- 1. resolve the job --------------------------------------------------------------
    def _prepare(self) -> None:
        info = self._retry_get(lambda: self.client.job_info(self.job), "reading the job")
        if info.get("buildable") is False:
            from .jenkins import JenkinsHTTPError

            raise JenkinsHTTPError(
                f"job {self.outcome.job!r} is disabled or not buildable",
                status=409,
                fix="enable the job in Jenkins (or check it is a job, not a folder)",
            )
        defined = self.client.parameter_names(info)
        self.parameterized = bool(defined)
        given = {k for k, _ in self.params}
        unknown = sorted(given - set(defined))
        if unknown and self.strict_params:
            from .jenkins import JenkinsHTTPError

            raise JenkinsHTTPError(
                f"job {self.outcome.job!r} does not define "
                + ", ".join(unknown)
                + ("" if defined else " (it has no parameters at all)"),
                status=400,
                cause="Jenkins drops undefined parameters silently: the build would run without "
                "them",
                fix="add the parameter to the job, or drop it from the request",
            )
        if unknown:
            self.console.warn(
                "the job does not define " + ", ".join(unknown) + "; Jenkins drops undefined "
                "parameters silently" + ("" if defined else " (the job has no parameters at all)")
            )
        name = self.trigger_id_param or DEFAULT_TRIGGER_ID_PARAM
        if name in defined:
            existing = [v for k, v in self.params if k == name]
            self.outcome.trigger_id = (
                existing[0] if existing else (self.given_trigger_id or uuid.uuid4().hex)
            )
            if not existing:
                self.params.append((name, self.outcome.trigger_id))
        elif self.trigger_id_param:
            self.console.warn(
                f"the job has no {name} parameter: retries after a lost answer are not safe and "
                "identical triggers may merge into one build; define a string parameter "
                f"{name} on the job"
            )

    def _retry_get(self, fn: Callable[[], Any], what: str) -> Any:
        poll = _Poll(self.poll_interval, self.poll_max)
        for attempt in range(1, self.post_attempts + 1):
            try:
                return fn()
            except JenkinsUnavailable as exc:
                if attempt == self.post_attempts:
                    raise
                delay = poll.next()
                self.console.info(f"{exc.message} while {what}; retrying in {delay:.1f} s")
                self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- 2. trigger ------------------------------------------------------------------------
    def _post(self) -> bool:
        poll = _Poll(self.poll_interval, self.poll_max)
        trigger_id = self.outcome.trigger_id
        for attempt in range(1, self.post_attempts + 1):
            try:
                response = self.client.trigger(
                    self.job, self.params, parameterized=self.parameterized
                )
            except JenkinsUnavailable as exc:
                if exc.status == 302:  # refused: no queue item
                    self.outcome.state = "lost"
                    self.outcome.message = exc.message
                    self.outcome.fixes = [f for f in [exc.fix] if f]
                    return False
                if exc.maybe_sent:
                    if not trigger_id:
                        self.outcome.state = "lost"
                        self.outcome.message = (
                            f"trigger outcome unknown: {exc.message}; Jenkins may have queued a "
                            "build, and re-sending could start a second one"
                        )
                        self.outcome.fixes = [
                            f"define a string parameter {DEFAULT_TRIGGER_ID_PARAM} on the job: "
                            "ci-report then finds its build after a lost answer and retries "
                            "safely",
                            "look at the job's queue and recent builds before triggering again",
                        ]
                        return False
                    found = self._locate_by_trigger_id()
                    if found:
                        return True
                    if attempt == self.post_attempts:
                        break
                    self.console.info(
                        f"{exc.message}; no build or queue item carries trigger id "
                        f"{trigger_id} yet: sending again (safe: an identical waiting item "
                        "merges)"
                    )
                elif attempt == self.post_attempts:
                    raise
                else:
                    self.console.info(f"{exc.message}; retrying the trigger")
                self.sleep(poll.next())
                continue
            self.outcome.queue_id = response.queue_id
            self.outcome.merged = response.merged
            if response.merged:
                self.console.warn(
                    f"merged into existing queue item #{response.queue_id}: an identical "
                    "request was already waiting; the resulting build may also carry other "
                    "triggers' causes"
                    + (
                        ""
                        if trigger_id
                        else f" (define {DEFAULT_TRIGGER_ID_PARAM} on the job "
                        "to get a build of your own)"
                    )
                )
            else:
                self.console.info(f"queued as item #{response.queue_id} ({response.endpoint})")
            return True
        self.outcome.state = "lost"
        self.outcome.message = "could not trigger the job: Jenkins did not answer"
        return False

    def _locate_by_trigger_id(self) -> bool:
        """After a lost answer: look twice (a moment apart) for our trigger id."""
        name = self.trigger_id_param or DEFAULT_TRIGGER_ID_PARAM
        for look in range(2):
            try:
                found = self.client.find_by_parameter(self.job, name, self.outcome.trigger_id or "")
            except JenkinsUnavailable:
                found = None
            if found and found.get("queueId") is not None:
                self.outcome.queue_id = int(found["queueId"])
                if found.get("number") is not None:
                    self.outcome.number = int(found["number"])
                    self.outcome.url = found.get("url")
                self.console.info(
                    f"the trigger's answer was lost, but Jenkins has it: queue item "
                    f"#{self.outcome.queue_id} carries trigger id {self.outcome.trigger_id}"
                )
                return True
            if look == 0:
                self.sleep(min(1.0, self.poll_interval))
        return False

    # -- 3. queue ------------------------------------------------------------------------
    def _wait_queue(self) -> bool:
        """True once the build number is known."""
        out = self.outcome
        if out.number is not None:
            self._announce_build()
            return True
        deadline = self._start + self.queue_timeout
        poll = _Poll(self.poll_interval, self.poll_max)
        last_why: Optional[str] = None
        stuck_warned = False
        first_404: Optional[float] = None
        assert out.queue_id is not None
        while True:
            if self.clock() >= deadline:
                return self._timed_out("queue", self.queue_timeout)
            try:
                item = self.client.queue_item(out.queue_id)
                if item is None:
                    build = self.client.find_build_by_queue_id(self.job, out.queue_id)
                    if build is None and out.trigger_id:
                        found = self.client.find_by_parameter(
                            self.job,
                            self.trigger_id_param or DEFAULT_TRIGGER_ID_PARAM,
                            out.trigger_id,
                        )
                        if found and found.get("number") is not None:
                            build = found
                        elif found and found.get("queueId") not in (None, out.queue_id):
                            self.console.info(f"now queue item #{found['queueId']}")
                            out.queue_id = int(found["queueId"])
                            continue
                self._reachable()
            except JenkinsUnavailable as exc:
                self._unreachable(exc)
                self.sleep(poll.next())
                continue
            if item is None:
                if build is not None:
                    out.number = int(build["number"])
                    out.url = build.get("url")
                    self.console.info(
                        f"queue item #{out.queue_id} is gone from the queue; found its build "
                        f"by queueId: #{out.number}"
                    )
                    self._announce_build()
                    return True
                now = self.clock()
                first_404 = first_404 if first_404 is not None else now
                if now - first_404 > self.lost_grace:
                    out.state = "lost"
                    out.message = (
                        f"queue item #{out.queue_id} vanished and no build of {out.job} has "
                        "its queueId"
                    )
                    out.fixes = [
                        "it expired (5 min after leaving the queue), the controller restarted, "
                        "or the user cannot see it (Job/Discover); look at the job's builds"
                    ]
                    return False
                self.sleep(min(1.0, poll.next()))
                continue
            first_404 = None
            if item.get("cancelled"):
                out.state = "cancelled"
                out.message = f"queue item #{out.queue_id} was cancelled before it started"
                return False
            executable = item.get("executable") or {}
            if executable.get("number") is not None:
                out.number = int(executable["number"])
                out.url = executable.get("url")
                self._announce_build()
                return True
            if str(item.get("_class", "")).endswith("$LeftItem"):
                self.sleep(min(1.0, self.poll_interval))  # left, build not created yet
                continue
            why = item.get("why")
            shape = _NUMBERS.sub("#", why) if why else None  # a countdown is not a change
            if why and shape != last_why:
                self.console.info(f"queue #{out.queue_id}: {why}")
            last_why = shape
            if item.get("stuck") and not stuck_warned:
                stuck_warned = True
                self.console.warn(
                    f"queue item #{out.queue_id} is stuck: "
                    f"{why or 'no executor can take it'}; check the label's agents"
                )
            self.sleep(poll.next())

    def _announce_build(self) -> None:
        out = self.outcome
        out.state = "started"
        if not out.url:
            out.url = self.client.build_url(self.job, out.number or 0)
        self.console.info(f"build #{out.number} of {out.job}:")
        self.console.info(out.url)

    # -- 4. build ------------------------------------------------------------------------
    def _wait_build(self) -> None:
        out = self.outcome
        assert out.number is not None
        deadline = self.clock() + self.build_timeout
        poll = _Poll(self.poll_interval, self.poll_max)
        warned_queue = False
        shown_progress = False
        while True:
            if self.clock() >= deadline:
                self._timed_out("build", self.build_timeout)
                return
            try:
                build = self.client.build(self.job, out.number)
                self._reachable()
            except JenkinsUnavailable as exc:
                self._unreachable(exc)
                self.sleep(poll.next())
                continue
            if build is None:
                out.state = "lost"
                out.message = f"build #{out.number} of {out.job} is gone (deleted, or job renamed)"
                return
            if (
                out.queue_id is not None
                and build.get("queueId") not in (None, out.queue_id)
                and not warned_queue
            ):
                warned_queue = True
                self.console.warn(
                    f"build #{out.number} reports queueId {build.get('queueId')}, not "
                    f"{out.queue_id}"
                )
            if build.get("url"):
                out.url = build["url"]
            if build.get("building") is False:
                if build.get("result"):
                    out.state = "finished"
                    out.result = str(build["result"])
                    out.duration_ms = build.get("duration")
                    return
                self.sleep(min(1.0, self.poll_interval))  # done but result not set yet
                continue
            if not shown_progress:
                shown_progress = True
                estimate = build.get("estimatedDuration")
                hint = (
                    f"; usually takes {estimate / 1000:.1f} s" if estimate and estimate > 0 else ""
                )
                self.console.info(f"build #{out.number} is running{hint}")
            self.sleep(poll.next())

    # -- helpers -------------------------------------------------------------------------
    def _unreachable(self, exc: JenkinsUnavailable) -> None:
        if self._unreachable_since is None:
            self._unreachable_since = self.clock()
            self.console.warn(f"{exc.message}; waiting for Jenkins to come back")

    def _reachable(self) -> None:
        if self._unreachable_since is not None:
            gone = self.clock() - self._unreachable_since
            self._unreachable_since = None
            self.console.info(f"Jenkins answers again (after {gone:.0f} s)")

    def _timed_out(self, phase: str, limit: float) -> bool:
        out = self.outcome
        out.state = "timed-out"
        what = f"queue item #{out.queue_id}" if phase == "queue" else f"build #{out.number}"
        out.message = (
            f"{what} of {out.job}: no {'build' if phase == 'queue' else 'result'} "
            f"within {limit:g} s (--{phase}-timeout)"
        )
        if self.cancel_on_timeout:
            self._cancel_started(reason="timed out")
        else:
            out.fixes.append(
                "it is still "
                + ("queued" if phase == "queue" else "running")
                + " in Jenkins; --cancel-on-timeout would have cancelled it"
            )
        return False

    def _cancel_started(self, *, reason: str) -> None:
        """Cancel what this trigger started (never a merged item: it is shared)."""
        out = self.outcome
        if out.queue_id is None or out.state == "finished":
            if out.queue_id is None and out.trigger_id:
                self.console.warn(
                    f"{reason} before Jenkins answered: a build may be queued with trigger id "
                    f"{out.trigger_id}"
                )
            return
        if out.merged:
            self.console.warn(
                f"{reason}: not cancelling queue item #{out.queue_id}: it was merged with "
                "another trigger's request"
            )
            return
        try:
            if out.number is None:
                result = self.client.cancel_queue_item(out.queue_id, timeout=CANCEL_TIMEOUT)
                if result == "cancelled":
                    self.console.info(f"{reason}: cancelled queue item #{out.queue_id}")
                    return
                if result == "forbidden":
                    self.console.warn(
                        f"{reason}: not allowed to cancel queue item #{out.queue_id} "
                        "(Job/Cancel permission)"
                    )
                    return
                item = self.client.queue_item(out.queue_id) or {}
                number = (item.get("executable") or {}).get("number")
                if number is None:
                    self.console.warn(
                        f"{reason}: queue item #{out.queue_id} already left the queue; "
                        "its build is not known yet"
                    )
                    return
                out.number = int(number)
            status = self.client.stop_build(self.job, out.number, timeout=CANCEL_TIMEOUT)
            if status < 400:
                self.console.info(f"{reason}: asked Jenkins to stop build #{out.number}")
            else:
                self.console.warn(f"{reason}: stopping build #{out.number} got HTTP {status}")
        except Exception as exc:  # cleanup must never mask the reason we are here
            self.console.warn(f"{reason}: could not cancel: {getattr(exc, 'message', exc)}")


# Stable codes of a trigger that ended without a queue item (``trigger --json`` "code", the
# ledger's ``triggerCode``). Other outcomes carry their state as the code.
FAILURE_CODES = (
    "job-not-found",
    "job-disabled",
    "auth-refused",
    "permission-denied",
    "login-page",
    "undefined-parameter",
    "jenkins-unreachable",
    "trigger-refused",
    "outcome-unknown",
    "bad-url",
    "http-error",
    "internal-error",
)


def failure_code(outcome: TriggerOutcome, error: Optional[BaseException] = None) -> str:
    """The stable code of a trigger that failed before (or without) a queue item."""
    from ..errors import ConfigError
    from .jenkins import JenkinsHTTPError

    if error is None:
        if outcome.queue_id is not None:
            return outcome.state
        if "refused to queue" in outcome.message:
            return "trigger-refused"
        if "outcome unknown" in outcome.message:
            return "outcome-unknown"
        return "jenkins-unreachable"
    if isinstance(error, JenkinsUnavailable):
        return "trigger-refused" if error.status == 302 else "jenkins-unreachable"
    if isinstance(error, JenkinsHTTPError):
        text = error.message.lower()
        if error.status == 404:
            return "job-not-found"
        if error.status == 409 or "disabled" in text:
            return "job-disabled"
        if error.status == 401:
            return "auth-refused"
        if error.status == 403:
            return "permission-denied"
        if error.status == 400 and "does not define" in text:
            return "undefined-parameter"
        if "html page" in text or (error.fix and "login" in error.fix.lower()):
            return "login-page"
        return "http-error"
    if isinstance(error, ConfigError):
        return "bad-url"
    return "internal-error"


def trigger_build(
    client: JenkinsClient, job: str, params: Sequence[tuple[str, str]] = (), **options: Any
) -> TriggerOutcome:
    """Trigger ``job`` with ``params``; see :class:`Trigger` for the options."""
    return Trigger(client, job, params, **options).run()
