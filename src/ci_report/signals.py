"""The one signal recorder: SIGTERM, SIGINT and SIGHUP handled alike.

Every command that must save what is in flight installs one :class:`SignalRecorder`. It records
the first signal and, by policy, either raises :class:`~ci_report.errors.Interrupted` at once
(``immediate``: the default for the CLI) or only at the next safe point (``deferred``: code that
runs a child process and winds down by itself calls :meth:`SignalRecorder.check`).

While a block runs under :meth:`SignalRecorder.held` (saving an outbox entry, writing the result
file), signals are only recorded: the block finishes, then the recorded signal is raised. Only the
first signal is ever raised: a second one (TERM then INT within milliseconds) is recorded and
ignored, so it can neither interrupt the save of the first nor print a traceback. The process
exits ``128 + signal number`` (129 HUP, 130 INT, 143 TERM).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Callable, Iterator, Optional

from .errors import Interrupted

__all__ = ["HANDLED", "SignalRecorder", "held", "install", "recorder"]

HANDLED: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name)
)

IMMEDIATE = "immediate"
DEFERRED = "deferred"


class SignalRecorder:
    """Records SIGTERM/SIGINT/SIGHUP; raises :class:`Interrupted` once, at a safe moment."""

    def __init__(self, policy: str = IMMEDIATE) -> None:
        if policy not in (IMMEDIATE, DEFERRED):
            raise ValueError(f"unknown signal policy {policy!r}")
        self.policy = policy
        self.received: list[int] = []  # every signal, in order (the first one counts)
        self._raised = False
        self._hold_depth = 0
        self._previous: dict[int, Any] = {}

    # -- state -----------------------------------------------------------------------------
    @property
    def pending(self) -> Optional[int]:
        """The first signal received, or None."""
        return self.received[0] if self.received else None

    @property
    def holding(self) -> bool:
        return self._hold_depth > 0

    # -- installing ------------------------------------------------------------------------
    def install(self) -> SignalRecorder:
        """Handle :data:`HANDLED` signals in this process (main thread only; elsewhere, and
        in threads, nothing is installed)."""
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in HANDLED:
            with contextlib.suppress(ValueError, OSError):
                self._previous.setdefault(signum, signal.signal(signum, self._on_signal))
        return self

    def uninstall(self) -> None:
        for signum, old in self._previous.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(signum, old)
        self._previous.clear()

    # -- acting ----------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.received.append(signum)
        if self.policy == IMMEDIATE and not self.holding:
            self._raise_once()

    def _raise_once(self) -> None:
        if self._raised or not self.received:
            return
        self._raised = True
        raise Interrupted(self.received[0])

    def check(self) -> None:
        """A safe point: raise :class:`Interrupted` for a recorded signal not raised yet."""
        if not self.holding:
            self._raise_once()

    def reset(self) -> None:
        """Forget what was received (a new command in the same process)."""
        self.received.clear()
        self._raised = False
        self._hold_depth = 0

    def close(self) -> Optional[int]:
        """From now on signals are only recorded (the command is reporting its outcome and
        exiting); returns a signal received but never raised, if any."""
        late = None if self._raised else self.pending
        self._raised = True
        return late

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Signals arriving inside the block are recorded and acted on after it."""
        self._hold_depth += 1
        try:
            yield
        finally:
            self._hold_depth -= 1
        if self.policy == IMMEDIATE:
            self.check()


_recorder = SignalRecorder()


def recorder() -> SignalRecorder:
    """The process-wide recorder."""
    return _recorder


def install(policy: str = IMMEDIATE) -> SignalRecorder:
    """Install the process-wide recorder with ``policy``; returns it."""
    _recorder.policy = policy
    _recorder.reset()
    return _recorder.install()


def held() -> contextlib.AbstractContextManager[None]:
    """``with signals.held(): save()``: no signal interrupts the block (see the module doc)."""
    return _recorder.held()


def call_held(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` with signals held off."""
    with _recorder.held():
        return fn()
