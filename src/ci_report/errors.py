"""Errors that carry what a person needs: what failed, why, and how to fix it.

Every error that can reach a user derives from :class:`CiReportError`. The CLI prints
``message``, then ``cause`` and ``fix`` lines, and exits with ``exit_code``. Messages must
never contain a secret: build them from names and redacted values only.
"""

from __future__ import annotations

from typing import Optional, Sequence

# Exit codes shared by several commands (sysexits.h where one fits).
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
