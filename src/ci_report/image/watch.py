"""``image-watch``: heartbeat and upload-rate lines while a split-mode Kaniko run is silent.

It runs in the python container *beside* the kaniko step (the pipeline's ``parallel``). Kaniko
prints nothing while it pushes, so every ``heartbeat`` seconds without new ``kaniko.log`` output
it prints the phase, the elapsed time, the upload rate and the time left. The upload rate comes
from the transmitted bytes in ``/proc/net/dev``: the containers of a pod share one network
namespace, so the kaniko container's upload shows there too. It stops by itself when the rc file
of this run appears, or when the plan's deadline plus ``grace`` has passed; it never fails the
build.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .diagnosis import fmt_bytes, fmt_duration
from .kaniko_log import LogState
from .split import PlanPaths, SplitPlan, plan_paths

__all__ = ["WatchOptions", "read_tx_bytes", "watch"]

NET_DEV = "/proc/net/dev"
MAX_NET_DEV = 256 * 1024  # a few hundred interfaces at most
MAX_LOG_READ = 1024 * 1024  # per poll: the watcher never holds more than this of the log
MAX_LINE = 64 * 1024


def read_tx_bytes(path: str = NET_DEV) -> Optional[int]:
    """Bytes transmitted by all interfaces except loopback, or None when unreadable."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_NET_DEV)
    except OSError:
        return None
    total, seen = 0, False
    for raw in data.decode("ascii", "replace").splitlines()[2:]:
        name, sep, rest = raw.partition(":")
        if not sep or name.strip() == "lo":
            continue
        fields = rest.split()
        if len(fields) < 9 or not fields[8].isdigit():
            continue
        total += int(fields[8])
        seen = True
    return total if seen else None


@dataclass
class WatchOptions:
    heartbeat: float = 30.0  # seconds without output before a heartbeat line
    grace: float = 60.0  # after the plan's deadline, stop watching this much later
    poll: float = 1.0
    net_dev: str = NET_DEV
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep


@dataclass
class _Tail:
    """Reads the lines a file gained since the last call, at most MAX_LOG_READ at a time."""

    path: Path
    offset: int = 0
    partial: bytes = b""
    lines: list[str] = field(default_factory=list)

    def read(self) -> list[str]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(0, 2)
                size = fh.tell()
                if size < self.offset:  # truncated or replaced: start again
                    self.offset, self.partial = 0, b""
                fh.seek(self.offset)
                chunk = fh.read(MAX_LOG_READ)
        except OSError:
            return []
        self.offset += len(chunk)
        data = self.partial + chunk
        *whole, rest = data.split(b"\n")
        self.partial = rest[-MAX_LINE:]
        return [line[:MAX_LINE].decode("utf-8", "replace") for line in whole]


def _start_time(paths: PlanPaths, created: float) -> Optional[float]:
    """The script's start time, when the times file of this run has it."""
    try:
        if paths.times.stat().st_mtime < created - 0.05:
            return None
        text = paths.times.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return None
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "start":
            try:
                return float(words[1])
            except ValueError:
                return None
    return None


def _finished(paths: PlanPaths, created: float) -> Optional[str]:
    try:
        if paths.rc.stat().st_mtime < created - 0.05:
            return None  # an earlier run's
        return paths.rc.read_text(encoding="utf-8", errors="replace")[:32].strip() or "?"
    except OSError:
        return None


def watch(plan: SplitPlan, plan_path: str, console: Any, opts: WatchOptions) -> int:
    """Print heartbeats until this run's rc file appears or the deadline + grace passed."""
    paths = plan_paths(plan, plan_path)
    now = opts.clock()
    created = float(plan.created_at or now)
    timeout = float(plan.timeout_seconds or 0)
    limit = timeout + float(plan.kill_grace_seconds or 0) + opts.grace
    expected_push = (plan.timeout_plan or {}).get("expectedPushSeconds")
    push_bytes = (plan.estimate or {}).get("totalBytes")
    console.info(
        f"watching {paths.log} until {paths.rc.name} appears "
        f"(heartbeat every {fmt_duration(opts.heartbeat)} of silence)"
    )
    tail = _Tail(paths.log)
    state = LogState()
    last_output = last_beat = now
    tx_prev, tx_at = read_tx_bytes(opts.net_dev), now
    tx_first = tx_prev
    start: Optional[float] = None
    while True:
        now = opts.clock()
        rc = _finished(paths, created)
        if rc is not None:
            console.info(f"kaniko step finished (rc {rc}); image-diagnose explains the result")
            return 0
        if start is None:
            start = _start_time(paths, created)
            if start is not None:
                last_output = now
        began = start if start is not None else created
        if now - began > limit:
            console.warn(
                f"stopped watching: {fmt_duration(now - began)} passed, more than the plan's "
                f"{fmt_duration(timeout)} timeout plus kill grace and "
                f"{fmt_duration(opts.grace)}, and {paths.rc.name} never appeared"
            )
            return 0
        new = tail.read()
        if new:
            last_output = now
            for line in new:
                state.feed(line, at=now - began)
        silent = now - last_output
        if opts.heartbeat and silent >= opts.heartbeat and now - last_beat >= opts.heartbeat:
            last_beat = now
            tx = read_tx_bytes(opts.net_dev)
            parts = [
                "waiting for the kaniko step to start"
                if start is None
                else f"still in phase {state.phase}",
                f"elapsed {fmt_duration(now - began)}",
                f"no output for {fmt_duration(silent)}",
            ]
            if tx is not None and tx_prev is not None and now > tx_at:
                rate = max(0, tx - tx_prev) / (now - tx_at)
                sent = max(0, tx - (tx_first or 0))
                parts.append(f"uploading {rate / 1e6:.2f} MB/s ({fmt_bytes(sent)} sent so far)")
            if state.phase in ("push", "pushed") and expected_push:
                parts.append(f"~{fmt_duration(expected_push)} expected for the push")
                if push_bytes:
                    parts[-1] += f" of {fmt_bytes(push_bytes)}"
            if timeout:
                parts.append(
                    f"{fmt_duration(max(0.0, timeout - (now - began)))} left before the "
                    f"{fmt_duration(timeout)} timeout"
                )
            tx_prev, tx_at = tx, now
            console.info(", ".join(parts), phase=state.phase, elapsed=round(now - began, 1))
        opts.sleep(opts.poll)
