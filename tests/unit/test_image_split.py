"""Split mode files: the generated script and reading log/rc/times back."""

from __future__ import annotations

import json
from pathlib import Path

from ci_report.image.split import PLAN_SCHEMA, load_plan, read_run, render_script


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
