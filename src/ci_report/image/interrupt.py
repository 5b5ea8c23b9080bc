"""SIGTERM/SIGINT before the executor runs: preflight and the registry calls of the estimate.

The CLI turns these signals into :class:`~ci_report.errors.Interrupted`, but that exception can
be swallowed on its way up: urllib3 wraps what is raised inside a TLS handshake, and the
estimate turns registry trouble into notes by design. So :func:`guard` also *records* the
signal, every registry request calls :func:`check` first (so the estimate winds down at once),
and the guard raises again when its block ends. The executor never starts after a signal.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

__all__ = ["check", "guard", "received"]

_received: list[int] = []


def received() -> list[int]:
    return list(_received)


def check() -> None:
    """Raise :class:`Interrupted` when a signal arrived inside :func:`guard`."""
    if _received:
        from ..errors import Interrupted

        raise Interrupted(_received[0])


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Record SIGTERM/SIGINT (and raise :class:`Interrupted`) while the block runs; raise it
    again at the end of the block if something swallowed it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    from ..errors import Interrupted

    def on_signal(signum: int, _frame: Any) -> None:
        _received.append(signum)
        raise Interrupted(signum)

    _received.clear()
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
        check()
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
        _received.clear()
