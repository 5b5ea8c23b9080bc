"""The spill file becomes the result file (persist-first's first write copies no array), and
every other way of writing it gives the same document."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Optional

import pytest

from ci_report.callback.payload import canonical_body
from ci_report.callback.result_file import ResultSpill, read_result_file, write_result_file


def _write(path: Path, spill: ResultSpill, outcome: str) -> dict[str, Any]:
    body = canonical_body({"results": [], "resultsTruncated": True, "runId": 1})
    write_result_file(
        path,
        payload_bytes=body,
        delivery_id="msg_" + "b" * 32,
        url="https://u:p@platform.example.com/cb",
        outcome=outcome,
        attempts=1,
        status_code=None,
        error='é " \\',
        spill=spill,
    )
    return read_result_file(path)


def _spill(directory: Optional[Path], n: int = 2500) -> tuple[ResultSpill, list[dict[str, Any]]]:
    spill = ResultSpill(10, directory)
    entries = [{"caseName": f"t{i} é", "status": "passed", "n": i} for i in range(n)]
    for entry in entries:
        spill.add(entry)
    return spill, entries


def _parts(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".part")]


def test_spill_file_becomes_the_queued_file_then_is_copied(tmp_path: Path) -> None:
    out = tmp_path / "ci-report"
    spill, entries = _spill(out)
    assert len(_parts(out)) == 1
    queued = _write(out / "callback.json", spill, "queued")
    assert _parts(out) == []  # renamed into place: not copied
    inode = (out / "callback.json").stat().st_ino
    with (out / "callback.json").open("rb") as held:  # readers of the queued file see it whole
        before = held.read()
        settled = _write(out / "callback.json", spill, "delivered")
        held.seek(0)
        assert held.read() == before
    assert (out / "callback.json").stat().st_ino != inode  # a new file, atomically
    spill.close()
    assert queued["allResults"] == settled["allResults"] == entries
    assert (queued["outcome"], settled["outcome"]) == ("queued", "delivered")
    assert queued["url"] == "https://platform.example.com/cb" and settled["error"] == 'é " \\'
    assert {k: v for k, v in queued.items() if k != "outcome"} == {
        k: v for k, v in settled.items() if k != "outcome"
    }
    mode = stat.S_IMODE((out / "callback.json").stat().st_mode)
    assert mode == 0o644 & ~_umask()
    assert sorted(p.name for p in out.iterdir()) == ["callback.json"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_failed_rename_falls_back_to_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rename refused (another filesystem: EXDEV): the spill file is cut back to its array
    and copied; the next write tries again and works."""
    spill, entries = _spill(tmp_path / "spill")
    real = os.replace
    refused: list[str] = []

    def replace(src: Any, dst: Any) -> None:
        if str(src).endswith(".part") and not refused:
            refused.append(str(src))
            raise OSError(18, "Invalid cross-device link")
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "ws" / "callback.json"
    target.parent.mkdir()
    first = _write(target, spill, "queued")
    assert refused and _parts(tmp_path / "spill")  # still there, its array alone
    second = _write(target, spill, "delivered")
    assert _parts(tmp_path / "spill") == []  # this time it became the file
    third = _write(target, spill, "rejected")
    spill.close()
    assert first["allResults"] == second["allResults"] == third["allResults"] == entries


def test_spill_directory_that_cannot_be_made_uses_the_temp_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    spill, entries = _spill(blocker / "ci-report")  # under a file: mkdir fails
    target = tmp_path / "callback.json"
    assert _write(target, spill, "queued")["allResults"] == entries
    assert _write(target, spill, "delivered")["allResults"] == entries
    spill.close()


@pytest.mark.parametrize("copy", ["made", "failed", "unused"])
def test_settled_file_made_ahead_is_the_same_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, copy: str
) -> None:
    """prepare() copies the array for the next write while the callback is sent; that write
    gives the document a copy would give, also when the thread's copy failed (then copied
    again) or was never used (close() leaves nothing behind)."""
    out = tmp_path / "ci-report"
    spill, entries = _spill(out)
    target = out / "callback.json"
    _write(target, spill, "queued")
    if copy == "failed":
        import threading

        real_pread = os.pread

        def pread(fd: int, n: int, offset: int) -> bytes:
            if threading.current_thread() is not threading.main_thread():
                raise OSError(5, "Input/output error")  # the thread's copy fails
            return real_pread(fd, n, offset)

        monkeypatch.setattr(os, "pread", pread)
    spill.prepare(target)
    assert spill._prepared is not None
    spill._prepared.thread.join()
    assert len(_tmps(out)) == 1
    if copy == "unused":
        spill.close()
        assert _tmps(out) == [] and read_result_file(target)["allResults"] == entries
        return
    settled = _write(target, spill, "delivered")
    spill.close()
    assert settled["allResults"] == entries and settled["outcome"] == "delivered"
    assert _tmps(out) == [] and sorted(p.name for p in out.iterdir()) == ["callback.json"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644 & ~_umask()


def _tmps(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]
