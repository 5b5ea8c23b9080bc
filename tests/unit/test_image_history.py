"""Push history: EWMA, sample limits, atomic writes, corrupt files, concurrent writers."""

from __future__ import annotations

import io
import json
import multiprocessing
from pathlib import Path

import pytest

from ci_report import console as console_module
from ci_report.console import Console
from ci_report.image.history import PushHistory


@pytest.fixture
def console(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(console_module, "_console", Console(stream=stream, color="never"))
    return stream


def test_empty_history(tmp_path: Path):
    h = PushHistory(tmp_path / "h.json")
    assert h.bandwidth_for("reg.example.com") is None
    assert h.build_seconds_for("reg.example.com") is None


def test_ewma_alpha_0_3(tmp_path: Path):
    h = PushHistory(tmp_path / "sub" / "h.json")
    assert h.record("reg.example.com", 10_000_000, 10.0) == 1_000_000  # first sample as is
    assert h.record("reg.example.com", 10_000_000, 20.0) == pytest.approx(
        0.3 * 500_000 + 0.7 * 1_000_000
    )
    bps, n = h.bandwidth_for("https://reg.example.com/v2/")
    assert bps == pytest.approx(850_000) and n == 2
    assert h.bandwidth_for("other.example.com") is None


def test_small_samples_do_not_move_bandwidth(tmp_path: Path):
    h = PushHistory(tmp_path / "h.json")
    h.record("r.io", 5_000_000, 5.0)
    assert h.record("r.io", 1000, 0.03, build_seconds=40) is None
    assert h.bandwidth_for("r.io") == (1_000_000, 1)
    assert h.build_seconds_for("r.io") == (40, 1)


def test_implausible_build_seconds_are_dropped(tmp_path: Path):
    h = PushHistory(tmp_path / "h.json")
    h.record("r.io", 2_000_000, 1.0, build_seconds=1_790_000_000.0)  # an epoch, not a duration
    h.record("r.io", 2_000_000, 1.0, build_seconds=-5)
    assert h.build_seconds_for("r.io") is None


def test_samples_are_capped_and_build_median(tmp_path: Path):
    h = PushHistory(tmp_path / "h.json", max_samples=3)
    for i, b in enumerate([10, 100, 30, 50]):
        h.record("r.io", 2_000_000, 1.0 + i, build_seconds=b)
    entry = h.entry("r.io")
    assert len(entry["samples"]) == 3 and entry["count"] == 4
    assert h.build_seconds_for("r.io") == (50, 3)


def test_docker_hub_aliases_share_an_entry(tmp_path: Path):
    h = PushHistory(tmp_path / "h.json")
    h.record("index.docker.io", 2_000_000, 1.0)
    assert h.bandwidth_for("docker.io") == (2_000_000, 1)
    assert h.hosts() == ["docker.io"]


@pytest.mark.parametrize(
    "content", ["{not json", "[]", '{"hosts": []}', '{"hosts": {"a": {"bps": "x"}}}']
)
def test_corrupt_file_warns_and_starts_fresh(tmp_path: Path, console, content):
    path = tmp_path / "h.json"
    path.write_text(content)
    h = PushHistory(path)
    assert h.bandwidth_for("r.io") is None
    assert "is corrupt" in console.getvalue() and "starting a fresh one" in console.getvalue()
    h.record("r.io", 3_000_000, 1.0)
    assert json.loads(path.read_text())["hosts"]["r.io"]["bps"] == 3_000_000
    assert console.getvalue().count("is corrupt") == 1  # warned once


def test_write_is_atomic_no_temp_files_left(tmp_path: Path):
    h = PushHistory(tmp_path / "h.json")
    h.record("r.io", 3_000_000, 1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.json", "h.json.lock"]


def test_unwritable_directory_warns_not_raises(tmp_path: Path, console):
    blocker = tmp_path / "file"
    blocker.write_text("")
    h = PushHistory(blocker / "h.json")  # parent is a file: mkdir fails
    assert h.record("r.io", 3_000_000, 1.0) is None
    assert "not updated" in console.getvalue()


def _writer(path: str, host: str, n: int) -> None:
    h = PushHistory(Path(path), max_samples=1000)
    for _ in range(n):
        h.record(host, 2_000_000, 1.0)


def test_concurrent_writers_lose_nothing(tmp_path: Path):
    path = tmp_path / "h.json"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(path), f"r{i}.io", 15)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    h = PushHistory(path)
    assert [h.bandwidth_for(f"r{i}.io")[1] for i in range(4)] == [15, 15, 15, 15]
