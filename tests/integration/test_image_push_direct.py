"""image-push in direct mode: ci-report supervises the fake executor, a real process.

Every diagnosis code is produced from realistic Kaniko output; the deadline, the SIGKILL
escalation and a SIGTERM to ci-report itself are real signals between real processes.
"""

from __future__ import annotations

import base64
import json
import os
import runpy
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from ci_report.cli import main

pytestmark = pytest.mark.integration

FAKE = Path(__file__).resolve().parents[1] / "data" / "kaniko" / "fake-executor"
DEST = "127.0.0.1:5999/team/app:1.0"
REAL = runpy.run_path(str(FAKE.parent / "failure_lines.py"))


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(os.environ):
        if key.startswith(("CI_REPORT_", "FAKE_KANIKO_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent), prepend=os.pathsep)
    monkeypatch.setenv("CI_REPORT_HISTORY", str(tmp_path / "history.json"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ctx" / "target").mkdir(parents=True)
    (tmp_path / "ctx" / "target" / "app.jar").write_bytes(os.urandom(2_000_000))
    (tmp_path / "ctx" / "Dockerfile").write_text(
        "FROM scratch\nCOPY target/app.jar /app/app.jar\n"
        'ENTRYPOINT ["java","-jar","/app/app.jar"]\n'
    )
    (tmp_path / "dc").mkdir()
    auth = base64.b64encode(b"ci:secret-pass").decode()
    config = {"auths": {"127.0.0.1:5999": {"auth": auth}}}
    (tmp_path / "dc" / "config.json").write_text(json.dumps(config))
    return tmp_path


def push(
    ws: Path,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
    timeout: str = "60",
    scenario: str = "success",
    executor: Path = FAKE,
    **env: str,
) -> tuple[int, dict[str, Any], str]:
    os.environ["FAKE_KANIKO_SCENARIO"] = scenario
    for key, value in env.items():
        os.environ[key] = value
    report = ws / "report.json"
    args = [
        "image-push",
        "--context",
        "ctx",
        "--dockerfile",
        "ctx/Dockerfile",
        "--destination",
        DEST,
        "--executor",
        str(executor),
        "--timeout",
        timeout,
        "--bandwidth",
        "0.5",
        "--report",
        str(report),
        "--kill-grace",
        "1",
        "--heartbeat",
        "1",
        *extra,
    ]
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err
    data = json.loads(report.read_text()) if report.exists() else {}
    return int(exc.value.code or 0), data, err


# scenario of the fake executor -> (code, exit code)
LOG_CASES = {
    "oom-killed": ("oom-killed", 137),
    "oom-runtime": ("oom-killed", 2),
    "run-step-failed": ("run-step-failed", 1),
    "registry-auth": ("registry-auth", 1),
    "registry-denied": ("registry-denied", 1),
    "registry-network": ("registry-network", 1),
    "registry-tls": ("registry-tls", 1),
    "registry-http": ("registry-tls", 1),
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


@pytest.mark.parametrize("scenario", sorted(LOG_CASES))
def test_log_scenarios(ws: Path, capsys: pytest.CaptureFixture[str], scenario: str) -> None:
    code, exit_code = LOG_CASES[scenario]
    rc, rep, err = push(ws, capsys, scenario=scenario)
    assert rc == exit_code, err
    assert rep["exitCode"] == exit_code and rep["outcome"] == "failed"
    assert rep["diagnosis"]["code"] == code, err
    assert rep["diagnosis"]["evidence"] and rep["diagnosis"]["fixes"]
    assert f"image push FAILED [{code}]" in err


def test_real_failure_lines_in_direct_mode(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # every real line of tests/data/kaniko/failure_lines.py, printed by the executor as Kaniko
    # prints its final error, with its wrappers
    failures = []
    # one line per (code, stage): each mode once; tests/unit/test_image_failure_lines.py has all
    one_each = {(c[3], c[4]): c for c in REAL["LINES"]}.values()
    for wrapper, cause, _source, code, _stage in one_each:
        line = REAL["line_of"](wrapper, cause)
        rc, rep, _ = push(ws, capsys, scenario="line", FAKE_KANIKO_LINE=line)
        if (rc, rep["diagnosis"]["code"]) != (1, code):
            failures.append((line, rc, rep["diagnosis"]["code"]))
    assert failures == []


SECRETS = {
    "JENKINS_API_KEY": "key-must-not-reach-kaniko",
    "JENKINS_JWT_SECRET": "jwt-must-not-reach-kaniko",
    "JENKINS_SIGNATURE_SECRET": "whsec_bXVzdC1ub3QtcmVhY2gta2FuaWtv",
    "JENKINS_TOKEN": "token-must-not-reach-kaniko",
}


def test_the_executor_never_sees_the_callback_secrets(
    ws: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # issue 9 finding 11: a RUN step could read them from the executor's environment
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KEEP_ME", "1")
    env_file = ws / "env.json"
    rc, _, _ = push(ws, capsys, FAKE_KANIKO_ENV_FILE=str(env_file))
    seen = json.loads(env_file.read_text())
    assert rc == 0 and seen["KEEP_ME"] == "1" and "PATH" in seen
    assert not set(SECRETS) & set(seen)
    assert not any(v in json.dumps(seen) for v in SECRETS.values())


def test_docker_mode_container_env_has_no_secrets(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ci_report.image.docker_mode import container_spec

    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    spec = container_spec(
        image="ghcr.io/osscontainertools/kaniko:v1.28.3",
        context=ws / "ctx",
        dockerfile=ws / "ctx" / "Dockerfile",
        destinations=[DEST],
        extra_args=[],
        docker_config=ws / "dc",
    )
    assert spec["environment"] == {"DOCKER_CONFIG": "/kaniko/.docker"}
    assert not any(v in json.dumps(spec) for v in SECRETS.values())


def test_color_log_format_is_understood(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, rep, _ = push(ws, capsys, "--", "--log-format=color", scenario="oom-killed")
    assert (rc, rep["diagnosis"]["code"], rep["phase"]) == (137, "oom-killed", "snapshot")


def test_success_records_history_and_passes_flags(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args_file = ws / "args.json"
    rc, rep, err = push(
        ws,
        capsys,
        "--",
        "--cache=false",
        scenario="success",
        FAKE_KANIKO_PUSH_SECONDS="1.0",
        FAKE_KANIKO_ARGS_FILE=str(args_file),
    )
    assert rc == 0, err
    assert rep["outcome"] == "pushed" and rep["diagnosis"] is None
    assert rep["digest"] == "sha256:" + "3f4e1c2b" * 8
    assert rep["pushSeconds"] >= 1.0
    argv = json.loads(args_file.read_text())
    assert argv[:3] == [
        f"--context={ws / 'ctx'}",
        f"--dockerfile={ws / 'ctx' / 'Dockerfile'}",
        f"--destination={DEST}",
    ]
    assert "--log-format=text" in argv and "--push-retry=3" in argv and "--cache=false" in argv
    history = json.loads((ws / "history.json").read_text())
    assert history["hosts"]["127.0.0.1:5999"]["samples"][0]["bytes"] > 0
    assert "phase: push (push)" in err


def test_user_flags_are_not_doubled(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args_file = ws / "args.json"
    push(
        ws,
        capsys,
        "--",
        "--push-retry=5",
        "--log-format=json",
        FAKE_KANIKO_ARGS_FILE=str(args_file),
    )
    argv = json.loads(args_file.read_text())
    assert "--push-retry=3" not in argv and "--log-format=text" not in argv


def test_push_timeout_names_the_timeout_that_fits(
    ws: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ci_report.image import estimate

    def fixed(**_kw: Any) -> Any:  # the registry part is tested against a real registry elsewhere
        return estimate.Estimate(
            total_bytes=200_000_000,
            parts=[],
            base_image=None,
            base_bytes_total=0,
            base_bytes_present=0,
            reachable=True,
            notes=[],
            pull_bytes=0,
        )

    monkeypatch.setattr(estimate, "estimate_push", fixed)
    rc, rep, err = push(ws, capsys, timeout="2", scenario="push-hang")
    assert rc == 143, err
    assert (rep["outcome"], rep["diagnosis"]["code"], rep["phase"]) == (
        "timed-out",
        "push-timeout",
        "push",
    )
    fix = rep["diagnosis"]["fixes"][0]
    assert fix.startswith("--timeout 720 would have fitted"), fix
    assert "200 MB at 0.50 MB/s = 6m40s of push" in fix
    assert "still in phase push" in err  # heartbeat while Kaniko is silent


def test_deadline_escalates_to_sigkill(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    signals = ws / "signals.txt"
    rc, rep, err = push(
        ws,
        capsys,
        timeout="2",
        scenario="push-hang",
        FAKE_KANIKO_IGNORE_TERM="1",
        FAKE_KANIKO_SIGNAL_FILE=str(signals),
    )
    assert rc == 137 and rep["diagnosis"]["code"] == "push-timeout"  # 137 alone never decides
    assert signals.read_text().split() == ["SIGTERM"]
    assert "sending SIGKILL" in err


def test_build_timeout(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, rep, _ = push(ws, capsys, timeout="2", scenario="build-hang")
    assert rc == 143
    assert (rep["outcome"], rep["diagnosis"]["code"]) == ("timed-out", "build-timeout")
    assert rep["phase"] == "instruction"


def test_preflight_stops_before_the_executor(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args_file = ws / "args.json"
    os.environ["FAKE_KANIKO_ARGS_FILE"] = str(args_file)
    (ws / "ctx" / "target" / "app.jar").unlink()
    rc, rep, err = push(ws, capsys)
    assert rc == 1 and rep["diagnosis"]["code"] == "copy-source-missing"
    assert "Dockerfile:2: COPY target/app.jar /app/app.jar" in err
    (ws / "ctx" / "Dockerfile").unlink()
    rc, rep, _ = push(ws, capsys)
    assert rc == 1 and rep["diagnosis"]["code"] == "dockerfile-missing"
    rc, rep, _ = push(ws, capsys, "--skip-if-no-dockerfile")
    assert rc == 0 and rep["outcome"] == "skipped" and rep["diagnosis"] is None
    assert not args_file.exists()


def test_executor_missing(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, rep, _ = push(ws, capsys, executor=ws / "no" / "executor")
    assert rc == 1 and rep["diagnosis"]["code"] == "executor-missing"
    broken = ws / "broken-executor"  # present, but its interpreter is not
    broken.write_text("#!/nonexistent/interpreter\n")
    broken.chmod(0o755)
    rc, rep, _ = push(ws, capsys, executor=broken)
    assert rc == 127 and rep["diagnosis"]["code"] == "executor-missing"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_sigterm_to_ci_report_is_forwarded(ws: Path, sig: signal.Signals) -> None:
    # SIGHUP (a lost agent connection) is handled like SIGTERM (ci_report.signals)
    signals, pid_file = ws / "signals.txt", ws / "executor.pid"
    env = dict(
        os.environ,
        FAKE_KANIKO_SCENARIO="push-hang",
        FAKE_KANIKO_SIGNAL_FILE=str(signals),
        FAKE_KANIKO_PID_FILE=str(pid_file),
        PYTHONUNBUFFERED="1",
    )
    report = ws / "report.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ci_report",
            "image-push",
            "--context",
            "ctx",
            "--destination",
            DEST,
            "--executor",
            str(FAKE),
            "--timeout",
            "300",
            "--report",
            str(report),
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(ws),
    )
    seen = threading.Event()
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "Pushing image to" in line:
                seen.set()

    threading.Thread(target=read, daemon=True).start()
    assert seen.wait(30), "".join(lines)
    proc.send_signal(sig)
    rc = proc.wait(30)
    text = "".join(lines)
    assert rc == 143, text  # the executor's own exit after our SIGTERM
    rep = json.loads(report.read_text())
    assert (rep["outcome"], rep["diagnosis"]["code"]) == ("terminated", "terminated")
    assert rep["signals"] == [sig.name]
    assert signals.read_text().split() == ["SIGTERM"]  # the executor got it from us
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


@pytest.mark.parametrize(
    "flags, says",
    [
        (("--bandwidth", "-1"), "--bandwidth -1 must be a positive number of MB/s"),
        (("--heartbeat", "-1"), "--heartbeat -1 must be 0 (off) or more seconds"),
        (("--kill-grace", "-5"), "--kill-grace -5 must be 0 or more seconds"),
    ],
)
def test_bad_flag_values_stop_with_exit_1(
    ws: Path, capsys: pytest.CaptureFixture[str], flags: tuple[str, ...], says: str
) -> None:
    # docs/design.md section 3: image-push exits 1 when it stops before the executor (not 78)
    args_file = ws / "args.json"
    rc, _, err = push(ws, capsys, *flags, FAKE_KANIKO_ARGS_FILE=str(args_file))
    assert rc == 1 and says in err, err
    assert not args_file.exists()
    rc, _, err = push(ws, capsys, timeout="abc")
    assert rc == 1 and "neither 'auto' nor seconds" in err
    assert "preflight passed" not in err  # checked before preflight and the estimate
