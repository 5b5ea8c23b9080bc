"""``ci-report/callback.json``: what was sent and what became of it, for the build's artifacts.

The Jenkins library archives it and ``ci-report sync`` reads it back. It holds the payload, the
delivery id and the outcome, never a secret. When the payload's ``results`` were capped, every
case is listed under ``allResults``, streamed from a spill file encoded in batches, so memory stays
flat and a rewrite (persist-first writes the file twice) copies bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Optional

from ..fileio import atomic_write, atomic_writer
from ..jenkins_env import strip_credentials

RESULT_SCHEMA = "ci-report/callback-result/v1"


#: entries encoded per ``json.dumps`` call once the spill is on disk (batched encoding)
BATCH = 1000
_COPY_BYTES = 1 << 20


def _entry(item: Any) -> dict[str, Any]:
    if isinstance(item, dict):
        return item
    from .payload import case_entry  # a CaseResult

    return case_entry(item)


class ResultSpill:
    """Every case for ``allResults``: kept as given (``CaseResult`` objects the parser holds
    anyway, or entry dicts) up to ``limit``; beyond that encoded in batches of :data:`BATCH`
    into a temporary file that already holds the array's text. Writing the result file then
    copies bytes, so the persist-first write (``queued``) and the final one cost a copy each,
    not a per-case re-encoding. Only needed when a result file is written."""

    def __init__(self, limit: int, directory: Optional[Path] = None) -> None:
        self.limit = max(0, limit)
        self.count = 0
        self._buffer: list[Any] = []
        self._directory = directory
        self._file: Optional[IO[bytes]] = None
        self._path: Optional[str] = None
        self._written = 0  # entries already encoded into the file

    def add(self, entry: Any) -> None:
        """One case: an entry dict (``payload.case_entry``) or a ``CaseResult``."""
        self.count += 1
        self._buffer.append(entry)
        if self._file is None:
            if len(self._buffer) > self.limit:
                self._open_spill()
        elif len(self._buffer) >= BATCH:
            self._encode_buffer()

    def _open_spill(self) -> None:
        if self._directory is not None:
            self._directory.mkdir(parents=True, exist_ok=True)
        fd, self._path = tempfile.mkstemp(
            prefix=".ci-report-results-", suffix=".part", dir=self._directory
        )
        self._file = os.fdopen(fd, "wb")
        self._encode_buffer()

    def _encode_buffer(self) -> None:
        assert self._file is not None
        buffer = self._buffer
        for start in range(0, len(buffer), BATCH):
            batch = [_entry(item) for item in buffer[start : start + BATCH]]
            text = json.dumps(batch, ensure_ascii=False, sort_keys=True)[1:-1]
            self._file.write((", " if self._written else "").encode() + text.encode("utf-8"))
            self._written += len(batch)
        self._buffer = []

    def write_json_array(self, out: IO[bytes]) -> None:
        """The JSON array of every case, to a binary stream."""
        out.write(b"[")
        if self._file is not None:
            if self._buffer:
                self._encode_buffer()
            self._file.flush()
            with open(self._path or "", "rb") as fh:
                shutil.copyfileobj(fh, out, _COPY_BYTES)
        elif self._buffer:
            batch = [_entry(item) for item in self._buffer]
            out.write(json.dumps(batch, ensure_ascii=False, sort_keys=True)[1:-1].encode())
        out.write(b"]")

    def close(self) -> None:
        self._buffer = []
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
        raw.write(json.dumps(head, ensure_ascii=False)[:-1].encode() + b',"payload":')
        raw.write(payload_bytes)
        raw.write(b',"allResults":')
        spill.write_json_array(raw)
        raw.write(b"}\n")
    return path


#: where the build archives the file (relative to the workspace and to the build's artifacts)
ARTIFACT_PATH = "ci-report/callback.json"


@dataclass(frozen=True)
class ArchivedResult:
    """What a result file says: the exact payload sent, its delivery id, where and with what
    outcome. ``url`` is informational only: nothing is ever delivered to it."""

    payload: dict[str, Any]
    delivery_id: str
    url: Optional[str]
    outcome: str


def parse_result_file(data: bytes) -> ArchivedResult:
    """Read a result file's bytes (as archived by a build: untrusted). ValueError names what is
    wrong: not JSON, another schema, no payload, no usable delivery id."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{ARTIFACT_PATH} is not JSON: {str(exc)[:200]}") from None
    if not isinstance(doc, dict) or doc.get("schema") != RESULT_SCHEMA:
        raise ValueError(f"{ARTIFACT_PATH} is not a {RESULT_SCHEMA} file")
    payload, delivery_id = doc.get("payload"), doc.get("deliveryId")
    if not isinstance(payload, dict):
        raise ValueError(f"{ARTIFACT_PATH} has no payload")
    if not isinstance(delivery_id, str) or not delivery_id.startswith("msg_") or "." in delivery_id:
        raise ValueError(f"{ARTIFACT_PATH} has no usable deliveryId")
    url = doc.get("url")
    return ArchivedResult(
        payload=payload,
        delivery_id=delivery_id,
        url=url if isinstance(url, str) else None,
        outcome=str(doc.get("outcome") or "?"),
    )


def read_result_file(path: Path) -> dict[str, Any]:
    """The whole document of a result file this process wrote (tests, tools)."""
    with Path(path).open(encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data
