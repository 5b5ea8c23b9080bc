"""The ``/api/executions`` endpoints the platforms already call, over the run ledger.

``ExecutionsAPI(ledger, reconciler, trigger).handle(method, path, query, body)`` -> (status, JSON):

- ``GET /api/executions`` (``?status=`` repeatable or comma-separated, ``&job=``, ``&limit=``,
  ``&offset=``) -> ``{"executions": [run...]}``, newest first;
- ``GET /api/executions/stuck?timeout=MINUTES`` -> open runs unchanged for that long;
- ``GET /api/executions/<runId>`` -> the run with its ``history``;
- ``POST /api/executions`` ``{"job", "parameters"?, "runId"?}`` -> 201 with the run (queued, or
  ``trigger_failed`` with ``triggerCode``/``triggerMessage``); an existing ``runId`` -> 200 with
  the run as it is (never triggered twice);
- ``POST /api/executions/<runId>/sync`` -> reconcile that run now, answer with it, ``reason``
  (what the look found) and ``errors`` (Jenkins unreachable, refused, ...);
- ``POST /api/executions/sync-stuck`` ``{"timeoutMinutes": 10, "maxExecutions": 20}`` -> the runs
  it moved and those still open, with reasons.

Authentication (the management bearer token) is the receiver's job, before this is called.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional
from urllib.parse import unquote

from .reconcile import Reconciler
from .runs import RUN_STATUSES, Ledger, Run

PREFIX = "/api/executions"
MAX_LIST = 1000
MAX_SYNC_STUCK = 500

TriggerFn = Callable[[str, dict[str, Any], Optional[str]], Run]


def _json_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _BadRequest(f"body is not UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _BadRequest("body is not a JSON object")
    return doc


class _BadRequest(Exception):
    pass


def _number(value: Any, name: str, *, low: float, high: float) -> float:
    if isinstance(value, bool) or value is None:
        raise _BadRequest(f"{name} must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _BadRequest(f"{name} must be a number") from None
    if not low <= number <= high:
        raise _BadRequest(f"{name} must be between {low:g} and {high:g}")
    return number


class ExecutionsAPI:
    def __init__(
        self,
        ledger: Ledger,
        reconciler: Optional[Reconciler] = None,
        trigger: Optional[TriggerFn] = None,
    ) -> None:
        self.ledger = ledger
        self.reconciler = reconciler
        self.trigger = trigger

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        try:
            return self._route(method.upper(), path.rstrip("/") or "/", query, body)
        except _BadRequest as exc:
            return 400, {"error": str(exc)}

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        if not (path == PREFIX or path.startswith(PREFIX + "/")):
            return 404, {"error": "not found"}
        rest = [unquote(p) for p in path[len(PREFIX) :].strip("/").split("/") if p]
        if not rest:
            if method == "GET":
                return self._list(query)
            if method == "POST":
                return self._create(_json_body(body))
            return 405, {"error": "use GET or POST"}
        if rest == ["stuck"] and method == "GET":
            minutes = _number((query.get("timeout") or ["10"])[0], "timeout", low=0, high=1e6)
            runs = self.ledger.stuck(minutes * 60.0, limit=MAX_LIST)
            return 200, {
                "timeoutMinutes": minutes,
                "executions": [r.to_json() for r in runs],
            }
        if rest == ["sync-stuck"] and method == "POST":
            doc = _json_body(body)
            minutes = _number(doc.get("timeoutMinutes", 10), "timeoutMinutes", low=0, high=1e6)
            most = int(
                _number(doc.get("maxExecutions", 20), "maxExecutions", low=1, high=MAX_SYNC_STUCK)
            )
            if self.reconciler is None:
                return 503, self._untracked()
            return 200, self.reconciler.sync_stuck(minutes, most).to_json()
        if len(rest) == 1 and method == "GET":
            run = self.ledger.get(rest[0])
            if run is None:
                return 404, {"error": "no such execution", "runId": rest[0]}
            return 200, dict(run.to_json(), history=self.ledger.history(run.run_id))
        if len(rest) == 2 and rest[1] == "sync" and method == "POST":
            if self.ledger.get(rest[0]) is None:
                return 404, {"error": "no such execution", "runId": rest[0]}
            if self.reconciler is None:
                return 503, self._untracked()
            run, reason, errors = self.reconciler.reconcile_one_detail(rest[0])
            return 200, dict(
                run.to_json(), reason=reason, errors=errors, history=self.ledger.history(run.run_id)
            )
        return 404 if method in ("GET", "POST") else 405, {"error": "not found"}

    @staticmethod
    def _untracked() -> dict[str, Any]:
        return {
            "error": "runs are not tracked: the receiver has no Jenkins to ask",
            "fix": "start the receiver with --jenkins-url (or JENKINS_URL), JENKINS_USER and "
            "JENKINS_TOKEN",
        }

    def _list(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        statuses = [s for v in query.get("status", []) for s in v.split(",") if s]
        bad = [s for s in statuses if s not in RUN_STATUSES]
        if bad:
            raise _BadRequest(f"unknown status {bad[0]!r}: one of {', '.join(RUN_STATUSES)}")
        jobs = query.get("job") or []
        job = jobs[0] if jobs else None
        limit = int(_number((query.get("limit") or ["200"])[0], "limit", low=1, high=MAX_LIST))
        offset = int(_number((query.get("offset") or ["0"])[0], "offset", low=0, high=1e12))
        runs = self.ledger.list(status=statuses or None, job=job, limit=limit, offset=offset)
        return 200, {"executions": [r.to_json() for r in runs]}

    def _create(self, doc: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        job = doc.get("job")
        if not isinstance(job, str) or not job.strip():
            raise _BadRequest('"job" (the full job name, folders as a/b/c) is required')
        parameters = doc.get("parameters") or {}
        if not isinstance(parameters, dict) or any(
            isinstance(v, (dict, list)) for v in parameters.values()
        ):
            raise _BadRequest('"parameters" must be an object of names to plain values')
        run_id = doc.get("runId")
        if run_id is not None and (isinstance(run_id, (dict, list, bool)) or str(run_id) == ""):
            raise _BadRequest('"runId" must be a string or a number')
        rid = None if run_id is None else str(run_id)
        if rid is not None:
            existing = self.ledger.get(rid)
            if existing is not None:
                return 200, dict(existing.to_json(), existing=True)
        if self.trigger is None:
            return 503, self._untracked()
        run = self.trigger(job.strip(), parameters, rid)
        return 201, run.to_json()
