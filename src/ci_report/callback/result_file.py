"""``ci-report/callback.json``: what was sent and what became of it, for the build's artifacts.

The Jenkins library archives it and ``ci-report sync`` reads it back. It holds the payload, the
delivery id and the outcome, never a secret. When the payload's ``results`` were capped, every
case is listed under ``allResults`` (streamed from a spill file, so memory stays flat).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Optional

from ..fileio import atomic_write, atomic_writer
from ..jenkins_env import strip_credentials

RESULT_SCHEMA = "ci-report/callback-result/v1"


class ResultSpill:
    """Collects every case entry: in memory up to ``limit``, then in a temporary JSON-lines
    file. Only needed when a result file is written."""

    def __init__(self, limit: int, directory: Optional[Path] = None) -> None:
        self.limit = max(0, limit)
        self.count = 0
        self._buffer: list[dict[str, Any]] = []
        self._directory = directory
        self._file: Optional[IO[str]] = None
        self._path: Optional[str] = None

    def add(self, entry: dict[str, Any]) -> None:
        self.count += 1
        if self._file is None:
            self._buffer.append(entry)
            if len(self._buffer) > self.limit:
                self._open_spill()
            return
        self._file.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")

    def _open_spill(self) -> None:
        if self._directory is not None:
            self._directory.mkdir(parents=True, exist_ok=True)
        fd, self._path = tempfile.mkstemp(
            prefix=".ci-report-results-", suffix=".jsonl", dir=self._directory
        )
        self._file = os.fdopen(fd, "w", encoding="utf-8")
        for entry in self._buffer:
            self._file.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
        self._buffer = []

    def write_json_array(self, out: IO[str]) -> None:
        out.write("[")
        first = True
        if self._file is None:
            for entry in self._buffer:
                out.write(("" if first else ",") + json.dumps(entry, ensure_ascii=False))
                first = False
        else:
            self._file.flush()
            with open(self._path or "", encoding="utf-8") as fh:
                for line in fh:
                    out.write(("" if first else ",") + line.rstrip("\n"))
                    first = False
        out.write("]")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._path:
            with contextlib.suppress(OSError):
                os.unlink(self._path)
            self._path = None


def write_result_file(
    path: Path,
    *,
    payload_bytes: bytes,
    delivery_id: str,
    url: Optional[str],
    outcome: str,
    attempts: int,
    status_code: Optional[int],
    error: Optional[str],
    spill: Optional[ResultSpill] = None,
) -> Path:
    """Write the result file atomically. ``payload_bytes`` is the canonical body as sent."""
    head = {
        "schema": RESULT_SCHEMA,
        "deliveryId": delivery_id,
        "url": strip_credentials(url),  # archived with the build: no user:password@
        "outcome": outcome,
        "attempts": attempts,
        "statusCode": status_code,
        "error": error,
    }
    truncated = spill is not None and b'"resultsTruncated":true' in payload_bytes
    if not truncated:
        text = json.dumps(head, ensure_ascii=False)[:-1] + ',"payload":'
        atomic_write(path, text.encode() + payload_bytes + b"}\n", mode=0o644)
        return path
    # stream: {head..., "payload": <bytes>, "allResults": [...]}
    assert spill is not None
    with atomic_writer(path, mode=0o644) as raw:
        out = io.TextIOWrapper(raw, encoding="utf-8")
        out.write(json.dumps(head, ensure_ascii=False)[:-1] + ',"payload":')
        out.write(payload_bytes.decode("utf-8"))
        out.write(',"allResults":')
        spill.write_json_array(out)
        out.write("}\n")
        out.flush()
        out.detach()
    return path


def read_result_file(path: Path) -> dict[str, Any]:
    with Path(path).open(encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data
