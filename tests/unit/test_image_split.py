"""Split mode files: the generated script and reading log/rc/times back."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ci_report.image.dockerfile import DockerIgnore
from ci_report.image.split import (
    PLAN_SCHEMA,
    RUN_FILES,
    clear_run_files,
    default_workdir,
    load_plan,
    read_run,
    render_script,
    workdir_in_context,
)
from ci_report.image.watch import read_tx_bytes


def test_script_shape() -> None:
    text = render_script(
        executor="/kaniko/executor",
        args=["--context=/w s", "--push-retry=3"],
        timeout=900,
        kill_grace=30,
    )
    assert "set -o pipefail" in text
    assert "timeout -s TERM -k 30 900 /kaniko/executor" in text
    assert "'--context=/w s'" in text
    assert '2>&1 | tee "$dir/kaniko.log"' in text
    assert 'echo "$rc" > "$dir/kaniko.rc"' in text
    assert "/kaniko/executor $pre \\\n" in text and "grep -q -e '--pre-cleanup'" in text


def _plan(tmp: Path, timeout: int = 60) -> tuple[dict, str]:
    plan = {
        "schema": PLAN_SCHEMA,
        "timeoutSeconds": timeout,
        "logFile": "x/kaniko.log",
        "rcFile": "x/kaniko.rc",
        "timesFile": "x/kaniko.times",
        "versionFile": "x/kaniko.version",
    }
    path = tmp / "image-plan.json"
    path.write_text(json.dumps(plan))
    return plan, str(path)


def test_read_run_timeout_kill(tmp_path: Path) -> None:
    _, path = _plan(tmp_path)
    (tmp_path / "kaniko.times").write_text("start 1000\nend 1060 rc 143\n")
    (tmp_path / "kaniko.rc").write_text("143\n")
    (tmp_path / "kaniko.version").write_text("Kaniko version :  v1.24.0\n")
    (tmp_path / "kaniko.log").write_text(
        'time="1970-01-01T00:17:00Z" level=info msg="Pushing image to r.example/a:1"\n'
    )
    run = read_run(load_plan(path), path)
    assert (run.exit_code, run.elapsed, run.deadline_hit) == (143, 60.0, True)
    assert run.log.phase == "push" and run.log.push_started_at == 20.0
    assert run.version == "v1.24.0" and run.warnings


def test_read_run_external_sigterm_and_missing_rc(tmp_path: Path) -> None:
    _, path = _plan(tmp_path)
    (tmp_path / "kaniko.times").write_text("start 1000\nend 1010 rc 143\n")
    run = read_run(load_plan(path), path)
    assert run.exit_code == 143 and not run.deadline_hit  # from the times file
    (tmp_path / "kaniko.times").write_text("start 1000\n")
    run = read_run(load_plan(path), path)
    assert run.exit_code is None and any("kaniko.log" in w for w in run.warnings)


def test_read_run_negative_rc_is_mapped_like_a_shell(tmp_path: Path) -> None:
    # a wrapper that stored Popen's return code: -15 is SIGTERM, i.e. 143 (never exit -15)
    _, path = _plan(tmp_path)
    (tmp_path / "kaniko.times").write_text("start 1000\nend 1060 rc -15\n")
    (tmp_path / "kaniko.rc").write_text("-15\n")
    run = read_run(load_plan(path), path)
    assert (run.exit_code, run.deadline_hit) == (143, True)
    (tmp_path / "kaniko.rc").unlink()
    (tmp_path / "kaniko.times").write_text("start 1000\nend 1010 rc -9\n")
    assert read_run(load_plan(path), path).exit_code == 137


# -- never trust a stale file (split-mode contract) ---------------------------------------


def _stale_plan(tmp: Path) -> tuple[dict, str]:
    plan, path = _plan(tmp)
    plan["createdAt"] = 2_000_000_000.0
    Path(path).write_text(json.dumps(plan))
    return plan, path


def _files(tmp: Path, mtime: float, rc: str = "0") -> None:
    """A finished, successful run's files, all with the given mtime."""
    (tmp / "kaniko.times").write_text(f"start {mtime - 60:.0f}\nend {mtime:.0f} rc {rc}\n")
    (tmp / "kaniko.rc").write_text(rc + "\n")
    (tmp / "kaniko.log").write_text(
        'time="2033-05-18T03:32:00Z" level=info msg="Pushed r.example/a@sha256:' + "a" * 64 + '"\n'
    )
    for name in ("kaniko.times", "kaniko.rc", "kaniko.log"):
        os.utime(tmp / name, (mtime, mtime))


def test_files_older_than_the_plan_are_never_used(tmp_path: Path) -> None:
    _, path = _stale_plan(tmp_path)
    _files(tmp_path, mtime=2_000_000_000.0 - 3600)  # the previous build's
    run = read_run(load_plan(path), path, step_exit=127)
    assert run.never_ran and run.exit_code == 127
    assert run.lines == [] and run.log.digest is None
    assert "predate" in (run.refused or "")
    run = read_run(load_plan(path), path)  # no --step-exit: still not this run's result
    assert run.exit_code is None and run.refused and run.lines == []


def test_fresh_files_are_used_and_an_rc_that_disagrees_is_refused(tmp_path: Path) -> None:
    _, path = _stale_plan(tmp_path)
    _files(tmp_path, mtime=2_000_000_000.0 + 5)
    run = read_run(load_plan(path), path, step_exit=0)
    assert (run.exit_code, run.refused, run.never_ran) == (0, None, False)
    assert run.log.digest == "sha256:" + "a" * 64
    run = read_run(load_plan(path), path, step_exit=1)
    assert run.exit_code == 1 and "says 0 but the kaniko step exited 1" in (run.refused or "")


def test_no_rc_file_then_the_step_exit_decides(tmp_path: Path) -> None:
    _, path = _plan(tmp_path)
    run = read_run(load_plan(path), path, step_exit=127)
    assert run.never_ran and run.exit_code == 127
    run = read_run(load_plan(path), path, step_exit=0)  # 0 without an rc file proves nothing
    assert run.exit_code == 0 and "was not written" in (run.refused or "")
    run = read_run(load_plan(path), path, step_exit=143)
    assert run.exit_code == 143 and not run.refused and not run.never_ran


def test_elapsed_without_an_end_time_comes_from_our_clock(tmp_path: Path) -> None:
    # aborted during the push: Kaniko is silent, so the log's last line says nothing
    _, path = _plan(tmp_path)
    (tmp_path / "kaniko.times").write_text("start 1000\nflags --cleanup --pre-cleanup\n")
    (tmp_path / "kaniko.log").write_text(
        'time="1970-01-01T00:16:50Z" level=info msg="Pushing image to r.example/a:1"\n'
    )
    run = read_run(load_plan(path), path, step_exit=143, now=2500.0)
    assert run.elapsed == 1500.0 and not run.ended
    assert run.flags == ["--cleanup", "--pre-cleanup"]


def test_default_workdir() -> None:
    assert default_workdir({"WORKSPACE_TMP": "/ws/app@tmp"}) == "/ws/app@tmp/ci-report-image"
    assert default_workdir({}) == ".ci-report"
    assert default_workdir({"WORKSPACE_TMP": " "}) == ".ci-report"


def test_workdir_in_context(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    assert workdir_in_context(str(tmp_path / "wd"), ctx, DockerIgnore()) is None
    assert workdir_in_context(str(ctx / ".ci-report"), ctx, DockerIgnore()) == ".ci-report"
    assert workdir_in_context(str(ctx), ctx, DockerIgnore()) == "."
    assert workdir_in_context(str(ctx / ".ci-report"), ctx, DockerIgnore([".ci-report"])) is None
    assert workdir_in_context(str(ctx / ".ci-report"), ctx, DockerIgnore(["*.log"])) == ".ci-report"


def test_clear_run_files(tmp_path: Path) -> None:
    for name in ("kaniko.rc", "kaniko.log", "kaniko.times", "kaniko.version", "keep.txt"):
        (tmp_path / name).write_text("x")
    assert sorted(clear_run_files(tmp_path)) == sorted(RUN_FILES)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


NET_DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop
    lo: 36321288   22240    0    0    0     0          0         0 36321288   22240    0    0
  eth0: 1000 10 0 0 0 0 0 0 5000000 300 0 0 0 0 0 0
  eth1:2000 10 0 0 0 0 0 0 250 3 0 0 0 0 0 0
"""


def test_read_tx_bytes(tmp_path: Path) -> None:
    (tmp_path / "dev").write_text(NET_DEV)
    assert read_tx_bytes(str(tmp_path / "dev")) == 5_000_250  # loopback left out
    assert read_tx_bytes(str(tmp_path / "missing")) is None
    (tmp_path / "dev").write_text(NET_DEV.splitlines()[0] + "\n")
    assert read_tx_bytes(str(tmp_path / "dev")) is None


def test_plan_file_is_typed_and_camel_case(tmp_path: Path) -> None:
    import pytest

    from ci_report.errors import InputError
    from ci_report.image.split import SplitPlan

    plan = SplitPlan(
        timeout_seconds=900,
        script="w/kaniko-run.sh",
        kill_grace_seconds=30,
        destinations=["r.example/a:1"],
        timeout_plan={"expectedPushSeconds": 12.0},
        created_at=1_700_000_000.5,
        added_flags=["--cleanup"],
    )
    wire = plan.to_dict()
    assert all("_" not in k for k in wire), sorted(wire)
    assert {"timeoutSeconds", "killGraceSeconds", "logFile", "createdAt", "addedFlags"} <= set(wire)
    assert SplitPlan.from_dict(json.loads(json.dumps(wire))) == plan
    path = tmp_path / "image-plan.json"
    for bad in ({**wire, "timeoutSeconds": "900"}, {**wire, "schema": "x"}, [wire]):
        path.write_text(json.dumps(bad))
        with pytest.raises(InputError):
            load_plan(str(path))
