"""The diagnosis decision: deadline, signals, final error line, exit code, phase."""

from __future__ import annotations

from ci_report.image.diagnosis import (
    RunFacts,
    diagnose,
    fitting_timeout,
    fmt_duration,
    signal_name,
)

DEST = "registry.example.com/team/app:1.0"
BUILD = [
    "\x1b[36mINFO\x1b[0m[0000] Retrieving image manifest eclipse-temurin:21-jre-alpine",
    "\x1b[36mINFO\x1b[0m[0002] Unpacking rootfs as cmd COPY app.jar /app requires it.",
    "\x1b[36mINFO\x1b[0m[0030] Taking snapshot of files...",
]
PUSHING = [*BUILD, f"\x1b[36mINFO\x1b[0m[0120] Pushing image to {DEST}"]


def facts(lines, **kw) -> RunFacts:
    base = dict(exit_code=143, elapsed=1800.0, timeout=1800.0, lines=lines)
    base.update(kw)
    return RunFacts(**base)


def test_push_timeout_names_the_timeout_that_fits() -> None:
    # 200 MB at 0.5 MB/s = 400 s of push; the push started at 120 s
    d = diagnose(
        facts(
            PUSHING,
            elapsed=420.0,
            timeout=420.0,
            deadline_hit=True,
            estimate={"totalBytes": 200_000_000},
            bandwidth_bps=500_000.0,
        )
    )
    assert (d.outcome, d.code) == ("timed-out", "push-timeout")
    assert fitting_timeout(120, 400) == 900  # 1.5 x 520 + 120 = 900
    assert d.fixes[0].startswith("--timeout 900 would have fitted")
    assert "200 MB at 0.50 MB/s" in d.fixes[0]
    assert any("Pushing image to" in e for e in d.evidence)


def test_push_slower_than_assumed_says_so() -> None:
    d = diagnose(
        facts(
            PUSHING,
            elapsed=1800.0,
            deadline_hit=True,
            estimate={"totalBytes": 200_000_000},
            bandwidth_bps=1_000_000.0,
        )
    )
    assert d.code == "push-timeout"
    assert "less than 0.12 MB/s" in d.fixes[0] and "assumed 1.00 MB/s" in d.fixes[0]


def test_push_timeout_without_estimate_still_gives_a_number() -> None:
    d = diagnose(facts(PUSHING, deadline_hit=True))
    assert d.code == "push-timeout" and d.fixes[0].startswith("--timeout ")


def test_build_timeout_when_no_push_marker() -> None:
    d = diagnose(facts(BUILD, deadline_hit=True))
    assert (d.outcome, d.code) == ("timed-out", "build-timeout")
    assert "snapshot" in d.summary and any("redo" in f for f in d.fixes)


def test_signal_received_is_terminated_whatever_the_exit_code() -> None:
    d = diagnose(facts(PUSHING, elapsed=300.0, signals=["SIGTERM"]))
    assert (d.outcome, d.code) == ("terminated", "terminated")
    assert "forwarded" in d.summary


def test_143_alone_is_not_a_timeout() -> None:
    d = diagnose(facts(PUSHING, elapsed=300.0))
    assert (d.outcome, d.code) == ("terminated", "terminated")
    assert "not by ci-report's deadline" in d.summary


def test_137_after_snapshot_is_oom() -> None:
    d = diagnose(facts(BUILD, exit_code=137, elapsed=40.0))
    assert (d.outcome, d.code) == ("failed", "oom-killed")
    assert any("--compressed-caching=false" in f for f in d.fixes)
    assert d.evidence == [BUILD[-1].replace("\x1b[36m", "").replace("\x1b[0m", "")]


def test_killed_run_ignores_errors_before_the_last_marker() -> None:
    lines = [
        *BUILD[:2],
        "npm ERR! network connection reset by peer",
        "\x1b[36mINFO\x1b[0m[0030] Taking snapshot of full filesystem...",
    ]
    assert diagnose(facts(lines, exit_code=137)).code == "oom-killed"


def test_run_step_failed_shows_the_run_output() -> None:
    lines = [
        *BUILD,
        "\x1b[36mINFO\x1b[0m[0031] Running: [/bin/sh -c ./mvnw package]",
        "[ERROR] COMPILATION ERROR",
        "[ERROR] App.java:[12,8] cannot find symbol",
        "error building image: error building stage: failed to execute command: waiting "
        "for process to exit: exit status 1",
    ]
    d = diagnose(facts(lines, exit_code=1, elapsed=60.0))
    assert d.code == "run-step-failed" and "exit status 1" in d.summary
    assert "[ERROR] App.java:[12,8] cannot find symbol" in d.evidence


def test_run_step_killed_inside_the_build_hints_memory() -> None:
    lines = [
        "error building image: error building stage: failed to execute command: waiting "
        "for process to exit: exit status 137"
    ]
    d = diagnose(facts(lines, exit_code=137, elapsed=60.0))
    assert d.code == "run-step-failed" and any("memory" in f for f in d.fixes)


def test_exit_zero_is_pushed() -> None:
    lines = [
        *PUSHING,
        "\x1b[36mINFO\x1b[0m[0130] Pushed registry.example.com/team/app@sha256:" + "a" * 64,
    ]
    d = diagnose(facts(lines, exit_code=0, elapsed=130.0))
    assert (d.outcome, d.code, d.to_dict()) == ("pushed", None, None)


def test_no_exit_code_is_terminated() -> None:
    assert diagnose(facts(PUSHING, exit_code=None)).code == "terminated"


def test_127_is_executor_missing_and_unknown_otherwise() -> None:
    assert diagnose(facts([], exit_code=127, elapsed=0.1)).code == "executor-missing"
    d = diagnose(facts([*BUILD, "something odd"], exit_code=3, elapsed=5.0))
    assert (d.outcome, d.code) == ("failed", "unknown")


def test_helpers() -> None:
    assert signal_name(143) == "SIGTERM" and signal_name(-9) == "SIGKILL"
    assert signal_name(1) is None
    assert fmt_duration(1800) == "30m00s" and fmt_duration(42) == "42s"
    assert fitting_timeout(0, 10, floor=600) == 600


def test_auth_failure_while_pulling_the_base_names_the_base_registry() -> None:
    lines = [
        'time="2026-11-23T18:13:21Z" level=info msg="Retrieving image manifest '
        'private.example.com/base/jre:21"',
        'time="2026-11-23T18:13:21Z" level=info msg="Retrieving image '
        'private.example.com/base/jre:21 from registry private.example.com"',
        'time="2026-11-23T18:13:22Z" level=error msg="error building image: unable to '
        "complete operation after 0 attempts, last error: GET "
        "https://private.example.com/v2/base/jre/manifests/21: UNAUTHORIZED: "
        'authentication required"',
    ]
    d = diagnose(facts(lines, exit_code=1, elapsed=3.0))
    assert d.code == "registry-auth"
    assert "pulling the base image failed" in d.summary
    assert "private.example.com" in d.summary
    assert any("'auths' entry for private.example.com" in f for f in d.fixes)
    assert not any("destination host" in f for f in d.fixes)


def test_auth_failure_at_the_push_check_is_about_the_destination() -> None:
    lines = [
        "error checking push permissions -- make sure you entered the correct tag name, and "
        "that you are authenticated correctly, and try again: checking push permission for "
        f'"{DEST}": POST https://registry.example.com/v2/team/app/blobs/uploads/: '
        "UNAUTHORIZED: authentication required"
    ]
    d = diagnose(facts(lines, exit_code=1, elapsed=1.0))
    assert d.code == "registry-auth"
    assert "pulling the base image" not in d.summary
    assert any("destination host" in f for f in d.fixes)
