"""Supervising one executor run: live output, phases, heartbeat, deadline and signals.

The same loop drives a local process (direct mode) and a container (docker mode) through a
small :class:`Handle`: a queue of output lines, ``poll()`` for the exit code and ``send(sig)``.

- Output is passed through as it comes; a ``[ci-report] phase:`` line marks each phase change.
- Kaniko is silent while it pushes: after ``heartbeat`` seconds without output a heartbeat line
  says the phase, the elapsed time, what was expected and the time left.
- Our deadline: SIGTERM, then SIGKILL after ``kill_grace`` seconds.
- SIGTERM/SIGINT to ci-report: recorded, forwarded to the executor as SIGTERM, SIGKILL after a
  short grace (Jenkins waits 5 s), so ci-report can still write its diagnosis and exit.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from ..signals import DEFERRED, SignalRecorder
from .diagnosis import fmt_bytes, fmt_duration, shell_exit_code
from .kaniko_log import STAGES, LogState

__all__ = ["Expectations", "Handle", "ProcessHandle", "RunResult", "Supervisor"]

EOF = object()
# the coarse stages only move forward on the console: Kaniko's own order goes pull -> build ->
# pull again ("Retrieving image manifest" after "Built cross stage deps") -> build
_STAGE_ORDER = {"pull": 0, "build": 1, "push": 2, "done": 3}


@dataclass
class Expectations:
    """What the timeout plan expected (seconds), for heartbeats."""

    push_s: Optional[float] = None
    build_s: Optional[float] = None  # pull + build
    push_bytes: Optional[int] = None


@dataclass
class RunResult:
    exit_code: Optional[int]
    elapsed: float
    deadline_hit: bool
    signals: list[str]
    log: LogState
    lines: list[str]
    started_at: float  # epoch
    killed: bool = False  # we had to SIGKILL
    error: Optional[str] = None  # the executor could not be started


class Handle:
    """A running executor, as the supervisor sees it."""

    lines: queue.Queue

    def poll(self) -> Optional[int]:
        raise NotImplementedError

    def send(self, sig: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _exit_code(returncode: int) -> int:
    """Popen's -15 -> 143, as a shell would report it."""
    return shell_exit_code(returncode) or 0


class ProcessHandle(Handle):
    """A local executor process in its own process group (so RUN children die with it)."""

    def __init__(
        self, argv: Sequence[str], env: Optional[dict[str, str]] = None, cwd: Optional[str] = None
    ) -> None:
        self.lines = queue.Queue()
        self.proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True, name="executor-output")
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            for raw in iter(self.proc.stdout.readline, b""):
                self.lines.put(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        finally:
            self.lines.put(EOF)

    def poll(self) -> Optional[int]:
        rc = self.proc.poll()
        return None if rc is None else _exit_code(rc)

    def send(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # the executor and its RUN children
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.send(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        if self.proc.stdout:
            self.proc.stdout.close()


@dataclass
class Supervisor:
    console: Any  # ci_report.console.Console
    timeout: Optional[float]
    kill_grace: float = 30.0
    heartbeat: float = 30.0
    term_grace: float = 3.0  # after a signal to ci-report: SIGKILL the executor this soon
    expect: Expectations = field(default_factory=Expectations)
    tail: int = 2000
    poll_interval: float = 0.2

    # -- output --------------------------------------------------------------------------
    def _passthrough(self, line: str) -> None:
        c = self.console
        if c.log_format == "json":
            c.emit("executor", line)
            return
        try:
            c.stream.write(c.redact(line) + "\n")
            c.stream.flush()
        except (OSError, ValueError):
            pass

    def _heartbeat(self, state: LogState, elapsed: float, silent: float) -> None:
        phase = state.phase
        parts = [
            f"still in phase {phase}",
            f"elapsed {fmt_duration(elapsed)}",
            f"no output for {fmt_duration(silent)}",
        ]
        if phase in ("push", "pushed") and state.push_started_at is not None:
            ran = elapsed - state.push_started_at
            text = f"pushing for {fmt_duration(ran)}"
            expected = self.expect.push_s
            if expected:
                text += (
                    f" of ~{fmt_duration(expected)} expected"
                    if ran <= expected
                    else f", longer than the ~{fmt_duration(expected)} expected"
                )
                if self.expect.push_bytes:
                    rate = self.expect.push_bytes / max(expected, 1e-9)
                    text += f" ({fmt_bytes(self.expect.push_bytes)} at {rate / 1e6:.2f} MB/s)"
            parts.append(text)
        elif self.expect.build_s:
            parts.append(f"~{fmt_duration(self.expect.build_s)} expected for pull and build")
        if self.timeout:
            parts.append(
                f"{fmt_duration(max(0.0, self.timeout - elapsed))} left before the "
                f"{fmt_duration(self.timeout)} timeout"
            )
        self.console.info(", ".join(parts), phase=phase, elapsed=round(elapsed, 1))

    # -- the loop ------------------------------------------------------------------------
    def run(self, start: Callable[[], Handle]) -> RunResult:
        # the one signal recorder, deferred: a SIGTERM/SIGINT/SIGHUP to ci-report is recorded
        # and forwarded to the executor by the loop, which then winds down by itself
        recorder = SignalRecorder(DEFERRED).install()
        received = recorder.received
        started_at = time.time()
        t0 = time.monotonic()
        state = LogState(start_epoch=started_at)
        lines: list[str] = []
        try:
            try:
                handle = start()
            except OSError as exc:
                return RunResult(127, 0.0, False, [], state, [str(exc)], started_at, error=str(exc))
            try:
                return self._loop(handle, state, lines, received, started_at, t0)
            finally:
                handle.close()
        finally:
            recorder.uninstall()

    def _loop(
        self,
        handle: Handle,
        state: LogState,
        lines: list[str],
        received: list[int],
        started_at: float,
        t0: float,
    ) -> RunResult:
        deadline_hit = killed = eof = False
        forwarded = 0
        kill_at: Optional[float] = None
        last_output = last_beat = t0
        rc: Optional[int] = None
        stage: Optional[str] = None
        exited_at: Optional[float] = None
        while True:
            try:
                item = handle.lines.get(timeout=self.poll_interval)
            except queue.Empty:
                item = None
            now = time.monotonic()
            elapsed = now - t0
            if item is EOF:
                eof = True
            elif item is not None:
                last_output = now
                self._passthrough(item)
                lines.append(item)
                if len(lines) > self.tail:
                    del lines[: len(lines) - self.tail]
                mark = state.feed(item, at=elapsed)
                new = STAGES.get(mark.phase) if mark is not None else None
                if mark is not None and _STAGE_ORDER.get(new or "", -1) > _STAGE_ORDER.get(
                    stage or "", -1
                ):
                    stage = new
                    self.console.info(
                        f"phase: {stage} ({mark.phase}) at {fmt_duration(elapsed)}",
                        phase=mark.phase,
                    )
            if rc is None:
                rc = handle.poll()
                if rc is not None:
                    exited_at = now
            if rc is not None and (eof or now - (exited_at or now) > 2.0):
                break
            if rc is None:
                if self.timeout and not deadline_hit and elapsed >= self.timeout:
                    deadline_hit = True
                    self.console.warn(
                        f"timeout: {fmt_duration(self.timeout)} reached in phase {state.phase}; "
                        f"sending SIGTERM to the executor (SIGKILL in "
                        f"{fmt_duration(self.kill_grace)})"
                    )
                    handle.send(signal.SIGTERM)
                    kill_at = now + self.kill_grace
                if len(received) > forwarded:
                    names = [signal.Signals(s).name for s in received[forwarded:]]
                    forwarded = len(received)
                    self.console.warn(
                        f"received {', '.join(names)}: forwarding SIGTERM to the "
                        f"executor (phase {state.phase}, {fmt_duration(elapsed)})"
                    )
                    handle.send(signal.SIGTERM)
                    soon = now + (0.0 if len(received) > 1 else self.term_grace)
                    kill_at = soon if kill_at is None else min(kill_at, soon)
                if kill_at is not None and now >= kill_at and not killed:
                    killed = True
                    self.console.warn("the executor did not stop: sending SIGKILL")
                    handle.send(signal.SIGKILL)
                silent = now - last_output
                beat_due = silent >= self.heartbeat and now - last_beat >= self.heartbeat
                if self.heartbeat and not deadline_hit and beat_due:
                    last_beat = now
                    self._heartbeat(state, elapsed, silent)
        elapsed = (exited_at or time.monotonic()) - t0
        return RunResult(
            rc,
            elapsed,
            deadline_hit,
            [signal.Signals(s).name for s in received],
            state,
            lines,
            started_at,
            killed,
        )
