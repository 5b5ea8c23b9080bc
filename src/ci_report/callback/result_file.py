"""``ci-report/callback.json``: what was sent and what became of it, for the build's artifacts.

The Jenkins library archives it and ``ci-report sync`` reads it back. It holds the payload, the
delivery id and the outcome, never a secret. When the payload's ``results`` were capped, every
case is listed under ``allResults``, streamed from a spill file encoded in batches, so memory stays
flat. Persist-first writes the file twice: the spill file, which starts the document with
``allResults``, becomes the first (``queued``) version; the settled version's array is copied from
it by a thread while the callback is sent, and only its other members are written once the
outcome is known. Every version is written whole, fsynced and renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Optional

from ..fileio import atomic_write, atomic_writer, fsync_dir, replace_durably, temp_path_for
from ..jenkins_env import strip_credentials

RESULT_SCHEMA = "ci-report/callback-result/v1"


#: entries encoded per batch once the spill is on disk (batched encoding)
BATCH = 1000
_COPY_BYTES = 1 << 20

_encode_str = json.encoder.encode_basestring  # the C function json.dumps(ensure_ascii=False) uses
_int_text = int.__repr__  # what json.dumps writes for an int (not for a bool: see _entry_text)
_FLAKY = ', "flaky": true'
#: how a spill file starts: it is the result file's beginning (see ResultSpill.write_document)
_LEAD = b'{"allResults": ['


def _dumps(entry: Any) -> str:
    return json.dumps(entry, ensure_ascii=False, sort_keys=True)


def _entry_text(item: Any) -> str:
    """One ``allResults`` entry as JSON text: exactly ``json.dumps(entry, ensure_ascii=False,
    sort_keys=True)`` of the entry dict (``payload.case_entry`` for a ``CaseResult``); a str is
    an entry's text already (:meth:`ResultSpill.add_passed`). A
    ``CaseResult`` with the field types the parser gives (str, int, None) is formatted directly
    with json's own string encoder, without building the dict; anything else takes json.dumps
    (``_encode_str`` and ``_int_text`` raise TypeError on what they cannot write as json does;
    a bool, which ``int.__repr__`` would write as a number, is excluded first)."""
    if item.__class__ is str:
        return item
    if isinstance(item, dict):
        return _dumps(item)
    cid, cls, msg, dur = item.case_id, item.classname, item.message, item.duration_ms
    if dur.__class__ is int and cid is not True and cid is not False:
        try:
            if cid is None:
                case_id = "null"
            else:
                case_id = _encode_str(cid) if cid.__class__ is str else _int_text(cid)
            return (
                f'{{"caseId": {case_id}'
                f', "caseName": {_encode_str(item.name)}'
                f', "className": {"null" if cls is None else _encode_str(cls)}'
                f', "duration": {_int_text(dur)}'
                f', "errorMessage": {"null" if msg is None else _encode_str(msg)}'
                f'{_FLAKY if item.flaky else ""}, "status": {_encode_str(item.status)}}}'
            )
        except TypeError:
            pass
    from .payload import case_entry

    return _dumps(case_entry(item))


def _array_items(items: list[Any]) -> str:
    """The items' JSON texts as ``json.dumps(entries)`` separates them (without the brackets)."""
    return ", ".join([_entry_text(item) for item in items])


class _Prepared:
    """The settled result file, made ahead: the adopted array copied into a new temporary file
    next to the result file, and fsynced, by a thread while the callback is being sent; once
    the outcome is known only the document's other members are written, then it is renamed
    into place (atomic, fsynced, as :func:`atomic_writer` does)."""

    def __init__(self, src_fd: int, end: int, target: Path) -> None:
        self.target = target
        self.tmp = temp_path_for(target)
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self.error: Optional[BaseException] = None
        import threading

        self.thread = threading.Thread(
            target=self._copy, args=(src_fd, end), name="ci-report-result-file", daemon=True
        )
        try:
            self.thread.start()
        except BaseException:
            self.discard()
            raise

    def _copy(self, src_fd: int, end: int) -> None:
        try:
            done = 0
            while done < end:
                chunk = os.pread(src_fd, min(_COPY_BYTES, end - done), done)
                if not chunk:
                    raise OSError("the result file's array was cut short")
                view = memoryview(chunk)
                while view:
                    view = view[os.write(self.fd, view) :]
                done += len(chunk)
            os.fsync(self.fd)
        except BaseException as exc:  # reported by finish(), which then copies it itself
            self.error = exc

    def finish(self, rest: list[bytes]) -> bool:
        """Write ``rest`` and rename into place; False (nothing left behind) if that failed."""
        self.thread.join()
        try:
            if self.error is not None:
                raise OSError(str(self.error))
            for part in rest:
                view = memoryview(part)
                while view:
                    view = view[os.write(self.fd, view) :]
            replace_durably(self.fd, self.tmp, self.target)
        except OSError:
            self.discard()
            return False
        os.close(self.fd)
        self.fd = -1
        return True

    def discard(self) -> None:
        if self.thread.is_alive():
            self.thread.join()
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)


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
        self._array_end = 0  # the file's length once its array is closed
        self._prepared: Optional[_Prepared] = None
        self._encode_at = self.limit + 1  # buffered entries that trigger the next encoding

    def add(self, entry: Any) -> None:
        """One case: an entry dict (``payload.case_entry``) or a ``CaseResult``."""
        self.count += 1
        buffer = self._buffer
        buffer.append(entry)
        if len(buffer) >= self._encode_at:
            if self._file is None:
                self._open_spill()
            else:
                self._encode_buffer()

    def add_passed(
        self, name: str, classname: Optional[str], duration_ms: int, case_id: Any = None
    ) -> None:
        """One passed case without message or flaky mark (the parser's ``on_passed``): its
        entry's text is written here, exactly as :func:`_entry_text` writes its record's."""
        if case_id is None:
            cid = "null"
        elif case_id.__class__ is str:
            cid = _encode_str(case_id)
        elif case_id.__class__ is int:
            cid = _int_text(case_id)
        else:  # another type (a record could hold one): as json.dumps writes it
            cid = json.dumps(case_id, ensure_ascii=False)
        self.count += 1
        buffer = self._buffer
        buffer.append(
            f'{{"caseId": {cid}, "caseName": {_encode_str(name)}'
            f', "className": {"null" if classname is None else _encode_str(classname)}'
            f', "duration": {_int_text(duration_ms)}, "errorMessage": null, "status": "passed"}}'
        )
        if len(buffer) >= self._encode_at:
            if self._file is None:
                self._open_spill()
            else:
                self._encode_buffer()

    def _open_spill(self) -> None:
        try:  # next to the result file, which it becomes (see write_document)
            if self._directory is not None:
                self._directory.mkdir(parents=True, exist_ok=True)
            fd, self._path = tempfile.mkstemp(
                prefix=".ci-report-results-", suffix=".part", dir=self._directory
            )
        except OSError:  # that directory cannot be written: the system's temp directory
            fd, self._path = tempfile.mkstemp(prefix=".ci-report-results-", suffix=".part")
        self._file = os.fdopen(fd, "w+b")
        self._file.write(_LEAD)
        self._encode_at = BATCH
        self._encode_buffer()

    def _encode_buffer(self) -> None:
        assert self._file is not None
        buffer = self._buffer
        for start in range(0, len(buffer), BATCH):
            batch = buffer[start : start + BATCH]
            text = _array_items(batch)
            self._file.write((", " if self._written else "").encode() + text.encode("utf-8"))
            self._written += len(batch)
        self._buffer = []

    def _close_array(self) -> int:
        """The array's last entries and its ``]`` written (once); where the array ends."""
        assert self._file is not None
        if not self._array_end:
            if self._buffer:
                self._encode_buffer()
            self._file.write(b"]")
            self._file.flush()
            self._array_end = self._file.tell()
        return self._array_end

    def _copy(self, out: IO[bytes], start: int, end: int) -> None:
        assert self._file is not None
        spill = self._file
        spill.seek(start)
        left = end - start
        while left > 0:
            chunk = spill.read(min(_COPY_BYTES, left))
            if not chunk:
                raise OSError(f"the spill file {self._path} was cut short")
            out.write(chunk)
            left -= len(chunk)
        spill.seek(0, os.SEEK_END)

    def write_json_array(self, out: IO[bytes]) -> None:
        """The JSON array of every case, to a binary stream."""
        if self._file is not None:
            self._copy(out, len(_LEAD) - 1, self._close_array())  # from its '[' to its ']'
            return
        out.write(b"[")
        if self._buffer:
            out.write(_array_items(self._buffer).encode("utf-8"))
        out.write(b"]")

    def write_document(self, path: Path, rest: list[bytes]) -> bool:
        """Write ``{"allResults": [...]`` followed by ``rest`` (the document's other members
        and its end) to ``path``, atomically and fsynced. The first time, the spill file itself
        becomes that file (``rest`` appended, fsynced, renamed into place: the array is not
        copied); later, or where that rename cannot be done, a copy of its array goes into a
        new file (:func:`atomic_writer`). False when nothing is on disk (the caller writes)."""
        if self._file is None:
            return False
        end = self._close_array()
        spill = self._file
        prepared, self._prepared = self._prepared, None
        if prepared is not None:
            if prepared.target == path and prepared.finish(rest):
                return True
            prepared.discard()
        if self._path is not None:
            try:
                for part in rest:
                    spill.write(part)
                spill.flush()
                mask = os.umask(0o022)
                os.umask(mask)
                os.fchmod(spill.fileno(), 0o644 & ~mask)  # as atomic_writer(mode=0o644)
                os.fsync(spill.fileno())
                os.replace(self._path, path)
            except BaseException as exc:
                spill.truncate(end)  # back to the array alone
                spill.seek(0, os.SEEK_END)
                if not isinstance(exc, OSError):
                    raise
            else:
                self._path = None  # the result file now: never removed by close()
                fsync_dir(path.parent)
                return True
        with atomic_writer(path, mode=0o644) as raw:
            self._copy(raw, 0, end)
            for part in rest:
                raw.write(part)
        return True

    def prepare(self, path: Path) -> None:
        """Once this spill is the result file at ``path`` (see :meth:`write_document`), start
        making its next version: the array copied into a new file by a thread (the callback is
        sent meanwhile), so the next :meth:`write_document` to ``path`` only adds the rest.
        Nothing happens otherwise, or when that cannot be started."""
        if self._file is None or self._path is not None or self._prepared is not None:
            return
        try:
            self._prepared = _Prepared(self._file.fileno(), self._array_end, path)
        except (OSError, RuntimeError):  # the next write copies it itself
            self._prepared = None

    def close(self) -> None:
        self._buffer = []
        if self._prepared is not None:
            self._prepared.discard()
            self._prepared = None
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
    assert spill is not None
    # {"allResults": [...], head..., "payload": <bytes>}: the spilled array is not copied
    members = json.dumps(head, ensure_ascii=False)[1:-1].encode()
    if spill.write_document(path, [b", " + members + b', "payload": ', payload_bytes, b"}\n"]):
        return path
    # stream: {head..., "payload": <bytes>, "allResults": [...]}
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
