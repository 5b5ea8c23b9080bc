"""The reconciler: moves every open run of the ledger on until it is final.

One pass looks at each open run (bounded concurrency, one lease per run, so replicas never
work on the same run at once) and takes it one step further with what Jenkins says:

- trigger interrupted (no queue id: the process stopped between the POST and Jenkins' answer)
  -> the queue item or build that carries the run's trigger id; none after ``lost_grace`` ->
  ``lost`` (it never reached Jenkins);
- queue item -> build number; ``cancelled`` -> ``cancelled``; a 404 (Jenkins forgets a left
  item 5 minutes later, and on a restart) -> the build whose ``queueId`` or trigger id is ours;
- build running past ``build_timeout`` -> ``timed_out`` (stopped with ``abort_on_timeout``);
- build finished and no callback within ``callback_grace`` -> recovered with ``sync_build``
  (the archived ``ci-report/callback.json`` under its original delivery id, else Jenkins' test
  report, else status only) and applied through the ledger's dedupe;
- build or job gone from Jenkins for longer than ``lost_grace`` -> ``lost``, with the evidence;
- open longer than ``expire_after`` -> ``expired``.

Jenkins unreachable (connection refused, 5xx, timeouts) is never evidence: the run stays open,
the pass reports it and the next pass tries again.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..console import Console, get_console
from .events import Observer, safe
from .jenkins import JenkinsClient, JenkinsError, JenkinsHTTPError, JenkinsUnavailable
from .runs import RESULT_STATUS, Ledger, Run

if TYPE_CHECKING:
    from ..config import Settings

DEFAULT_CALLBACK_GRACE = 120.0
DEFAULT_EXPIRE_AFTER = 86_400.0
DEFAULT_INTERVAL = 30.0
MAX_STEPS = 4  # trigger -> queue -> build -> sync within one look


@dataclass
class PassSummary:
    moved: list[tuple[Run, str]] = field(default_factory=list)
    still_open: list[tuple[Run, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    skipped: int = 0  # held by another replica's lease

    def to_json(self) -> dict[str, Any]:
        return {
            "moved": [dict(run.to_json(), reason=reason) for run, reason in self.moved],
            "stillOpen": [dict(run.to_json(), reason=reason) for run, reason in self.still_open],
            "errors": list(self.errors),
            "durationSeconds": round(self.duration_s, 3),
            "skipped": self.skipped,
        }


class _Unreachable(Exception):
    def __init__(self, run: Run, message: str) -> None:
        super().__init__(message)
        self.run = run
        self.message = message


def _kind(exc: JenkinsError) -> str:
    if isinstance(exc, JenkinsUnavailable):
        if exc.status and exc.status >= 500:
            return "http-5xx"
        return "timeout" if "did not answer" in exc.message else "unreachable"
    if exc.status in (401, 403):
        return "auth"
    if exc.status and 400 <= exc.status < 500:
        return "http-4xx"
    return "invalid"


class Reconciler:
    def __init__(
        self,
        ledger: Ledger,
        client_factory: Callable[[], JenkinsClient],
        *,
        callback_grace: float = DEFAULT_CALLBACK_GRACE,
        build_timeout: Optional[float] = None,
        expire_after: float = DEFAULT_EXPIRE_AFTER,
        abort_on_timeout: bool = False,
        concurrency: int = 8,
        settings: Optional[Settings] = None,
        console: Optional[Console] = None,
        observer: Optional[Observer] = None,
        owner: Optional[str] = None,
        lost_grace: Optional[float] = None,
        lease_s: float = 120.0,
        trigger_id_param: Optional[str] = None,
        max_per_pass: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.client_factory = client_factory
        self.callback_grace = float(callback_grace)
        self.build_timeout = build_timeout
        self.expire_after = float(expire_after)
        self.abort_on_timeout = abort_on_timeout
        self.concurrency = max(1, int(concurrency))
        self.settings = settings
        self.console = console or ledger.console or get_console()
        self.observer = safe(observer)
        self.owner = owner or f"reconciler-{uuid.uuid4().hex[:8]}"
        # how long Jenkins may know nothing of a run before it is lost: a left queue item
        # may need a moment to show its build, a restarted controller a moment to load
        self.lost_grace = float(self.callback_grace if lost_grace is None else lost_grace)
        self.lease_s = float(lease_s)
        self.trigger_id_param = trigger_id_param
        self.max_per_pass = max(1, int(max_per_pass))  # a pass is bounded; the rest waits
        self.clock = clock
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._pass_lock = threading.Lock()
        self.passes = 0

    # -- entry points ------------------------------------------------------------------
    def run_pass(self) -> PassSummary:
        """Every open run once (oldest first), ``concurrency`` at a time."""
        with self._pass_lock:
            runs = self.ledger.open_runs(limit=self.max_per_pass)
            what = "reconcile pass"
            if len(runs) == self.max_per_pass:
                what += f" (the {self.max_per_pass} oldest open runs; the rest next pass)"
            return self._run(runs, force=False, what=what)

    def sync_stuck(self, timeout_minutes: float, max_executions: int) -> PassSummary:
        """Runs open and unchanged for ``timeout_minutes``, at most ``max_executions``: a
        person asked, so a finished build is synced without waiting out the grace."""
        runs = self.ledger.stuck(float(timeout_minutes) * 60.0, limit=max(0, int(max_executions)))
        return self._run(runs, force=True, what="sync-stuck")

    def reconcile_one(self, run_id: str) -> Run:
        """Look at one run now (``POST /api/executions/<runId>/sync``)."""
        return self.reconcile_one_detail(run_id)[0]

    def reconcile_one_detail(self, run_id: str) -> tuple[Run, str, list[str]]:
        """(run, what happened, errors) of looking at one run now, without the grace wait."""
        run = self.ledger.get(run_id)
        if run is None:
            raise KeyError(run_id)
        if not run.is_open():
            return run, f"already final: {run.status_reason or run.status}", []
        summary = self._run([run], force=True, what=f"sync of run {run_id}", quiet=True)
        for done, reason in summary.moved + summary.still_open:
            return done, reason, summary.errors
        current = self.ledger.get(run_id) or run
        return current, "leased elsewhere (another replica is working on it)", []

    def start(self, interval_s: float = DEFAULT_INTERVAL) -> None:
        """Background passes every ``interval_s`` seconds, the first one at once (work left by
        a stopped or crashed process is resumed)."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.run_pass()
                except Exception as exc:  # the loop must outlive a bad pass (e.g. DB hiccup)
                    self.console.warn(f"reconcile pass failed: {type(exc).__name__}: {exc}")
                self._stop.wait(max(0.01, float(interval_s)))

        self._thread = threading.Thread(target=loop, name="ci-report-reconciler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    # -- one pass ----------------------------------------------------------------------
    def _run(self, runs: list[Run], *, force: bool, what: str, quiet: bool = False) -> PassSummary:
        start = time.monotonic()
        summary = PassSummary()
        down = threading.Event()  # Jenkins did not answer: do not hammer it this pass
        lock = threading.Lock()
        # one Jenkins client (session, keep-alive) per worker thread, closed with the pass
        local = threading.local()
        made: list[JenkinsClient] = []

        def client() -> JenkinsClient:
            mine = getattr(local, "client", None)
            if mine is None:
                mine = self.client_factory()
                local.client = mine
                with lock:
                    made.append(mine)
            return mine

        def work(run: Run) -> None:
            if not self.ledger.claim(run.run_id, self.owner, self.lease_s):
                with lock:
                    summary.skipped += 1
                return
            try:
                # re-read under the lease: another replica may have moved it since the list
                fresh = self.ledger.get(run.run_id)
                if fresh is None or not fresh.is_open():
                    with lock:
                        summary.skipped += 1
                    return
                run = fresh
                if down.is_set():
                    raise _Unreachable(run, "Jenkins unreachable (earlier in this pass)")
                old = run.status
                done, reason = self._reconcile(run, client, force=force)
                with lock:
                    if done.status != old or not done.is_open():
                        summary.moved.append((done, reason))
                    else:
                        summary.still_open.append((done, reason))
            except _Unreachable as exc:
                if "earlier in this pass" not in exc.message:
                    down.set()
                self.ledger.checked(run.run_id)
                with lock:
                    summary.still_open.append((exc.run, exc.message))
                    summary.errors.append(f"run {run.run_id}: {exc.message}")
            except JenkinsError as exc:
                self.observer.jenkins_error(_kind(exc))
                text = exc.message + (f" ({exc.cause})" if exc.cause else "")
                text += f"; fix: {exc.fix}" if exc.fix else ""
                self.ledger.checked(run.run_id)
                with lock:
                    summary.still_open.append((run, text))
                    summary.errors.append(f"run {run.run_id}: {text}")
            except Exception as exc:  # one run's bug must not end the pass
                with lock:
                    summary.still_open.append((run, f"internal error: {exc}"))
                    summary.errors.append(
                        f"run {run.run_id}: internal error: {type(exc).__name__}: {exc}"
                    )
            finally:
                self.ledger.release(run.run_id, self.owner)

        try:
            if runs:
                with ThreadPoolExecutor(
                    max_workers=min(self.concurrency, len(runs)), thread_name_prefix="reconcile"
                ) as pool:
                    list(pool.map(work, runs))
        finally:
            for c in made:
                c.close()
        summary.duration_s = time.monotonic() - start
        self.passes += 1
        self.observer.reconcile_pass(summary.duration_s, len(summary.moved), len(summary.errors))
        if not quiet and (runs or self.passes == 1):
            self._report(summary, len(runs), what, down.is_set())
        return summary

    def _report(self, summary: PassSummary, looked: int, what: str, down: bool) -> None:
        line = (
            f"{what}: {looked} open run(s), {len(summary.moved)} moved, "
            f"{len(summary.still_open)} still open"
            + (
                f", {summary.skipped} leased elsewhere (another replica, or a trigger "
                "that has not finished or whose lease has not run out)"
                if summary.skipped
                else ""
            )
            + f" ({summary.duration_s:.2f} s)"
        )
        if not summary.errors:
            # a pass that moved nothing is repeated every interval: not worth a line each time
            quiet = not summary.moved and self.passes > 1
            (self.console.debug if quiet else self.console.info)(line)
            return
        self.console.warn(line + f", {len(summary.errors)} could not be checked")
        for error in summary.errors[:3]:
            self.console.detail("evidence", error, level="warning")
        if len(summary.errors) > 3:
            self.console.detail("evidence", f"... and {len(summary.errors) - 3} more")
        if down:
            self.console.detail(
                "fix",
                "Jenkins did not answer: the runs stay open and the next pass tries again "
                "(an unreachable Jenkins never makes a run lost)",
            )

    # -- one run -----------------------------------------------------------------------
    def _reconcile(
        self, run: Run, client_of: Callable[[], JenkinsClient], *, force: bool
    ) -> tuple[Run, str]:
        now = self.clock()
        if run.age_s(now) > self.expire_after:
            reason = (
                f"open for {run.age_s(now):.0f} s, longer than the expiry ({self.expire_after:g} s,"
                f" --expire-after); last known: {run.status_reason or run.status}"
            )
            return self._move(run, reason, status="expired"), reason
        client = client_of()
        reason = "no change"
        for _ in range(MAX_STEPS):
            try:
                if run.queue_id is None and run.build_number is None:
                    run, reason, again = self._resume_trigger(client, run, now)
                elif run.build_number is None:
                    run, reason, again = self._follow_queue(client, run, now)
                else:
                    run, reason, again = self._follow_build(client, run, now, force)
            except JenkinsUnavailable as exc:
                self.observer.jenkins_error(_kind(exc))
                raise _Unreachable(
                    run, exc.message + (f" ({exc.cause})" if exc.cause else "")
                ) from None
            if not again or not run.is_open():
                break
        return run, reason

    def _move(self, run: Run, reason: str, **fields: Any) -> Run:
        return self.ledger.update(run.run_id, reason=reason, expect_open=True, **fields)

    def _param(self) -> str:
        from .trigger import DEFAULT_TRIGGER_ID_PARAM

        return self.trigger_id_param or DEFAULT_TRIGGER_ID_PARAM

    def _missing(self, run: Run, now: float, what: str, evidence: str) -> tuple[Run, str, bool]:
        """Jenkins knows nothing of it: wait ``lost_grace`` from the first time, then lost."""
        if run.missing_since is None:
            self.ledger.checked(run.run_id, missing_since=now)
            return run, f"{what}; looking again (lost after {self.lost_grace:g} s)", False
        if now - run.missing_since < self.lost_grace:
            self.ledger.checked(run.run_id)
            return run, f"{what} (for {now - run.missing_since:.0f} s)", False
        reason = f"{evidence} (looked for {now - run.missing_since:.0f} s)"
        return self._move(run, reason, status="lost"), reason, False

    def _resume_trigger(self, client: JenkinsClient, run: Run, now: float) -> tuple[Run, str, bool]:
        if run.trigger_status == "failed":
            reason = run.trigger_message or "the trigger failed"
            return self._move(run, reason, status="trigger_failed"), reason, False
        if not run.trigger_id:
            return self._missing(
                run,
                now,
                "the trigger never recorded a queue item and the run has no trigger id",
                "the trigger was interrupted before Jenkins answered and, without a trigger "
                "id, its build cannot be told apart: trigger it again",
            )
        found = client.find_by_parameter(run.job, self._param(), run.trigger_id)
        if found and found.get("queueId") is not None:
            fields: dict[str, Any] = {
                "queue_id": int(found["queueId"]),
                "trigger_status": "success",
                "trigger_message": f"queued as item #{found['queueId']} (found by trigger id)",
                "missing_since": None,
            }
            what = f"queue item #{found['queueId']}"
            if found.get("number") is not None:
                fields.update(build_number=int(found["number"]), build_url=found.get("url"))
                fields["status"] = "running"
                what = f"build #{found['number']}"
            reason = f"resumed: {what} carries trigger id {run.trigger_id}"
            return self._move(run, reason, **fields), reason, True
        return self._missing(
            run,
            now,
            f"no queue item or build of {run.job} carries trigger id {run.trigger_id} yet",
            f"the trigger was interrupted before Jenkins answered, and no queue item or build "
            f"of {run.job} carries trigger id {run.trigger_id}: it never reached Jenkins; "
            "trigger it again",
        )

    def _follow_queue(self, client: JenkinsClient, run: Run, now: float) -> tuple[Run, str, bool]:
        assert run.queue_id is not None
        item = client.queue_item(run.queue_id)
        if item is None:
            build = client.find_build_by_queue_id(run.job, run.queue_id)
            how = f"queueId {run.queue_id}"
            if build is None and run.trigger_id:
                found = client.find_by_parameter(run.job, self._param(), run.trigger_id)
                if found and found.get("number") is not None:
                    build, how = found, f"trigger id {run.trigger_id}"
            if build is None:
                return self._missing(
                    run,
                    now,
                    f"queue item #{run.queue_id} is gone and no build has it yet",
                    f"queue item #{run.queue_id} is gone from the queue (Jenkins forgets left "
                    f"items 5 minutes later, and on a restart) and no build of {run.job} has "
                    f"{how}" + (f" or trigger id {run.trigger_id}" if run.trigger_id else ""),
                )
            reason = f"queue item #{run.queue_id} is gone; build #{build['number']} found by {how}"
            return (
                self._move(
                    run,
                    reason,
                    status="running",
                    build_number=int(build["number"]),
                    build_url=build.get("url"),
                    missing_since=None,
                ),
                reason,
                True,
            )
        if item.get("cancelled"):
            reason = f"queue item #{run.queue_id} was cancelled in Jenkins before it started"
            return self._move(run, reason, status="cancelled"), reason, False
        executable = item.get("executable") or {}
        if executable.get("number") is not None:
            reason = f"queue item #{run.queue_id} became build #{executable['number']}"
            return (
                self._move(
                    run,
                    reason,
                    status="running",
                    build_number=int(executable["number"]),
                    build_url=executable.get("url"),
                    missing_since=None,
                ),
                reason,
                True,
            )
        if run.missing_since is not None:
            self.ledger.checked(run.run_id, missing_since=None)
        else:
            self.ledger.checked(run.run_id)
        why = item.get("why") or "waiting"
        stuck = " (stuck: no executor can take it)" if item.get("stuck") else ""
        return run, f"queue item #{run.queue_id}: {why}{stuck}", False

    def _follow_build(
        self, client: JenkinsClient, run: Run, now: float, force: bool
    ) -> tuple[Run, str, bool]:
        assert run.build_number is not None
        number = run.build_number
        from .sync import BUILD_TREE as SYNC_TREE

        # the tree sync needs (git revision too): the same answer is handed to sync_build
        build = client.build(run.job, number, tree=SYNC_TREE)
        if build is None:
            try:
                client.job_info(run.job)
            except JenkinsHTTPError as exc:
                if exc.status != 404:
                    raise
                return self._missing(
                    run,
                    now,
                    f"job {run.job} is not found",
                    f"job {run.job} no longer exists in Jenkins (deleted or renamed), so "
                    f"build #{number} cannot be read",
                )
            return self._missing(
                run,
                now,
                f"build #{number} of {run.job} is not found",
                f"build #{number} of {run.job} is gone (deleted, or discarded by the job's "
                "build retention) and its callback never came",
            )
        started = build.get("timestamp")
        started_at = float(started) / 1000.0 if isinstance(started, (int, float)) else None
        if build.get("building") is not False:
            if run.status == "queued":
                reason = f"build #{number} is running"
                run = self._move(run, reason, status="running", started_at=started_at or now)
            elif run.started_at is None:
                self.ledger.checked(run.run_id, started_at=started_at or now)
                run.started_at = started_at or now
            elapsed = now - (run.started_at or now)
            if self.build_timeout is not None and elapsed > self.build_timeout:
                stopped = ""
                if self.abort_on_timeout:
                    status = client.stop_build(run.job, number)
                    stopped = (
                        "; asked Jenkins to stop it"
                        if status < 400
                        else f"; stopping it got HTTP {status}"
                    )
                reason = (
                    f"build #{number} still running after {elapsed:.0f} s (build timeout "
                    f"{self.build_timeout:g} s){stopped}"
                )
                return self._move(run, reason, status="timed_out"), reason, False
            self.ledger.checked(run.run_id)
            return run, f"build #{number} is running ({elapsed:.0f} s)", False
        result = build.get("result")
        if not result:
            self.ledger.checked(run.run_id)
            return run, f"build #{number} finished; Jenkins has not set its result yet", False
        if run.status == "queued":
            run = self._move(run, f"build #{number} ran", status="running")
        if run.done_seen_at is None:
            # the grace runs from the build's end as Jenkins reports it (start + duration),
            # never later than now (a Jenkins clock ahead of ours)
            ended = now
            duration = build.get("duration")
            if started_at is not None and isinstance(duration, (int, float)) and duration > 0:
                ended = min(now, started_at + float(duration) / 1000.0)
            self.ledger.checked(run.run_id, done_seen_at=ended, jenkins_result=str(result))
            run.done_seen_at = ended
        waited = now - run.done_seen_at
        if not force and waited < self.callback_grace:
            return (
                run,
                f"build #{number} finished ({result}); waiting for its callback "
                f"({waited:.0f} of {self.callback_grace:g} s grace)",
                False,
            )
        return self._sync(client, run, number, str(result), waited, build)

    def _sync(
        self,
        client: JenkinsClient,
        run: Run,
        number: int,
        result: str,
        waited: float,
        build: dict[str, Any],
    ) -> tuple[Run, str, bool]:
        from ..config import Settings
        from .sync import IGNORE, sync_build

        settings = self.settings or Settings()
        outcome = sync_build(
            client,
            run.job,
            number,
            settings,
            deliver=False,
            run_id=run.run_id,
            console=self.console,
            build=build,  # just read by _follow_build: each build is read once per look
            foreign_artifact=IGNORE,  # another run's file: rebuilt from Jenkins' data, never sent
        )
        if outcome.state == "running":
            self.ledger.checked(run.run_id)
            return run, f"build #{number} is running again (rebuilt?)", False
        if outcome.state != "recovered" or outcome.body is None or not outcome.delivery_id:
            return self._missing(
                run,
                self.clock(),
                f"build #{number} could not be recovered: {outcome.error or outcome.state}",
                f"build #{number} of {run.job} could not be recovered: "
                f"{outcome.error or outcome.state}",
            )
        source = outcome.source or "status-only"
        how = {
            "artifact": "its archived ci-report/callback.json, under the original delivery id "
            + outcome.delivery_id,
            "test-report": "Jenkins' test report",
        }.get(source, f"the build result only ({result}; no artifact, no test report)")
        reason = f"no callback {waited:.0f} s after build #{number} finished: synced from {how}"
        if outcome.ignored_run_id is not None:
            reason += (
                f" (its archived ci-report/callback.json names run {outcome.ignored_run_id}: "
                "ignored, never sent)"
            )
        _status, answer = self.ledger.apply_callback(
            outcome.delivery_id, outcome.body, ["sync"], result_source=source, reason=reason
        )
        self.observer.sync_done(source)
        done = self.ledger.get(run.run_id) or run
        if answer.get("duplicate"):
            reason = f"build #{number}: its original callback had already been applied"
        if done.is_open():
            # the recovered payload names another run (an archived runId), or was refused:
            # close this run from Jenkins' result rather than leave it open
            note = answer.get("error") or answer.get("message") or "payload for another run"
            reason = f"build #{number} finished ({result}); synced status only: {note}"
            done = self._move(
                done,
                reason,
                status=RESULT_STATUS.get(result.upper(), "failed"),
                result_source="status-only",
            )
        return done, reason, False
