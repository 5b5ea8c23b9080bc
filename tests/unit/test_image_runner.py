"""The supervisor's console lines: phase changes and heartbeats (no real process needed)."""

from __future__ import annotations

import io
import queue
import time
from typing import Optional

from ci_report.console import Console
from ci_report.image.runner import EOF, Expectations, Handle, Supervisor


def _text(msg: str) -> str:
    return f'time="2026-11-23T20:00:00Z" level=info msg="{msg}"'


class ScriptedHandle(Handle):
    """Emits ``lines``, stays silent for ``silence`` seconds, then exits with ``rc``."""

    def __init__(self, lines: list[str], silence: float = 0.0, rc: int = 0) -> None:
        self.lines = queue.Queue()
        for line in lines:
            self.lines.put(line)
        self.until = time.monotonic() + silence
        self.rc = rc
        self.closed = False

    def poll(self) -> Optional[int]:
        if time.monotonic() < self.until:
            return None
        if not self.closed:
            self.closed = True
            self.lines.put(EOF)
        return self.rc

    def send(self, sig: int) -> None:
        self.until = 0.0


def _run(lines: list[str], silence: float = 0.0, **kw) -> tuple[str, object]:
    stream = io.StringIO()
    sup = Supervisor(Console(stream=stream, color="never"), poll_interval=0.05, **kw)
    result = sup.run(lambda: ScriptedHandle(lines, silence))
    return stream.getvalue(), result


KANIKO_ORDER = [  # Kaniko v1.24 really goes pull -> build -> pull -> build -> push
    "Retrieving image manifest base:1",
    "Retrieving image base:1 from registry r.io",
    "Built cross stage deps: map[]",
    "Retrieving image manifest base:1",
    "Returning cached image manifest",
    "Executing 0 build triggers",
    "Building stage 'base:1' [idx: '0', base-idx: '-1']",
    "COPY app.jar /app.jar",
    "Pushing image to r.io/app:1",
    "Pushed r.io/app@sha256:" + "a" * 64,
]


def test_phase_lines_only_move_forward() -> None:
    out, result = _run([_text(m) for m in KANIKO_ORDER], timeout=60, heartbeat=30)
    phases = [
        line.split("phase: ", 1)[1].split()[0] for line in out.splitlines() if "phase: " in line
    ]
    assert phases == ["pull", "build", "push"], out
    assert result.log.phase == "pushed"  # the fine-grained state still follows every marker


def test_heartbeat_says_expected_push_and_when_it_is_late() -> None:
    expect = Expectations(push_s=1.0, push_bytes=2_000_000)
    out, _ = _run(
        [_text("Pushing image to r.io/app:1")],
        silence=2.2,
        timeout=60,
        heartbeat=0.4,
        expect=expect,
    )
    beats = [line for line in out.splitlines() if "still in phase push" in line]
    assert len(beats) >= 3, out
    assert "of ~1s expected (2.0 MB at 2.00 MB/s)" in beats[0]
    assert "left before the 1m00s timeout" in beats[0]
    assert ", longer than the ~1s expected (2.0 MB at 2.00 MB/s)" in beats[-1], beats
