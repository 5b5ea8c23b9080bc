"""The one place that prints diagnostics.

Human lines go to stderr prefixed ``[ci-report]``; ``--log-format json`` turns each line into a
JSON object. Everything that passes through here is redacted: registered secrets, values that
look like credentials (``Bearer …``, ``v1,…`` signatures, ``user:password@`` in URLs).

Core modules never print: they call :func:`get_console` (or take a ``Console``) and emit events.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from typing import IO, Any, Iterable, Mapping, Optional, Sequence

PREFIX = "[ci-report]"
MASK = "****"
_LEVELS = {"debug": 10, "info": 20, "outcome": 25, "warning": 30, "error": 40}
_COLORS = {"warning": "\033[33m", "error": "\033[31m", "outcome": "\033[1m", "debug": "\033[2m"}
_RESET = "\033[0m"

# Shapes that are credentials whatever their value: redacted even if never registered.
# Every pattern is linear in the input: each starts with a literal (or a bounded prefix), and
# no unbounded repetition is followed by something that can fail after it (a 1 MB token-like
# run or an 8000-letter message costs one pass, see tests/unit/test_console.py).
_PATTERNS = [
    (re.compile(r"(?i)(bearer[ \t]{1,16})[A-Za-z0-9._~+/=-]{8,}"), r"\1" + MASK),
    (re.compile(r"(?i)(basic[ \t]{1,16})[A-Za-z0-9+/=]{8,}"), r"\1" + MASK),
    (re.compile(r"\bv1,[A-Za-z0-9+/]{20,}={0,2}"), "v1," + MASK),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=]+"), "whsec_" + MASK),
    # user:password@ after a scheme: anchored on the literal "://" (a scheme pattern tried at
    # every letter of a long word was quadratic)
    (re.compile(r"(://[^/\s:@]{1,256}:)[^@\s/]+@"), r"\1" + MASK + "@"),
    (re.compile(r"(?i)(x-api-key['\"]?[ \t]{0,16}[:=][ \t]{0,16}['\"]?)[^\s'\",}]+"), r"\1" + MASK),
]
# JWTs (eyJ...): found inside maximal runs of token characters, each run looked at once
_TOKEN_RUN = re.compile(r"[A-Za-z0-9_.-]{19,}")
_JWT_HEAD = re.compile(r"(?:^|[^A-Za-z0-9_])eyJ")


def _mask_jwt_run(match: re.Match[str]) -> str:
    """A run of token characters that holds ``eyJ<8+>.<8+>.<...>`` (a JWT) is masked whole."""
    run = match.group(0)
    if "eyJ" not in run or run.count(".") < 2:
        return run
    head = _JWT_HEAD.search(run)
    if head is None:
        return run
    start = head.end() - 3
    parts = run[start:].split(".")
    if len(parts) >= 3 and len(parts[0]) >= 11 and len(parts[1]) >= 8:
        return run[:start] + MASK
    return run


# Environment variables whose values are secrets wherever they appear: exactly the env names of
# the secret Settings fields (pinned by tests/unit/test_secret_env.py; no config import here).
SECRET_ENV_VARS = (
    "JENKINS_API_KEY",
    "JENKINS_JWT_SECRET",
    "JENKINS_SIGNATURE_SECRET",
    "JENKINS_TOKEN",
    "CI_REPORT_API_TOKEN",
)


class Redactor:
    """Replaces secrets in text. Thread-safe; secrets shorter than 4 characters are ignored
    (masking them would mangle ordinary words) but still never printed on purpose."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self._regex: Optional[re.Pattern[str]] = None

    def add(self, value: Optional[str]) -> None:
        if not value:
            return
        parts = {value, value.strip(), *value.split()}
        with self._lock:
            for part in parts:
                if len(part) >= 4:
                    self._secrets.add(part)
                    if part.startswith("whsec_"):
                        self._secrets.add(part[len("whsec_") :])
            self._regex = None

    def add_from_env(self, env: Optional[Mapping[str, str]] = None) -> None:
        source: Mapping[str, str] = os.environ if env is None else env
        for name in SECRET_ENV_VARS:
            self.add(source.get(name))

    def redact(self, text: str) -> str:
        if not text:
            return text
        with self._lock:
            if self._regex is None and self._secrets:
                alternatives = sorted(self._secrets, key=len, reverse=True)
                self._regex = re.compile("|".join(re.escape(s) for s in alternatives))
            regex = self._regex
        if regex is not None:
            text = regex.sub(MASK, text)
        for pattern, repl in _PATTERNS:
            text = pattern.sub(repl, text)
        if "eyJ" in text:
            text = _TOKEN_RUN.sub(_mask_jwt_run, text)
        return text

    def redact_obj(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, dict):
            return {k: self.redact_obj(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.redact_obj(v) for v in obj]
        return obj


class Console:
    """Diagnostics for people (``human``) or machines (``json``), always redacted."""

    def __init__(
        self,
        *,
        log_format: str = "human",
        debug: bool = False,
        color: str = "auto",
        stream: Optional[IO[str]] = None,
        redactor: Optional[Redactor] = None,
    ) -> None:
        if log_format not in ("human", "json"):
            raise ValueError(f"unknown log format {log_format!r}")
        self.log_format = log_format
        self.debug_enabled = debug
        self._stream = stream
        self.redactor = redactor or Redactor()
        self.redactor.add_from_env()
        self._color = self._want_color(color)
        self._lock = threading.Lock()

    # -- configuration -------------------------------------------------------------------
    @property
    def stream(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stderr

    def _want_color(self, color: str) -> bool:
        if color == "always":
            return True
        if color == "never" or os.environ.get("NO_COLOR"):
            return False
        isatty = getattr(self.stream, "isatty", lambda: False)
        return bool(isatty()) and os.environ.get("TERM", "") != "dumb"

    def add_secret(self, value: Optional[str]) -> None:
        self.redactor.add(value)

    def redact(self, text: str) -> str:
        return self.redactor.redact(text)

    # -- emitting ------------------------------------------------------------------------
    def emit(self, level: str, message: str, /, **fields: Any) -> None:
        if level == "debug" and not self.debug_enabled:
            return
        message = self.redact(str(message))
        if self.log_format == "json":
            record: dict[str, Any] = {
                "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "level": level,
                "message": message,
            }
            record.update(self.redactor.redact_obj({k: v for k, v in fields.items()}))
            import json

            line = json.dumps(record, ensure_ascii=False, default=str)
        else:
            line = f"{PREFIX} {message}" if message else PREFIX
            if self._color and level in _COLORS:
                line = f"{_COLORS[level]}{line}{_RESET}"
        with self._lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # a closed stderr must never turn a report into a crash

    def debug(self, message: str, /, **fields: Any) -> None:
        self.emit("debug", message, **fields)

    def info(self, message: str, /, **fields: Any) -> None:
        self.emit("info", message, **fields)

    def warn(self, message: str, /, **fields: Any) -> None:
        self.emit("warning", message, **fields)

    def error(self, message: str, /, **fields: Any) -> None:
        self.emit("error", message, **fields)

    def outcome(self, message: str, /, **fields: Any) -> None:
        """The one-line result of a command: the first thing a person reads."""
        self.emit("outcome", message, **fields)

    def detail(self, label: str, text: str, /, level: str = "info", **fields: Any) -> None:
        """An indented ``label: text`` line under an outcome (cause, evidence, fix, ...)."""
        if self.log_format == "json":
            self.emit(level, text, detail=label, **fields)
        else:
            self.emit(level, f"  {label}: {text}" if label else f"  {text}", **fields)

    def block(
        self,
        headline: str,
        /,
        *,
        level: str = "outcome",
        cause: Optional[str] = None,
        evidence: Sequence[str] = (),
        fixes: Sequence[str] = (),
        facts: Iterable[tuple[str, str]] = (),
        **fields: Any,
    ) -> None:
        """Outcome line, then facts, cause, evidence and fixes: one labelled line each."""
        self.emit(level, headline, **fields)
        for label, value in facts:
            self.detail(label, value)
        if cause:
            self.detail("cause", cause)
        for line in evidence:
            self.detail("evidence", line)
        for fix in fixes:
            self.detail("fix", fix)

    def report_error(self, err: Any, *, level: str = "error") -> None:
        """Print a :class:`~ci_report.errors.CiReportError` (or any exception) for a person."""
        message = getattr(err, "message", None) or str(err) or type(err).__name__
        self.block(
            message,
            level=level,
            cause=getattr(err, "cause", None),
            evidence=getattr(err, "evidence", ()),
            fixes=[f for f in [getattr(err, "fix", None)] if f],
        )


_console: Optional[Console] = None
_console_lock = threading.Lock()


def get_console() -> Console:
    """The process-wide console (created with defaults on first use)."""
    global _console
    with _console_lock:
        if _console is None:
            _console = Console()
        return _console


def set_console(console: Console) -> Console:
    global _console
    with _console_lock:
        _console = console
    return console
