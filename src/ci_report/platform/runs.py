"""The run ledger: one row per run, written before anything is sent to Jenkins.

A run is ``queued`` or ``running`` (open) until something closes it: a verified callback
(:meth:`Ledger.apply_callback`), the reconciler (``platform/reconcile.py``: synced from Jenkins,
``cancelled``, ``timed_out``, ``lost``, ``expired``), or a failed trigger (``trigger_failed``).
Every status change is one row of the run's history ``{at, from, to, reason, source}``, is logged
on the console once and reported to the observer.

Several processes may share one ledger (PostgreSQL, or one SQLite file on one host):

- a run id is a primary key: creating it twice returns the existing run (``created=False``),
  and only the creator triggers it, so no run is triggered twice;
- :meth:`Ledger.claim` takes a time-limited lease on a run (an atomic
  ``UPDATE ... WHERE lease_until < now``); the trigger and the reconciler only work on runs they
  hold, so no run is synced twice at once, and a crashed holder's lease simply runs out;
- every change happens in a transaction that first locks the row (``SELECT ... FOR UPDATE``),
  re-reads it and refuses to reopen or overwrite a final run (``expect_open``), so no
  transition is lost and the last writer never undoes the first.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from ..console import Console, get_console
from ..errors import Interrupted
from .events import Observer, safe
from .ledger_db import Database, Tx, open_database

if TYPE_CHECKING:
    from .jenkins import JenkinsClient

RUN_STATUSES = (
    "queued",
    "running",
    "success",
    "failed",
    "unstable",
    "aborted",
    "not_built",
    "cancelled",
    "trigger_failed",
    "lost",
    "timed_out",
    "expired",
)
OPEN_STATUSES = frozenset({"queued", "running"})  # every other status is final
TRIGGER_STATUSES = ("pending", "success", "failed")
RESULT_SOURCES = ("callback", "artifact", "test-report", "status-only")
LOUD_STATUSES = frozenset({"lost", "expired", "timed_out", "trigger_failed"})

# Jenkins build result -> run status
RESULT_STATUS = {
    "SUCCESS": "success",
    "FAILURE": "failed",
    "UNSTABLE": "unstable",
    "ABORTED": "aborted",
    "NOT_BUILT": "not_built",
}
# parameter names whose values are never stored (the trigger still sends them)
SECRET_PARAM = re.compile(r"(?i)(pass(word|wd)?|secret|token|credential|api[_-]?key|private)")
REDACTED = "***"
TRIGGER_LEASE_S = 30.0  # renewed while the trigger runs; a crashed trigger is resumed after it

_COLUMNS = (
    "run_id",
    "job",
    "parameters",
    "trigger_id",
    "queue_id",
    "build_number",
    "build_url",
    "status",
    "trigger_status",
    "trigger_message",
    "trigger_code",
    "result_source",
    "passed",
    "failed",
    "skipped",
    "total",
    "created_at",
    "started_at",
    "finished_at",
    "updated_at",
    "last_checked_at",
    "attempts",
    "status_reason",
    "jenkins_result",
    "done_seen_at",
    "missing_since",
)
_UPDATABLE = frozenset(_COLUMNS) - {"run_id", "created_at", "updated_at"}
_SELECT = "SELECT " + ", ".join(_COLUMNS) + " FROM runs"


def _iso(value: Optional[float]) -> Optional[str]:
    if value is None:
        return None
    stamp = datetime.fromtimestamp(value, tz=timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def redact_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters as stored: values of secret-looking names replaced by ``***``."""
    return {k: (REDACTED if SECRET_PARAM.search(str(k)) else v) for k, v in parameters.items()}


@dataclass
class Run:
    run_id: str
    job: str
    parameters: dict[str, Any] = field(default_factory=dict)
    trigger_id: Optional[str] = None
    queue_id: Optional[int] = None
    build_number: Optional[int] = None
    build_url: Optional[str] = None
    status: str = "queued"
    trigger_status: str = "pending"
    trigger_message: Optional[str] = None
    trigger_code: Optional[str] = None
    result_source: Optional[str] = None
    passed: Optional[int] = None
    failed: Optional[int] = None
    skipped: Optional[int] = None
    total: Optional[int] = None
    created_at: float = 0.0
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    updated_at: float = 0.0
    last_checked_at: Optional[float] = None
    attempts: int = 0
    status_reason: Optional[str] = None
    # reconciler bookkeeping (not part of the JSON view)
    jenkins_result: Optional[str] = None  # the result Jenkins showed when first seen finished
    done_seen_at: Optional[float] = None  # when the reconciler first saw the build finished
    missing_since: Optional[float] = None  # when Jenkins first knew nothing of it

    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def age_s(self, now: float) -> float:
        return max(0.0, now - self.created_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "job": self.job,
            "parameters": dict(self.parameters),
            "triggerId": self.trigger_id,
            "queueId": self.queue_id,
            "buildNumber": self.build_number,
            "buildUrl": self.build_url,
            "status": self.status,
            "triggerStatus": self.trigger_status,
            "triggerMessage": self.trigger_message,
            "triggerCode": self.trigger_code,
            "resultSource": self.result_source,
            "passedCases": self.passed,
            "failedCases": self.failed,
            "skippedCases": self.skipped,
            "totalCases": self.total,
            "createdAt": _iso(self.created_at),
            "startedAt": _iso(self.started_at),
            "finishedAt": _iso(self.finished_at),
            "updatedAt": _iso(self.updated_at),
            "lastCheckedAt": _iso(self.last_checked_at),
            "attempts": self.attempts,
            "statusReason": self.status_reason,
        }

    @classmethod
    def _from_row(cls, row: dict[str, Any]) -> Run:
        data = dict(row)
        data["parameters"] = json.loads(data["parameters"] or "{}")
        for name in ("queue_id", "build_number", "passed", "failed", "skipped", "total"):
            if data[name] is not None:
                data[name] = int(data[name])
        data["attempts"] = int(data["attempts"] or 0)
        return cls(**data)


def status_from_payload(payload: dict[str, Any]) -> str:
    """A callback payload's run status: the Jenkins result when it names one, else its status."""
    build = payload.get("build") if isinstance(payload.get("build"), dict) else {}
    result = str((build or {}).get("result") or "").upper()
    if result in RESULT_STATUS:
        return RESULT_STATUS[result]
    status = str(payload.get("status") or "").lower()
    if status in ("success", "failed", "unstable", "aborted", "not_built"):
        return status
    return "failed"  # silence is never success


def _int_or_none(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


class Ledger:
    """The run ledger on one :class:`~ci_report.platform.ledger_db.Database`."""

    def __init__(
        self,
        db: Database,
        *,
        console: Optional[Console] = None,
        observer: Optional[Observer] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.console = console
        self.observer = safe(observer)
        self.clock = clock

    @property
    def where(self) -> str:
        return f"{self.db.dialect} {self.db.where}"

    def _console(self) -> Console:
        return self.console or get_console()

    # -- runs --------------------------------------------------------------------------
    def create(
        self,
        job: str,
        parameters: Optional[dict[str, Any]] = None,
        run_id: Optional[str] = None,
        *,
        trigger_id: Optional[str] = None,
    ) -> Run:
        """Record a new run (``queued``, trigger ``pending``); an existing run id returns the
        existing run unchanged (check ``created``: :meth:`create_or_get`)."""
        return self.create_or_get(job, parameters, run_id, trigger_id=trigger_id)[0]

    def create_or_get(
        self,
        job: str,
        parameters: Optional[dict[str, Any]] = None,
        run_id: Optional[str] = None,
        *,
        trigger_id: Optional[str] = None,
    ) -> tuple[Run, bool]:
        now = self.clock()
        rid = str(run_id) if run_id not in (None, "") else uuid.uuid4().hex
        stored = redact_parameters(dict(parameters or {}))
        with self.db.tx() as tx:
            cur = tx.execute(
                "INSERT INTO runs (run_id, job, parameters, trigger_id, status, trigger_status,"
                " created_at, updated_at, attempts, status_reason)"
                " VALUES (?,?,?,?,?,?,?,?,0,?) ON CONFLICT (run_id) DO NOTHING",
                (
                    rid,
                    job,
                    json.dumps(stored, sort_keys=True),
                    trigger_id,
                    "queued",
                    "pending",
                    now,
                    now,
                    "recorded; trigger pending",
                ),
            )
            created = cur.rowcount == 1
            if created:
                self._history(tx, rid, now, None, "queued", "recorded; trigger pending", "api")
            row = tx.one(_SELECT + " WHERE run_id = ?", (rid,))
        assert row is not None
        run = Run._from_row(row)
        if created:
            self._console().info(f"run {rid} ({job}): recorded, triggering")
            self.observer.run_transition(rid, None, "queued", "recorded")
        return run, created

    def get(self, run_id: str) -> Optional[Run]:
        with self.db.tx() as tx:
            row = tx.one(_SELECT + " WHERE run_id = ?", (str(run_id),))
        return Run._from_row(row) if row else None

    def list(
        self,
        status: Optional[str | Sequence[str]] = None,
        job: Optional[str] = None,
        limit: Optional[int] = 200,
        offset: int = 0,
    ) -> builtins.list[Run]:
        """Newest first; ``status`` one name or several."""
        where: builtins.list[str] = []
        params: builtins.list[Any] = []
        if status:
            wanted = [status] if isinstance(status, str) else list(status)
            where.append("status IN (" + ",".join("?" * len(wanted)) + ")")
            params.extend(wanted)
        if job:
            where.append("job = ?")
            params.append(job)
        sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created_at DESC, run_id DESC"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params.extend([int(limit), int(offset)])
        with self.db.tx() as tx:
            rows = tx.all(sql, params)
        return [Run._from_row(r) for r in rows]

    def open_runs(self, limit: Optional[int] = None) -> builtins.list[Run]:
        """Every open run, oldest first (the reconciler's work list)."""
        sql = _SELECT + " WHERE status IN ('queued', 'running') ORDER BY created_at, run_id"
        params: builtins.list[Any] = []
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self.db.tx() as tx:
            return [Run._from_row(r) for r in tx.all(sql, params)]

    def stuck(self, older_than_s: float, limit: Optional[int] = None) -> builtins.list[Run]:
        """Open runs whose row has not changed for ``older_than_s`` seconds, oldest first."""
        cutoff = self.clock() - float(older_than_s)
        sql = (
            _SELECT + " WHERE status IN ('queued', 'running') AND updated_at <= ?"
            " ORDER BY updated_at, run_id"
        )
        params: builtins.list[Any] = [cutoff]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self.db.tx() as tx:
            return [Run._from_row(r) for r in tx.all(sql, params)]

    def update(
        self,
        run_id: str,
        *,
        reason: str,
        source: str = "reconciler",
        expect_open: bool = False,
        **fields: Any,
    ) -> Run:
        """Change fields of a run; a status change is one transition (history row, console
        line, observer call). With ``expect_open`` a run that was closed meanwhile (by a
        callback, another replica) is returned unchanged."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"not run fields: {sorted(unknown)}")
        if "status" in fields and fields["status"] not in RUN_STATUSES:
            raise ValueError(f"not a run status: {fields['status']!r}")
        now = self.clock()
        with self.db.tx() as tx:
            run, old = self._apply(tx, str(run_id), now, reason, source, expect_open, fields)
        if run.status != old:
            self._announce(run, old, reason)
        return run

    def _apply(
        self,
        tx: Tx,
        run_id: str,
        now: float,
        reason: str,
        source: str,
        expect_open: bool,
        fields: dict[str, Any],
    ) -> tuple[Run, str]:
        row = tx.one(_SELECT + " WHERE run_id = ?" + tx.for_update, (run_id,))
        if row is None:
            raise KeyError(run_id)
        current = Run._from_row(row)
        if expect_open and not current.is_open():
            return current, current.status
        changes = dict(fields)
        if "parameters" in changes:
            changes["parameters"] = json.dumps(redact_parameters(changes["parameters"]))
        new_status = changes.get("status", current.status)
        if new_status != current.status:
            changes["status_reason"] = reason
            if new_status not in OPEN_STATUSES and current.finished_at is None:
                changes.setdefault("finished_at", now)
            self._history(tx, run_id, now, current.status, new_status, reason, source)
        if changes:
            changes["updated_at"] = now
            names = sorted(changes)
            tx.execute(
                "UPDATE runs SET " + ", ".join(f"{n} = ?" for n in names) + " WHERE run_id = ?",
                [changes[n] for n in names] + [run_id],
            )
        row = tx.one(_SELECT + " WHERE run_id = ?", (run_id,))
        assert row is not None
        return Run._from_row(row), current.status

    def checked(self, run_id: str, **fields: Any) -> None:
        """The reconciler looked at an open run and it did not change status: count the look
        (``attempts``, ``lastCheckedAt``) and keep bookkeeping fields, without touching
        ``updatedAt`` (which is what :meth:`stuck` measures)."""
        allowed = {"jenkins_result", "done_seen_at", "missing_since", "started_at", "build_url"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"not bookkeeping fields: {sorted(unknown)}")
        names = sorted(fields)
        sets = "".join(f", {n} = ?" for n in names)
        with self.db.tx() as tx:
            tx.execute(
                "UPDATE runs SET attempts = attempts + 1, last_checked_at = ?"
                + sets
                + " WHERE run_id = ?",
                [self.clock()] + [fields[n] for n in names] + [str(run_id)],
            )

    def history(self, run_id: str) -> builtins.list[dict[str, Any]]:
        with self.db.tx() as tx:
            rows = tx.all(
                "SELECT at, from_status, to_status, reason, source FROM run_history"
                " WHERE run_id = ? ORDER BY id",
                (str(run_id),),
            )
        return [
            {
                "at": _iso(r["at"]),
                "from": r["from_status"],
                "to": r["to_status"],
                "reason": r["reason"],
                "source": r["source"],
            }
            for r in rows
        ]

    def counts_by_status(self) -> dict[str, int]:
        with self.db.tx() as tx:
            rows = tx.all("SELECT status, COUNT(*) AS n FROM runs GROUP BY status")
        counts = {s: 0 for s in RUN_STATUSES}
        counts.update({r["status"]: int(r["n"]) for r in rows})
        return counts

    def oldest_open_age_s(self) -> Optional[float]:
        with self.db.tx() as tx:
            row = tx.one(
                "SELECT MIN(created_at) AS oldest FROM runs WHERE status IN ('queued', 'running')"
            )
        if not row or row["oldest"] is None:
            return None
        return max(0.0, self.clock() - float(row["oldest"]))

    # -- leases ------------------------------------------------------------------------
    def claim(self, run_id: str, owner: str, ttl_s: float) -> bool:
        """Take (or renew) the lease on a run for ``ttl_s`` seconds; False if another owner
        holds a live one. Atomic on both databases (one conditional UPDATE)."""
        now = self.clock()
        with self.db.tx() as tx:
            cur = tx.execute(
                "UPDATE runs SET lease_owner = ?, lease_until = ? WHERE run_id = ?"
                " AND (lease_until IS NULL OR lease_until < ? OR lease_owner = ?)",
                (owner, now + float(ttl_s), str(run_id), now, owner),
            )
            return bool(cur.rowcount == 1)

    def release(self, run_id: str, owner: str) -> None:
        with self.db.tx() as tx:
            tx.execute(
                "UPDATE runs SET lease_owner = NULL, lease_until = NULL"
                " WHERE run_id = ? AND lease_owner = ?",
                (str(run_id), owner),
            )

    # -- callbacks (the receiver's dedupe + store) -------------------------------------
    def apply_callback(
        self,
        webhook_id: str,
        body: bytes,
        modes: Sequence[str],
        *,
        result_source: str = "callback",
        reason: Optional[str] = None,
    ) -> tuple[int, dict[str, Any]]:
        """Apply a verified callback exactly once; (HTTP status, response body).

        Same id and body -> the stored answer again with ``duplicate: true``; same id, other
        body -> 422; not a UTF-8 JSON object -> 400. A callback for a known run sets its
        status, counts and ``resultSource`` unless it comes from an older build than the run's
        (then ``stale: true``, nothing overwritten). ``result_source`` is what the reconciler
        passes for a payload it recovered from Jenkins (with the ``reason`` for the history)."""
        digest = hashlib.sha256(body).hexdigest()
        now = self.clock()
        announce: Optional[tuple[Run, str, str]] = None
        with self.db.tx() as tx:
            tx.lock_key(webhook_id)
            row = tx.one(
                "SELECT body_sha256, status, response FROM deliveries WHERE webhook_id = ?",
                (webhook_id,),
            )
            if row is not None:
                if row["body_sha256"] != digest:
                    return 422, {
                        "accepted": False,
                        "error": "webhook-id reused with a different body",
                        "webhookId": webhook_id,
                        "outcome": "error",
                    }
                stored = json.loads(row["response"])
                stored["duplicate"] = True
                stored["outcome"] = "duplicate"
                return int(row["status"]), stored
            try:
                payload = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                return 400, self._bad(webhook_id, "body is not UTF-8 JSON")
            if not isinstance(payload, dict):
                return 400, self._bad(webhook_id, "body is not a JSON object")
            build = payload.get("build") if isinstance(payload.get("build"), dict) else {}
            build = build or {}
            run_id = payload.get("runId")
            number = _int_or_none(build.get("buildNumber"))
            response: dict[str, Any] = {"accepted": True, "webhookId": webhook_id}
            run_row = None
            if run_id is not None and not isinstance(run_id, (dict, list)):
                run_row = tx.one(_SELECT + " WHERE run_id = ?" + tx.for_update, (str(run_id),))
            run = Run._from_row(run_row) if run_row else None
            if (
                run is not None
                and run.build_number is not None
                and number is not None
                and number < run.build_number
            ):
                response.update(
                    outcome="stale",
                    stale=True,
                    runId=run.run_id,
                    message=(
                        f"callback from build #{number} is older than build "
                        f"#{run.build_number} of run {run.run_id}: acknowledged, not applied "
                        "(the newer result stays)"
                    ),
                )
            else:
                key = self._store_execution(tx, webhook_id, body, payload, build, modes, now)
                response.update(outcome="applied", execution=key)
                if run is not None:
                    status = status_from_payload(payload)
                    fields: dict[str, Any] = {
                        "status": status,
                        "result_source": result_source,
                        "passed": _int_or_none(payload.get("passedCases")),
                        "failed": _int_or_none(payload.get("failedCases")),
                        "skipped": _int_or_none(payload.get("skippedCases")),
                        "total": _int_or_none(payload.get("totalCases")),
                    }
                    if run.trigger_status == "pending":
                        fields["trigger_status"] = "success"
                    if number is not None and run.build_number is None:
                        fields["build_number"] = number
                    if build.get("buildUrl") and not run.build_url:
                        fields["build_url"] = str(build["buildUrl"])
                    if reason is None:
                        reason = (
                            f"callback {webhook_id} from build #{number if number else '?'}: "
                            f"{payload.get('status')}"
                            if result_source == "callback"
                            else f"synced from Jenkins ({result_source}) under {webhook_id}"
                        )
                    if run.is_open() or run.status != status:
                        fields["finished_at"] = now
                    new, old = self._apply(
                        tx, run.run_id, now, reason, result_source, False, fields
                    )
                    response.update(runId=new.run_id, status=new.status)
                    if new.status != old:
                        announce = (new, old, reason)
            tx.execute(
                "INSERT INTO deliveries VALUES (?,?,?,?,?)",
                (webhook_id, digest, 200, json.dumps(response), now),
            )
        if announce:
            self._announce(*announce)
        if response.get("stale"):
            self._console().warn(f"run {response['runId']}: {response['message']}")
        return 200, response

    @staticmethod
    def _bad(webhook_id: str, error: str) -> dict[str, Any]:
        return {"accepted": False, "error": error, "webhookId": webhook_id, "outcome": "error"}

    @staticmethod
    def _store_execution(
        tx: Tx,
        webhook_id: str,
        body: bytes,
        payload: dict[str, Any],
        build: dict[str, Any],
        modes: Sequence[str],
        now: float,
    ) -> str:
        run_id = payload.get("runId")
        key = (
            f"run:{run_id}"
            if run_id is not None
            else f"build:{build.get('jobName')}#{build.get('buildNumber')}"
        )
        tx.execute(
            """INSERT INTO executions (key, run_id, status, passed, failed, skipped,
                   total, duration_ms, job, build, webhook_id, modes, payload, updated_at)
               VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
               ON CONFLICT(key) DO UPDATE SET status=excluded.status,
                   passed=excluded.passed, failed=excluded.failed,
                   skipped=excluded.skipped, total=excluded.total,
                   duration_ms=excluded.duration_ms, job=excluded.job,
                   build=excluded.build, webhook_id=excluded.webhook_id,
                   modes=excluded.modes, payload=excluded.payload,
                   updated_at=excluded.updated_at,
                   applied_count=executions.applied_count + 1""",
            (
                key,
                None if run_id is None else str(run_id),
                payload.get("status"),
                _int_or_none(payload.get("passedCases")),
                _int_or_none(payload.get("failedCases")),
                _int_or_none(payload.get("skippedCases")),
                _int_or_none(payload.get("totalCases")),
                _int_or_none(payload.get("durationMs")),
                build.get("jobName"),
                _int_or_none(build.get("buildNumber")),
                webhook_id,
                ",".join(modes),
                body.decode("utf-8"),
                now,
            ),
        )
        return key

    def callbacks(self) -> builtins.list[dict[str, Any]]:
        """The stored callback records (what ``ReceiverHandle.executions()`` returns)."""
        with self.db.tx() as tx:
            rows = tx.all(
                "SELECT key, run_id, status, passed, failed, skipped, total, duration_ms, job,"
                " build, webhook_id, modes, applied_count, updated_at, payload"
                " FROM executions ORDER BY updated_at, key"
            )
        for row in rows:
            row["payload"] = json.loads(row["payload"])
            for name in ("build", "applied_count", "passed", "failed", "skipped", "total"):
                if row[name] is not None:
                    row[name] = int(row[name])
        return rows

    def log_request(self, webhook_id: Optional[str], path: str, status: int, reason: str) -> None:
        with self.db.tx() as tx:
            tx.execute(
                "INSERT INTO requests (webhook_id, path, status, reason, at) VALUES (?,?,?,?,?)",
                (webhook_id, path, status, reason, self.clock()),
            )

    def requests(self) -> builtins.list[dict[str, Any]]:
        with self.db.tx() as tx:
            return tx.all("SELECT webhook_id, path, status, reason, at FROM requests ORDER BY id")

    def close(self) -> None:
        self.db.close()

    # -- internals ---------------------------------------------------------------------
    @staticmethod
    def _history(
        tx: Tx,
        run_id: str,
        at: float,
        old: Optional[str],
        new: str,
        reason: str,
        source: str,
    ) -> None:
        tx.execute(
            "INSERT INTO run_history (run_id, at, from_status, to_status, reason, source)"
            " VALUES (?,?,?,?,?,?)",
            (run_id, at, old, new, reason, source),
        )

    def _announce(self, run: Run, old: Optional[str], reason: str) -> None:
        line = f"run {run.run_id} ({run.job}): {old} -> {run.status}: {reason}"
        if run.status in LOUD_STATUSES:
            self._console().warn(line)
        else:
            self._console().info(line)
        self.observer.run_transition(run.run_id, old, run.status, reason)


def open_ledger(
    db: str,
    *,
    console: Optional[Console] = None,
    observer: Optional[Observer] = None,
    clock: Callable[[], float] = time.time,
) -> Ledger:
    """A file path or ``sqlite:///path`` -> SQLite (WAL); ``postgresql://...`` -> PostgreSQL."""
    return Ledger(open_database(db), console=console, observer=observer, clock=clock)


# -- triggering through the ledger ----------------------------------------------------
def trigger_run(
    ledger: Ledger,
    client: JenkinsClient,
    job: str,
    parameters: Optional[dict[str, Any]] = None,
    run_id: Optional[str] = None,
    *,
    console: Optional[Console] = None,
    observer: Optional[Observer] = None,
    owner: Optional[str] = None,
    lease_s: float = TRIGGER_LEASE_S,
    **trigger_options: Any,
) -> Run:
    """Record the run, then trigger it (``platform/trigger.py``) up to its queue item.

    Returns the run: ``queued`` with its queue id (the reconciler fills in the build), or
    ``trigger_failed`` with ``triggerCode`` and a ``triggerMessage`` saying what to do. An
    existing run id is returned as it is, never triggered again. The run is leased while
    the trigger runs; if this process dies, the reconciler resumes the run (by its trigger id)
    once the lease (``lease_s``) has run out."""
    from .trigger import DEFAULT_TRIGGER_ID_PARAM, Trigger, failure_code

    console = console or ledger.console or get_console()
    obs = safe(observer)
    params = dict(parameters or {})
    trigger_id = uuid.uuid4().hex
    run, created = ledger.create_or_get(job, params, run_id, trigger_id=trigger_id)
    if not created:
        console.info(f"run {run.run_id} already exists ({run.status}): not triggered again")
        return run
    owner = owner or f"trigger-{uuid.uuid4().hex[:8]}"
    # the reconciler leaves a leased run alone; renewed while the trigger runs, so a slow
    # Jenkins never lets the lease lapse, and a dead process's lease runs out in lease_s
    ledger.claim(run.run_id, owner, lease_s)
    done = threading.Event()

    def renew() -> None:
        while not done.wait(max(0.05, lease_s / 3)):
            try:
                ledger.claim(run.run_id, owner, lease_s)
            except Exception:  # a database hiccup: the next renewal tries again
                continue

    renewer = threading.Thread(target=renew, name="ci-report-trigger-lease", daemon=True)
    renewer.start()
    id_param = trigger_options.get("trigger_id_param") or DEFAULT_TRIGGER_ID_PARAM
    pairs = [(str(k), "" if v is None else str(v)) for k, v in params.items()]
    pairs = [p for p in pairs if p[0] != id_param]  # the ledger's trigger id, not the caller's
    trigger_options.setdefault("strict_params", True)
    runner = Trigger(
        client,
        job,
        pairs,
        wait=False,
        trigger_id=trigger_id,
        console=console,
        resolve_build=False,
        **trigger_options,
    )
    try:
        try:
            outcome = runner.run()
            error = None
        except Interrupted:
            # SIGTERM/SIGINT: not a failed trigger. Keep what Jenkins said (the Trigger has
            # cancelled its queue item: the reconciler sees it cancelled); without a queue id
            # the reconciler resumes the run by its trigger id.
            if runner.outcome.queue_id is not None:
                ledger.update(
                    run.run_id,
                    reason=f"queued as item #{runner.outcome.queue_id}, then interrupted",
                    source="trigger",
                    trigger_status="success",
                    queue_id=runner.outcome.queue_id,
                    trigger_message=f"queued as item #{runner.outcome.queue_id}; the trigger "
                    "was interrupted (SIGTERM/SIGINT) and cancelled it",
                )
            raise
        except Exception as exc:  # a JenkinsError before the queue item: a failed trigger
            outcome, error = runner.outcome, exc
        code = failure_code(outcome, error)
        if outcome.queue_id is not None:
            # fields only: a fast build's callback may already have closed the run
            fields: dict[str, Any] = {
                "trigger_status": "success",
                "trigger_code": None,
                "trigger_message": f"queued as item #{outcome.queue_id}"
                + (" (merged with an identical waiting request)" if outcome.merged else ""),
                "queue_id": outcome.queue_id,
                "trigger_id": outcome.trigger_id,
            }
            current = ledger.get(run.run_id)
            if current is not None and current.is_open():
                fields["status_reason"] = (
                    f"queued as item #{outcome.queue_id}; the reconciler follows it"
                )
            queued = ledger.update(
                run.run_id, reason=f"queued as item #{outcome.queue_id}", source="trigger", **fields
            )
            if outcome.number is None or not queued.is_open():
                return queued
            return ledger.update(
                run.run_id,
                reason=f"build #{outcome.number} found by trigger id",
                source="trigger",
                expect_open=True,
                status="running",
                build_number=outcome.number,
                build_url=outcome.url,
            )
        message = _failure_message(outcome, error)
        obs.trigger_failed(code)
        return ledger.update(
            run.run_id,
            reason=f"trigger failed ({code}): {message}",
            source="trigger",
            expect_open=True,
            status="trigger_failed",
            trigger_status="failed",
            trigger_code=code,
            trigger_message=message,
            trigger_id=outcome.trigger_id,
        )
    finally:
        done.set()
        renewer.join(timeout=5)
        ledger.release(run.run_id, owner)


def _failure_message(outcome: Any, error: Optional[BaseException]) -> str:
    if error is not None:
        text = getattr(error, "message", None) or str(error) or type(error).__name__
        cause = getattr(error, "cause", None)
        fix = getattr(error, "fix", None)
    else:
        text, cause, fix = outcome.message or f"trigger ended {outcome.state}", None, None
        fix = "; ".join(outcome.fixes) or None
    message = text + (f" ({cause})" if cause else "")
    return message + (f"; fix: {fix}" if fix else "")
