"""Split mode end to end: image-plan writes the script, busybox sh runs it with busybox
``timeout`` and the fake executor, image-diagnose explains the result.

Busybox applets (sh, timeout, tee, date, dirname, rm) come first on PATH, as ``/busybox`` does in
the kaniko debug image, so ``timeout`` is busybox's (exit 143 on TERM), not GNU's (124).
"""

from __future__ import annotations

import base64
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ci_report.cli import main

pytestmark = pytest.mark.integration

FAKE = Path(__file__).resolve().parents[1] / "data" / "kaniko" / "fake-executor"
DEST = "127.0.0.1:5999/team/app:1.0"
APPLETS = ("sh", "timeout", "tee", "date", "dirname", "rm", "cat", "grep")


@pytest.fixture(scope="module")
def busybox_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    busybox = shutil.which("busybox")
    if busybox is None:
        if os.environ.get("CI_REPORT_SKIP_BUSYBOX") == "1":
            pytest.skip("busybox missing and CI_REPORT_SKIP_BUSYBOX=1")
        pytest.fail(
            "busybox is missing: apt-get install -y busybox (split-mode tests need it; "
            "CI_REPORT_SKIP_BUSYBOX=1 skips them)"
        )
    out = tmp_path_factory.mktemp("busybox")
    for applet in APPLETS:
        (out / applet).symlink_to(busybox)
    return out


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(os.environ):
        if key.startswith(("CI_REPORT_", "FAKE_KANIKO_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CI_REPORT_HISTORY", str(tmp_path / "history.json"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.delenv("WORKSPACE_TMP", raising=False)
    # the kaniko container's own /kaniko, where the script leaves its reuse marker
    monkeypatch.setenv("CI_REPORT_KANIKO_MARKER", str(tmp_path / "kaniko-fs" / ".ci-report-used"))
    (tmp_path / "kaniko-fs").mkdir()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ctx" / "target").mkdir(parents=True)
    (tmp_path / "ctx" / "target" / "app.jar").write_bytes(os.urandom(1_500_000))
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM scratch\nCOPY target/app.jar /app.jar\n")
    (tmp_path / "dc").mkdir()
    auth = base64.b64encode(b"ci:secret-pass").decode()
    config = {"auths": {"127.0.0.1:5999": {"auth": auth}}}
    (tmp_path / "dc" / "config.json").write_text(json.dumps(config))
    return tmp_path


def plan(
    capsys: pytest.CaptureFixture[str], *extra: str, timeout: str = "60", executor: str = str(FAKE)
) -> tuple[int, dict[str, Any], str]:
    args = [
        "image-plan",
        "--context",
        "ctx",
        "--dockerfile",
        "ctx/Dockerfile",
        "--destination",
        DEST,
        "--executor",
        executor,
        "--timeout",
        timeout,
        "--bandwidth",
        "0.5",
        "--kill-grace",
        "1",
        "--json",
        *extra,
    ]
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return int(exc.value.code or 0), (json.loads(out.out) if out.out.strip() else {}), out.err


def run_script(
    ws: Path, bb: Path, scenario: str, *, wait: bool = True, **env: str
) -> subprocess.Popen[bytes]:
    environ = dict(os.environ, FAKE_KANIKO_SCENARIO=scenario, **env)
    environ["PATH"] = os.pathsep.join([str(bb), str(Path(sys.executable).parent), environ["PATH"]])
    proc = subprocess.Popen(
        [str(bb / "sh"), ".ci-report/kaniko-run.sh"],
        cwd=str(ws),
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    if wait:
        proc.wait(60)
    return proc


def diagnose(
    ws: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, dict[str, Any], str]:
    report = ws / "report.json"
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "image-diagnose",
                "--plan",
                ".ci-report/image-plan.json",
                "--report",
                str(report),
                *extra,
            ]
        )
    return int(exc.value.code or 0), json.loads(report.read_text()), capsys.readouterr().err


LOG_CASES = {
    "oom-killed": ("oom-killed", 137),
    "oom-runtime": ("oom-killed", 2),
    "run-step-failed": ("run-step-failed", 1),
    "registry-auth": ("registry-auth", 1),
    "registry-denied": ("registry-denied", 1),
    "registry-network": ("registry-network", 1),
    "registry-tls": ("registry-tls", 1),
    "base-image-not-found": ("base-image-not-found", 1),
    "rate-limited": ("rate-limited", 1),
    "dockerfile-missing": ("dockerfile-missing", 1),
    "copy-source-missing": ("copy-source-missing", 1),
    "disk-full": ("disk-full", 1),
    "snapshot-timeout": ("snapshot-timeout", 1),
    "push-connection-dropped": ("push-connection-dropped", 1),
    "request-too-large": ("request-too-large", 1),
    "immutable-tag": ("immutable-tag", 1),
    "name-unknown": ("name-unknown", 1),
    "unknown": ("unknown", 1),
}


def test_plan_json_and_script(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, data, _ = plan(capsys, timeout="900")
    assert rc == 0
    assert data["schema"] == "ci-report/image-plan/v1"
    assert data["script"] == ".ci-report/kaniko-run.sh" and data["timeoutSeconds"] == 900
    for key in ("logFile", "rcFile", "timesFile", "report"):
        assert data[key].startswith(".ci-report/")
    assert json.loads((ws / ".ci-report" / "image-plan.json").read_text()) == data
    script = (ws / ".ci-report" / "kaniko-run.sh").read_text()
    assert "set -o pipefail" in script and "timeout -s TERM -k 1 900 " in script


def test_every_log_code(ws: Path, busybox_bin: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert plan(capsys)[0] == 0
    failures = []
    for scenario, (code, exit_code) in sorted(LOG_CASES.items()):
        proc = run_script(ws, busybox_bin, scenario)
        assert proc.returncode == exit_code, scenario  # pipefail kept the executor's code
        rc, rep, _ = diagnose(ws, capsys)
        got = (rc, rep["exitCode"], rep["diagnosis"]["code"])
        if got != (exit_code, exit_code, code):
            failures.append((scenario, got))
    assert failures == []


def test_real_failure_lines_in_split_mode(
    ws: Path, busybox_bin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = runpy.run_path(str(FAKE.parent / "failure_lines.py"))
    assert plan(capsys)[0] == 0
    failures = []
    # one line per (code, stage): each mode once; tests/unit/test_image_failure_lines.py has all
    one_each = {(c[3], c[4]): c for c in real["LINES"]}.values()
    for wrapper, cause, _source, code, _stage in one_each:
        line = real["line_of"](wrapper, cause)
        assert run_script(ws, busybox_bin, "line", FAKE_KANIKO_LINE=line).returncode == 1
        rc, rep, _ = diagnose(ws, capsys, "--step-exit", "1")
        if (rc, rep["diagnosis"]["code"]) != (1, code):
            failures.append((line, rc, rep["diagnosis"]["code"]))
    assert failures == []


def test_success_then_history(
    ws: Path, busybox_bin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plan(capsys)[0] == 0
    assert run_script(ws, busybox_bin, "success", FAKE_KANIKO_PUSH_SECONDS="1.5").returncode == 0
    rc, rep, err = diagnose(ws, capsys)
    assert rc == 0 and rep["outcome"] == "pushed" and rep["digest"].startswith("sha256:")
    assert rep["executorVersion"] == "v1.23.2" and "archived" in err
    assert (ws / "history.json").exists()


def test_busybox_timeout_during_push_is_push_timeout(
    ws: Path, busybox_bin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plan(capsys, timeout="3")[0] == 0
    proc = run_script(ws, busybox_bin, "push-hang")
    assert proc.returncode == 143  # busybox timeout: 143, not GNU's 124
    rc, rep, err = diagnose(ws, capsys)
    assert rc == 143
    assert (rep["outcome"], rep["diagnosis"]["code"]) == ("timed-out", "push-timeout")
    assert rep["diagnosis"]["fixes"][0].startswith("--timeout ")
    assert "image push TIMED OUT [push-timeout]" in err


def test_busybox_timeout_during_build_is_build_timeout(
    ws: Path, busybox_bin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plan(capsys, timeout="2")[0] == 0
    assert run_script(ws, busybox_bin, "build-hang").returncode == 143
    assert diagnose(ws, capsys)[1]["diagnosis"]["code"] == "build-timeout"


def test_jenkins_abort_is_terminated(
    ws: Path, busybox_bin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plan(capsys, timeout="120")[0] == 0
    proc = run_script(ws, busybox_bin, "push-hang", wait=False)
    log = ws / ".ci-report" / "kaniko.log"
    deadline = time.monotonic() + 30
    while "Pushing image to" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)  # what Jenkins does to every process of the step
    proc.wait(30)
    rc, rep, _ = diagnose(ws, capsys)
    assert (rep["outcome"], rep["diagnosis"]["code"]) == ("terminated", "terminated")
    assert rc != 0


def test_executor_missing_in_the_kaniko_container(
    ws: Path, busybox_bin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plan(capsys, executor="/kaniko/executor-not-here")[0] == 0
    assert run_script(ws, busybox_bin, "success").returncode == 127
    rc, rep, _ = diagnose(ws, capsys)
    assert (rc, rep["diagnosis"]["code"]) == (127, "executor-missing")


def test_preflight_codes_and_skip(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ws / "ctx" / "target" / "app.jar").unlink()
    rc, data, err = plan(capsys)
    assert rc == 1 and data == {} and "copy-source-missing" in err
    (ws / "ctx" / "Dockerfile").unlink()
    assert plan(capsys)[0] == 1
    rc, data, _ = plan(capsys, "--skip-if-no-dockerfile")
    assert rc == 0 and data["skipped"] is True
    rc, rep, _ = diagnose(ws, capsys)
    assert rc == 0 and rep["outcome"] == "skipped"


# -- the split-mode contract: stale files, clean-up, watcher, work folder, cap --------------


def test_a_step_that_never_ran_is_never_pushed_from_the_last_build(
    ws: Path, busybox_bin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plan(capsys)[0] == 0
    assert run_script(ws, busybox_bin, "success").returncode == 0  # the previous build
    wd = ws / ".ci-report"
    left = {p.name: p.read_bytes() for p in wd.iterdir() if p.name.startswith("kaniko.")}
    assert {"kaniko.rc", "kaniko.log", "kaniko.times", "kaniko.version"} <= set(left)
    assert plan(capsys)[0] == 0  # this build: image-plan removes the earlier run's files
    assert not any((wd / name).exists() for name in left)
    # ... and a copy restored with its old mtime (a workspace synced back) is not trusted
    old = time.time() - 3600
    for name, data in left.items():
        (wd / name).write_bytes(data)
        os.utime(wd / name, (old, old))
    rc, rep, err = diagnose(ws, capsys, "--step-exit", "127")  # process never started
    assert (rc, rep["outcome"], rep["diagnosis"]["code"]) == (127, "failed", "script-never-ran")
    assert rep["digest"] is None and "image pushed" not in err
    rc, rep, _ = diagnose(ws, capsys)  # without --step-exit: still never "pushed"
    assert (rc, rep["outcome"], rep["diagnosis"]["code"]) == (1, "failed", "stale-result")


def test_an_rc_file_that_disagrees_with_the_step_is_refused(
    ws: Path, busybox_bin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plan(capsys)[0] == 0
    assert run_script(ws, busybox_bin, "success").returncode == 0
    rc, rep, _ = diagnose(ws, capsys, "--step-exit", "0")
    assert (rc, rep["outcome"]) == (0, "pushed")
    rc, rep, err = diagnose(ws, capsys, "--step-exit", "1")
    assert (rc, rep["outcome"], rep["diagnosis"]["code"]) == (1, "failed", "stale-result")
    assert "kaniko.rc says 0 but the kaniko step exited 1" in err


def test_a_reused_kaniko_container_gets_the_clean_up_flags(
    ws: Path, busybox_bin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, data, _ = plan(capsys)
    assert rc == 0 and data["addedFlags"] == ["--cleanup"]
    assert data["preCleanup"]["flag"] == "--pre-cleanup"
    args_file = ws / "args.json"
    assert (
        run_script(ws, busybox_bin, "success", FAKE_KANIKO_ARGS_FILE=str(args_file)).returncode == 0
    )
    first = json.loads(args_file.read_text())
    assert "--cleanup" in first and "--pre-cleanup" not in first
    assert plan(capsys)[0] == 0  # the second imagePush in the same pod
    assert (
        run_script(ws, busybox_bin, "success", FAKE_KANIKO_ARGS_FILE=str(args_file)).returncode == 0
    )
    second = json.loads(args_file.read_text())
    assert second[0] == "--pre-cleanup" and "--cleanup" in second
    rc, _, err = diagnose(ws, capsys, "--step-exit", "0")
    assert rc == 0 and "kaniko flags added: --cleanup --pre-cleanup" in err
    # an executor without --pre-cleanup (Google's kaniko) is never given it
    assert plan(capsys)[0] == 0
    env = {"FAKE_KANIKO_ARGS_FILE": str(args_file), "FAKE_KANIKO_NO_PRE_CLEANUP": "1"}
    assert run_script(ws, busybox_bin, "success", **env).returncode == 0
    assert "--pre-cleanup" not in json.loads(args_file.read_text())


def test_image_watch_prints_heartbeats_during_a_silent_push(
    ws: Path, busybox_bin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plan(capsys)[0] == 0
    proc = run_script(ws, busybox_bin, "success", wait=False, FAKE_KANIKO_PUSH_SECONDS="2.5")
    try:
        with pytest.raises(SystemExit) as exc:
            main(
                [
                    "image-watch",
                    "--plan",
                    ".ci-report/image-plan.json",
                    "--heartbeat",
                    "0.5",
                    "--poll",
                    "0.1",
                ]
            )
    finally:
        proc.wait(60)
    err = capsys.readouterr().err
    assert exc.value.code in (0, None)
    beats = [x for x in err.splitlines() if "still in phase push" in x]
    assert beats, err
    print(beats[0])  # docs/image-push.md quotes one (pytest -s)
    assert all("no output for" in x and "left before the 1m00s timeout" in x for x in beats)
    if Path("/proc/net/dev").exists():
        assert all("uploading" in x and "MB/s" in x for x in beats)
    assert "kaniko step finished (rc 0)" in err.splitlines()[-1]


def test_image_watch_stops_by_itself_after_the_deadline(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plan(capsys, timeout="1")[0] == 0  # the kaniko step never starts
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "image-watch",
                "--plan",
                ".ci-report/image-plan.json",
                "--heartbeat",
                "0.5",
                "--poll",
                "0.1",
                "--grace",
                "0",
            ]
        )
    err = capsys.readouterr().err
    assert exc.value.code in (0, None)
    assert "waiting for the kaniko step to start" in err and "stopped watching" in err


def test_work_folder_default_and_the_context_warning(
    ws: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKSPACE_TMP", str(ws / "ws@tmp"))
    rc, data, err = plan(capsys)
    assert rc == 0 and data["script"] == str(ws / "ws@tmp" / "ci-report-image" / "kaniko-run.sh")
    assert Path(data["plan"]).is_file() and "inside the build context" not in err
    rc, _, err = plan(capsys, "--workdir", "ctx/.ci-report")
    assert rc == 0 and "the work folder ctx/.ci-report is inside the build context" in err
    assert "add '.ci-report' to" in err
    (ws / "ctx" / ".dockerignore").write_text(".ci-report\n")
    rc, _, err = plan(capsys, "--workdir", "ctx/.ci-report")
    assert rc == 0 and "inside the build context" not in err


def test_timeout_cap_bounds_auto(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, data, _ = plan(capsys, "--timeout-cap", "700", "--bandwidth", "0.001", timeout="auto")
    assert rc == 0 and data["timeoutSeconds"] == 700 and data["timeoutCap"] == 700
