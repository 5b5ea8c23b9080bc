"""cli.common.run: errors become messages and exit codes; tracebacks only with --debug."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from ci_report.cli import cli
from ci_report.cli.common import global_options, global_options_of, run
from ci_report.errors import EXIT_SOFTWARE, ConfigError

pytestmark = pytest.mark.usefixtures("clean_env", "restore_console")


def make_group(action, **run_kwargs) -> click.Group:
    @click.group()
    @global_options
    def group() -> None:
        pass

    @group.command()
    @global_options
    @click.pass_context
    def tiny(ctx: click.Context) -> None:
        run(ctx, action, signals=False, **run_kwargs)

    return group


def invoke(group: click.Group, *args: str):
    return CliRunner().invoke(group, list(args), catch_exceptions=False)


def boom(console) -> int:
    raise RuntimeError("boom happened near https://user:hunter2-password@host/x")


def test_internal_error_no_traceback_without_debug() -> None:
    result = invoke(make_group(boom), "tiny")
    assert result.exit_code == EXIT_SOFTWARE
    assert "Traceback" not in result.output
    assert "[ci-report] internal error in ci-report: RuntimeError" in result.stderr
    assert "cause: boom happened" in result.stderr
    assert "rerun with --debug" in result.stderr
    assert "hunter2-password" not in result.output  # redacted
    assert result.stdout == ""  # diagnostics go to stderr only


@pytest.mark.parametrize("code", [0, 70, 3])
def test_internal_error_exits_with_configured_code(code: int) -> None:
    assert invoke(make_group(boom, internal_error_code=code), "tiny").exit_code == code
    callable_code = make_group(boom, internal_error_code=lambda: code + 1)
    assert invoke(callable_code, "tiny").exit_code == code + 1


@pytest.mark.parametrize("args", [("--debug", "tiny"), ("tiny", "--debug")])
def test_debug_shows_traceback_before_or_after_command(args) -> None:
    result = invoke(make_group(boom), *args)
    assert result.exit_code == EXIT_SOFTWARE
    assert "Traceback" in result.stderr
    assert "RuntimeError" in result.stderr
    assert "hunter2-password" not in result.output


def test_debug_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_REPORT_DEBUG", "1")
    assert "Traceback" in invoke(make_group(boom), "tiny").stderr


def test_ci_report_error_message_cause_fix_and_exit_code() -> None:
    def action(console) -> int:
        raise ConfigError("no callback URL configured", cause="unset", fix="set API_CALLBACK_URL")

    result = invoke(make_group(action), "tiny")
    assert result.exit_code == 78
    assert result.stderr.splitlines() == [
        "[ci-report] no callback URL configured",
        "[ci-report]   cause: unset",
        "[ci-report]   fix: set API_CALLBACK_URL",
    ]
    remapped = invoke(make_group(action, error_code=lambda err: 0), "tiny")
    assert remapped.exit_code == 0


def test_action_exit_code_passed_through() -> None:
    def action(console) -> int:
        console.outcome("fine")
        return 6

    result = invoke(make_group(action), "tiny")
    assert result.exit_code == 6
    assert result.stderr == "[ci-report] fine\n"


@pytest.mark.parametrize("args", [("--log-format", "json", "tiny"), ("tiny", "--log-format=json")])
def test_json_log_format(args) -> None:
    result = invoke(make_group(boom), *args)
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert records[0]["level"] == "error"
    assert records[0]["message"] == "internal error in ci-report: RuntimeError"
    assert {r.get("detail") for r in records[1:]} == {"cause", "fix"}


def test_global_options_recorded_on_root() -> None:
    seen = {}

    def action(console) -> int:
        ctx = click.get_current_context()
        seen["opts"] = global_options_of(ctx)
        return 0

    invoke(make_group(action), "--log-format", "json", "tiny", "--color", "never")
    assert seen["opts"].log_format == "json"
    assert seen["opts"].color == "never"
    assert seen["opts"].debug is False


def test_broken_pipe_is_quiet() -> None:
    def action(console) -> int:
        raise BrokenPipeError()

    result = invoke(make_group(action), "tiny")
    assert result.exit_code == 0
    assert "Traceback" not in result.output


# ------------------------------------------------- the real callback command


@pytest.fixture
def callback_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKSPACE", str(tmp_path))
    monkeypatch.setenv("CI_REPORT_OUTBOX", str(tmp_path / "outbox"))
    return tmp_path


@pytest.mark.parametrize(("strict", "expected"), [((), 0), (("--strict",), 70)])
def test_callback_internal_error_exit(monkeypatch, callback_env, strict, expected) -> None:
    import ci_report.callback.service as service

    def explode(*args, **kwargs):
        raise KeyError("unexpected")

    monkeypatch.setattr(service, "run_callback", explode)
    result = CliRunner().invoke(cli, ["callback", *strict], catch_exceptions=False)
    assert result.exit_code == expected
    assert "Traceback" not in result.output
    assert "internal error in ci-report: KeyError" in result.stderr


@pytest.mark.parametrize(("strict", "expected"), [((), 0), (("--strict",), 78)])
def test_callback_config_error_exit(callback_env, strict, expected) -> None:
    (callback_env / "r.xml").write_text('<testsuite><testcase name="a"/></testsuite>')
    result = CliRunner().invoke(
        cli, ["callback", "--junit", "r.xml", "--run-id", "1", *strict], catch_exceptions=False
    )
    assert result.exit_code == expected
    assert "no callback URL configured" in result.stderr
    assert "Traceback" not in result.output
    assert list((callback_env / "outbox").glob("msg_*.json"))  # the payload is kept


@pytest.mark.parametrize(
    ("flag", "env", "on"),
    [
        (None, "1", True),
        (None, "true", True),
        (None, "", False),
        (None, "0", False),
        (True, "", True),
    ],
)
def test_strict_switch_reads_env_before_settings(flag, env, on, monkeypatch) -> None:
    """Regression: CI_REPORT_STRICT=1 with a broken config exited 0 instead of 78 (strictness
    was only known once the settings had loaded)."""
    from ci_report.cli.common import StrictSwitch

    monkeypatch.setenv("CI_REPORT_STRICT", env)
    assert StrictSwitch.from_flag_or_env(flag).on is on
