"""Measured push bandwidth per registry host, kept between builds.

The file (``$CI_REPORT_HISTORY``, else ``~/.cache/ci-report/push-history.json``) holds, per
host, an EWMA of bytes/second (alpha 0.3: the newest push counts 30 %) and the last samples::

    {"version": 1, "hosts": {"reg.example.com": {"bps": 621000.0, "count": 5,
      "samples": [{"ts": 1790000000, "bytes": 412000000, "seconds": 663.4,
                   "bps": 621043.1, "build_seconds": 95.0}, ...]}}}

Writes are atomic (temporary file + rename) under an advisory lock, so parallel builds on one
agent do not lose each other's samples. A corrupt file is reported once and replaced.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from pathlib import Path
from typing import Any, Iterator, Optional

from ..console import get_console
from .docker_config import normalize_host

__all__ = ["ALPHA", "MAX_SAMPLES", "MIN_SAMPLE_BYTES", "PushHistory"]

ALPHA = 0.3
MAX_SAMPLES = 20
MIN_SAMPLE_BYTES = 1_000_000  # smaller pushes say more about latency than bandwidth
MIN_SAMPLE_SECONDS = 0.5
MAX_BUILD_SECONDS = 86_400.0  # anything larger is a timestamp passed by mistake, not a duration
VERSION = 1


class PushHistory:
    def __init__(
        self,
        path: Path,
        *,
        alpha: float = ALPHA,
        max_samples: int = MAX_SAMPLES,
        min_bytes: int = MIN_SAMPLE_BYTES,
    ) -> None:
        self.path = Path(path).expanduser()
        self.alpha = alpha
        self.max_samples = max_samples
        self.min_bytes = min_bytes
        self._warned = False

    # -- reading ---------------------------------------------------------------------------
    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"version": VERSION, "hosts": {}}
        except OSError as exc:
            self._warn(f"push history {self.path} cannot be read ({exc.strerror}); ignoring it")
            return {"version": VERSION, "hosts": {}}
        try:
            data = json.loads(text) if text.strip() else {"version": VERSION, "hosts": {}}
            if not isinstance(data, dict) or not isinstance(data.get("hosts"), dict):
                raise ValueError("no 'hosts' object")
            for entry in data["hosts"].values():
                if not isinstance(entry, dict) or not isinstance(entry.get("bps"), (int, float)):
                    raise ValueError("a host entry without 'bps'")
        except ValueError as exc:
            self._warn(
                f"push history {self.path} is corrupt ({exc}); starting a fresh one "
                "(bandwidth falls back to --bandwidth or the default)"
            )
            return {"version": VERSION, "hosts": {}}
        return data

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            get_console().warn(message)

    def entry(self, host: str) -> Optional[dict[str, Any]]:
        return self._read()["hosts"].get(normalize_host(host))

    def hosts(self) -> list[str]:
        return sorted(self._read()["hosts"])

    def bandwidth_for(self, host: str) -> Optional[tuple[float, int]]:
        """(EWMA bytes/second, number of pushes behind it), or None when never measured."""
        entry = self.entry(host)
        if not entry or not entry.get("bps"):
            return None
        return float(entry["bps"]), int(entry.get("count") or len(entry.get("samples") or []))

    def build_seconds_for(self, host: str) -> Optional[tuple[float, int]]:
        """(median build seconds of the kept samples, how many), or None."""
        entry = self.entry(host)
        values = [
            float(s["build_seconds"])
            for s in (entry or {}).get("samples") or []
            if isinstance(s, dict) and isinstance(s.get("build_seconds"), (int, float))
        ]
        if not values:
            return None
        return statistics.median(values), len(values)

    # -- writing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        with open(lock_path, "a+") as fh:
            deadline = time.monotonic() + 10
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break  # a stuck holder must not block a build: write anyway
                    time.sleep(0.05)
            try:
                yield
            finally:
                with contextlib.suppress(OSError):
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _write(self, data: dict[str, Any]) -> None:
        from ..fileio import atomic_write

        atomic_write(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")

    def record(
        self,
        host: str,
        bytes: int,
        seconds: float,
        *,
        build_seconds: Optional[float] = None,
        now: Optional[float] = None,
    ) -> Optional[float]:
        """Add one successful push. Returns the new EWMA in bytes/second, or None when the
        sample was too small to say anything about bandwidth (it is still kept for build
        times). Never raises for file trouble: it warns and the build goes on."""
        key = normalize_host(host)
        sample: dict[str, Any] = {
            "ts": int(now if now is not None else time.time()),
            "bytes": int(bytes),
            "seconds": round(float(seconds), 3),
        }
        usable = bytes >= self.min_bytes and seconds >= MIN_SAMPLE_SECONDS
        if usable:
            sample["bps"] = round(bytes / seconds, 1)
        if build_seconds is not None and 0 <= float(build_seconds) <= MAX_BUILD_SECONDS:
            sample["build_seconds"] = round(float(build_seconds), 3)
        try:
            with self._locked():
                data = self._read()
                data["version"] = VERSION
                entry = data["hosts"].setdefault(key, {"bps": 0.0, "count": 0, "samples": []})
                if usable:
                    old = float(entry.get("bps") or 0.0)
                    new = (
                        sample["bps"]
                        if not old
                        else self.alpha * sample["bps"] + (1 - self.alpha) * old
                    )
                    entry["bps"] = round(new, 1)
                    entry["count"] = int(entry.get("count") or 0) + 1
                samples = [s for s in entry.get("samples") or [] if isinstance(s, dict)]
                samples.append(sample)
                entry["samples"] = samples[-self.max_samples :]
                entry["updated"] = sample["ts"]
                self._write(data)
                return float(entry["bps"]) if usable else None
        except OSError as exc:
            get_console().warn(f"push history {self.path} not updated: {exc.strerror or exc}")
            return None
