"""Outbox.load reads an entry sized by its fstat, and stays bounded: a file over the cap is
refused, one that grew after the fstat is read whole (or refused past the cap)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ci_report.callback import outbox as outbox_module
from ci_report.callback.outbox import BadEntry, Outbox, OutboxEntry


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Outbox, Path, OutboxEntry]:
    box = Outbox(tmp_path / "outbox")
    entry = OutboxEntry(
        delivery_id="msg_" + "ab" * 16,
        body=b'{"runId":7,"results":[' + b'{"caseName":"t"},' * 200 + b"{}]}",
        url="https://platform.example.com/api/jenkins/callback",
        created_at=1_700_000_000.0,
    )
    return box, box.save(entry), entry


def _fstat_reporting(size_of: Any) -> Any:
    """os.fstat whose st_size is ``size_of(real size)``: the file 'grew' after the fstat."""
    real_fstat = os.fstat

    def fstat(fd: int) -> os.stat_result:
        st = real_fstat(fd)
        fields = list(st)
        fields[6] = size_of(st.st_size)  # st_size
        return os.stat_result(fields)

    return fstat


def test_an_entry_loads_whole(saved: tuple[Outbox, Path, OutboxEntry]) -> None:
    box, path, entry = saved
    assert box.load(path).body == entry.body


def test_an_entry_over_the_cap_is_refused(
    saved: tuple[Outbox, Path, OutboxEntry], monkeypatch: pytest.MonkeyPatch
) -> None:
    box, path, _ = saved
    monkeypatch.setattr(outbox_module, "MAX_ENTRY_BYTES", path.stat().st_size - 1)
    with pytest.raises(BadEntry, match="larger than"):
        box.load(path)


def test_an_entry_that_grew_after_the_fstat_is_read_whole(
    saved: tuple[Outbox, Path, OutboxEntry], monkeypatch: pytest.MonkeyPatch
) -> None:
    box, path, entry = saved
    monkeypatch.setattr(outbox_module.os, "fstat", _fstat_reporting(lambda n: n // 3))
    assert box.load(path).body == entry.body


def test_an_entry_that_grew_past_the_cap_is_refused(
    saved: tuple[Outbox, Path, OutboxEntry], monkeypatch: pytest.MonkeyPatch
) -> None:
    box, path, _ = saved
    size = path.stat().st_size
    monkeypatch.setattr(outbox_module, "MAX_ENTRY_BYTES", size - 10)
    monkeypatch.setattr(outbox_module.os, "fstat", _fstat_reporting(lambda n: n // 3))
    with pytest.raises(BadEntry, match="larger than"):
        box.load(path)
