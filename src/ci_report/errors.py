"""Errors that carry what a person needs: what failed, why, and how to fix it.

Every error that can reach a user derives from :class:`CiReportError`. The CLI prints
``message``, then ``cause`` and ``fix`` lines, and exits with ``exit_code``. Messages must
never contain a secret: build them from names and redacted values only.
"""

from __future__ import annotations

from typing import Optional, Sequence

# Exit codes (sysexits.h where one fits). What each command exits with, and why, is
# :data:`EXIT_CODES`; docs/design.md section 3 states the same table (a test keeps them equal).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_DATAERR = 65  # rejected by the receiver (4xx)
EXIT_SOFTWARE = 70  # internal error (only with --strict)
EXIT_TEMPFAIL = 75  # queued in the outbox
EXIT_CONFIG = 78  # configuration error
EXIT_SIGHUP = 129
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

# trigger and sync: a small table of their own (a platform maps them without parsing text)
EXIT_LOST = 3  # trigger: the build or its outcome could not be determined
EXIT_NOTHING = 3  # sync: nothing to recover
EXIT_CANCELLED = 4
EXIT_TIMEOUT = 5
EXIT_UNSTABLE = 6
EXIT_ABORTED = 7

_SIGNALS: dict[int, str] = {
    EXIT_SIGHUP: "interrupted by SIGHUP (what was in flight is saved first)",
    EXIT_SIGINT: "interrupted by SIGINT (what was in flight is saved first)",
    EXIT_SIGTERM: "interrupted by SIGTERM (what was in flight is saved first)",
}
#: every command exits with these too (click's usage error, the signals), unless its own table
#: leaves them out: image-watch exits 0 after a signal, it stops with its branch
COMMON_EXIT_CODES: dict[int, str] = {
    EXIT_USAGE: "usage error: an unknown option or a bad value on the command line",
    **_SIGNALS,
}
_CONFIG = "configuration error: an invalid value from a flag, the environment or the config file"
_INTERNAL = "internal error in ci-report (the traceback only with --debug)"


def _table(own: dict[int, str], common: Optional[dict[int, str]] = None) -> dict[int, str]:
    return dict(sorted({**(COMMON_EXIT_CODES if common is None else common), **own}.items()))


#: command -> {exit code: one-line meaning}, common codes included; docs/design.md section 3
#: states the same (tests/unit/test_cli_exit_codes.py parses it and compares)
EXIT_CODES: dict[str, dict[int, str]] = {
    "callback": _table(
        {
            EXIT_OK: "done, whatever happened (delivered, queued, rejected, not configured) "
            "unless --strict: a callback never fails a build",
            EXIT_DATAERR: "--strict: rejected by the receiver (4xx or 3xx; kept in the outbox "
            "for a flush after the fix)",
            EXIT_SOFTWARE: "--strict: " + _INTERNAL,
            EXIT_TEMPFAIL: "--strict: queued in the outbox (transient failure)",
            EXIT_CONFIG: "--strict: " + _CONFIG,
        }
    ),
    "flush": _table(
        {
            EXIT_OK: "done (without --strict: whatever happened)",
            EXIT_SOFTWARE: "--strict: " + _INTERNAL,
            EXIT_TEMPFAIL: "--strict: entries remain in the outbox or were moved to dead/",
            EXIT_CONFIG: "--strict: " + _CONFIG,
        }
    ),
    "diagnose": _table(
        {
            EXIT_OK: "every step passed",
            EXIT_FAILURE: "a step failed (its fix is printed), or " + _INTERNAL,
            EXIT_CONFIG: _CONFIG,
        }
    ),
    "image-push": _table(
        {
            EXIT_OK: "pushed, or skipped (no Dockerfile, with --skip-if-no-dockerfile)",
            EXIT_FAILURE: "preflight stopped it before the executor ran, or the push failed "
            "without an exit code of its own; any other code is the executor's own",
        }
    ),
    "image-plan": _table(
        {
            EXIT_OK: "script and plan written, or skipped",
            EXIT_FAILURE: "preflight stopped it: no script to run",
        }
    ),
    "image-diagnose": _table(
        {
            EXIT_OK: "pushed, or skipped",
            EXIT_FAILURE: "the push failed without an exit code of its own, or the plan cannot "
            "be used; any other code is the executor's (from the rc file)",
        }
    ),
    "image-watch": _table(
        {
            EXIT_OK: "always, also after SIGTERM/SIGINT/SIGHUP: it never fails the build",
            EXIT_FAILURE: "the plan cannot be read",
        },
        common={EXIT_USAGE: COMMON_EXIT_CODES[EXIT_USAGE]},
    ),
    "trigger": _table(
        {
            EXIT_OK: "SUCCESS (or the build started, without --wait)",
            EXIT_FAILURE: "FAILURE",
            EXIT_USAGE: "usage or configuration error",
            EXIT_LOST: "lost or unknown (the build or its outcome could not be determined; "
            "also an internal error)",
            EXIT_CANCELLED: "cancelled in the queue",
            EXIT_TIMEOUT: "timed out",
            EXIT_UNSTABLE: "UNSTABLE",
            EXIT_ABORTED: "ABORTED or NOT_BUILT",
        }
    ),
    "sync": _table(
        {
            EXIT_OK: "done: recovered, or still running (nothing sent)",
            EXIT_FAILURE: "delivery failed (kept in the outbox), Jenkins unreachable, a batch "
            "entry failed, or " + _INTERNAL,
            EXIT_USAGE: "usage or configuration error (e.g. Jenkins refused the credentials)",
            EXIT_NOTHING: "nothing to recover (no such build)",
        }
    ),
    "reconcile": _table(
        {
            EXIT_OK: "the pass ran (runs may stay open: see the output)",
            EXIT_FAILURE: "--once: some runs could not be checked (Jenkins unreachable or "
            "refusing)",
            EXIT_USAGE: "usage or configuration error (no ledger, no Jenkins URL)",
            EXIT_LOST: _INTERNAL,
        }
    ),
    "receiver": _table(
        {
            EXIT_OK: "stopped by Ctrl-C or SIGTERM (it runs until stopped)",
            EXIT_SOFTWARE: _INTERNAL,
            EXIT_CONFIG: _CONFIG,
        }
    ),
    "demo": _table(
        {
            EXIT_OK: "the examples were sent and shown",
            EXIT_SOFTWARE: _INTERNAL,
            EXIT_CONFIG: _CONFIG,
        }
    ),
    "config": _table(
        {
            EXIT_OK: "settings shown",
            EXIT_SOFTWARE: _INTERNAL,
            EXIT_CONFIG: _CONFIG,
        }
    ),
}


class CiReportError(Exception):
    """An error with a human explanation. ``exit_code`` is what the CLI exits with."""

    exit_code = EXIT_FAILURE

    def __init__(
        self,
        message: str,
        *,
        cause: Optional[str] = None,
        fix: Optional[str] = None,
        evidence: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause
        self.fix = fix
        self.evidence = list(evidence)


class ConfigError(CiReportError):
    """Wrong or missing configuration: a flag, an environment variable, the config file."""

    exit_code = EXIT_CONFIG


class InputError(CiReportError):
    """A file or argument the user gave cannot be used."""

    exit_code = EXIT_USAGE


class Interrupted(CiReportError):
    """SIGTERM, SIGINT or SIGHUP arrived; ``signum`` says which (exit ``128 + signum``)."""

    def __init__(self, signum: int) -> None:
        import signal

        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name}")
        self.signum = signum
        self.exit_code = 128 + int(signum)
