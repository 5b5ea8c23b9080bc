"""What the platform side tells whoever watches it: one hook per event, no-ops by default.

The receiver, the ledger, the reconciler and the trigger take an optional :class:`Observer` and call
its hooks; they never depend on who listens. ``platform/metrics.py`` turns the hooks into Prometheus
metrics; a test can record them; :class:`MultiObserver` fans one event out to several observers.
A hook must be cheap and must never raise into the caller: :class:`MultiObserver` swallows (and
counts) what a listener raises, and callers that use a bare observer wrap it in one.
"""

from __future__ import annotations

from typing import Optional, Sequence


class Observer:
    """Base class: every hook does nothing. Override the ones you need."""

    def callback_received(
        self, outcome: str, modes: Sequence[str] = (), reason: Optional[str] = None
    ) -> None:
        """A POST to the callback route ended: ``outcome`` is ``applied``, ``duplicate``,
        ``stale`` or ``rejected`` (then ``reason`` names why: ``auth``, ``body``, ``reused-id``,
        ``too-large``, ...); ``modes`` are the verified auth modes."""

    def agent_report(
        self,
        attempt: Optional[int] = None,
        first_attempt_age_s: Optional[float] = None,
        backlog: Optional[int] = None,
    ) -> None:
        """The agent's ``CI-Report-Attempt``, ``CI-Report-First-Attempt`` (as an age) and
        ``CI-Report-Outbox-Backlog`` headers of an accepted callback (None where absent)."""

    def run_transition(self, run_id: str, old: Optional[str], new: str, reason: str) -> None:
        """A run changed status (``old`` is None for a new run)."""

    def reconcile_pass(self, duration_s: float, moved: int, errors: int) -> None:
        """One reconcile pass finished."""

    def sync_done(self, result_source: str) -> None:
        """A run was closed from Jenkins: ``artifact``, ``test-report`` or ``status-only``."""

    def trigger_failed(self, code: str) -> None:
        """A trigger failed before a queue item existed; ``code`` is its stable code."""

    def jenkins_error(self, kind: str) -> None:
        """A request to Jenkins failed: ``kind`` is ``unreachable``, ``timeout``, ``auth``,
        ``http-5xx``, ``http-4xx`` or ``invalid``."""


class MultiObserver(Observer):
    """Fan every hook out to several observers; a failing listener never reaches the caller."""

    def __init__(self, *observers: Optional[Observer]) -> None:
        self.observers = [o for o in observers if o is not None]
        self.listener_errors = 0

    def _each(self, name: str, *args: object, **kwargs: object) -> None:
        for observer in self.observers:
            try:
                getattr(observer, name)(*args, **kwargs)
            except Exception:  # a metrics bug must never fail a callback or a pass
                self.listener_errors += 1

    def callback_received(
        self, outcome: str, modes: Sequence[str] = (), reason: Optional[str] = None
    ) -> None:
        self._each("callback_received", outcome, modes, reason)

    def agent_report(
        self,
        attempt: Optional[int] = None,
        first_attempt_age_s: Optional[float] = None,
        backlog: Optional[int] = None,
    ) -> None:
        self._each("agent_report", attempt, first_attempt_age_s, backlog)

    def run_transition(self, run_id: str, old: Optional[str], new: str, reason: str) -> None:
        self._each("run_transition", run_id, old, new, reason)

    def reconcile_pass(self, duration_s: float, moved: int, errors: int) -> None:
        self._each("reconcile_pass", duration_s, moved, errors)

    def sync_done(self, result_source: str) -> None:
        self._each("sync_done", result_source)

    def trigger_failed(self, code: str) -> None:
        self._each("trigger_failed", code)

    def jenkins_error(self, kind: str) -> None:
        self._each("jenkins_error", kind)


def safe(observer: Optional[Observer]) -> Observer:
    """An observer that is always callable and never raises (a MultiObserver around it)."""
    if isinstance(observer, MultiObserver):
        return observer
    return MultiObserver(observer)
