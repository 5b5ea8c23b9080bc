"""SIGTERM/SIGINT/SIGHUP before the executor runs: preflight and the registry calls of the estimate.

The CLI turns these signals into :class:`~ci_report.errors.Interrupted`, but that exception can
be swallowed on its way up: urllib3 wraps what is raised inside a TLS handshake, and the
estimate turns registry trouble into notes by design. So :func:`guard` installs the one signal
recorder (:class:`ci_report.signals.SignalRecorder`, raising at once) for its block, every
registry request calls :func:`check` first (so the estimate winds down at once), and the guard
raises again when its block ends. The executor never starts after a signal.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

from ..signals import IMMEDIATE, SignalRecorder

__all__ = ["check", "guard", "received"]

_active: Optional[SignalRecorder] = None


def received() -> list[int]:
    return list(_active.received) if _active is not None else []


def check() -> None:
    """Raise :class:`Interrupted` when a signal arrived inside :func:`guard` (again, if what
    raised it the first time was swallowed)."""
    if _active is not None and _active.received:
        from ..errors import Interrupted

        raise Interrupted(_active.received[0])


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Record SIGTERM/SIGINT/SIGHUP (and raise :class:`Interrupted`) while the block runs;
    raise it again at the end of the block if something swallowed it."""
    global _active
    recorder = SignalRecorder(IMMEDIATE).install()
    outer, _active = _active, recorder
    try:
        yield
        check()
    finally:
        recorder.uninstall()
        _active = outer
