"""Options generated from the Settings fields, and the README's configuration table checked
against the same fields (one place for env names and defaults)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ci_report.cli.options import default_text, help_text, setting_option, settings_from
from ci_report.config import _FIELDS

README = Path(__file__).resolve().parents[2] / "README.md"


def _command():
    @click.command()
    @setting_option("max_attempts")
    @setting_option("deadline")
    @setting_option("strict")
    @setting_option("junit", "--junit")
    @setting_option("status_style")
    @click.pass_context
    def cmd(ctx: click.Context, **values):
        s = settings_from(ctx, values)
        click.echo(f"{s.max_attempts} {s.deadline} {s.strict} {s.junit} {s.status_style}")
        click.echo(f"{s.sources.get('max_attempts')} {s.sources.get('deadline')}")

    return cmd


def test_help_shows_env_and_default_from_the_field() -> None:
    text = help_text("max_attempts")
    assert "env CI_REPORT_MAX_ATTEMPTS" in text and "default 8" in text
    assert "default 300" in help_text("deadline")  # 300.0 reads as 300
    out = CliRunner().invoke(_command(), ["--help"]).output
    assert "CI_REPORT_MAX_ATTEMPTS" in out and "--max-attempts" in out


def test_flag_beats_env_and_unset_flag_lets_env_through(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CI_REPORT_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("CI_REPORT_DEADLINE", "42")
    result = CliRunner().invoke(
        _command(), ["--max-attempts", "5", "--junit", "a.xml", "--junit", "b.xml"]
    )
    assert result.exit_code == 0, result.output
    first, second = result.output.splitlines()
    assert first == "5 42.0 False ['a.xml', 'b.xml'] default"
    assert second == "flag env CI_REPORT_DEADLINE"


def test_wrong_type_is_a_usage_error() -> None:
    result = CliRunner().invoke(_command(), ["--max-attempts", "many"])
    assert result.exit_code == 2 and "many" in result.output


def test_choices_come_from_the_field() -> None:
    result = CliRunner().invoke(_command(), ["--status-style", "fancy"])
    assert result.exit_code == 2 and "extended" in result.output


def test_secrets_are_never_flags() -> None:
    with pytest.raises(ValueError, match="secret"):
        setting_option("api_key")


def _readme_rows() -> list[tuple[str, str, str]]:
    """(flag cell, env cell, default cell) of the README configuration table."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and not cells[1].startswith("---") and cells[0] != "flag":
            rows.append((cells[0], cells[1], cells[2]))
    return rows


def test_readme_configuration_table_matches_the_settings() -> None:
    """Every env name in the table is a setting's, and every shown default is the field's."""
    by_env = {env: f for f in _FIELDS.values() for env in f.metadata.get("env", ())}
    extra_env = {"REQUESTS_CA_BUNDLE", "CI_REPORT_DEBUG", "CI_REPORT_LOG_FORMAT"}
    rows = _readme_rows()
    assert len(rows) > 20
    checked = 0
    for _flag, env_cell, default_cell in rows:
        envs = re.findall(r"`([A-Z][A-Z0-9_]+)`", env_cell)
        defaults = [d.strip().strip("`") for d in default_cell.split(" / ")]
        for i, env in enumerate(envs):
            if env in extra_env:
                continue
            assert env in by_env, f"README names {env}, which no setting reads"
            shown = default_text(by_env[env])
            if shown is not None and i < len(defaults):
                assert defaults[i].startswith(shown), (env, defaults[i], shown)
                checked += 1
    assert checked >= 10


# -- every command declares its settings through setting_option ---------------------------
# flag-only options that share a setting's name on purpose: they never read the environment
FLAG_ONLY = {
    (
        "trigger",
        "ledger_db",
    ): "--ledger: CI_REPORT_DB must not turn every trigger into a ledger run",
    ("trigger", "run_id"): "--run-id goes with --ledger only; RUN_ID is the callback's",
    ("sync", "run_id"): "the run id of one recovered build, not the environment's RUN_ID",
    ("image-diagnose", "report"): "defaults to the plan's report path, not CI_REPORT_REPORT",
    ("image-watch", "heartbeat"): "the watcher's own: above 0.1 s (no 0 = off), plan-bound",
}


def _commands():
    from ci_report.cli import COMMANDS, cli

    ctx = click.Context(cli)
    return [(name, cli.get_command(ctx, name)) for name in sorted(COMMANDS)]


def test_setting_options_are_generated_and_others_restate_no_env_name() -> None:
    from ci_report.cli.options import SettingOption

    env_names = {e for f in _FIELDS.values() for e in f.metadata.get("env", ())}
    generated = 0
    for name, command in _commands():
        for param in command.params:
            if not isinstance(param, click.Option) or param.name in (
                "debug",
                "log_format",
                "color",
                "config",
            ):
                continue
            if isinstance(param, SettingOption):
                generated += 1
                env = _FIELDS[param.name].metadata["env"][0]
                assert f"env {env}" in (param.help or ""), (name, param.name)
                continue
            assert (name, param.name) in FLAG_ONLY or param.name not in _FIELDS, (
                f"{name} {param.opts[0]}: a setting declared by hand; use setting_option"
            )
            named = [e for e in env_names if re.search(rf"\b{e}\b", param.help or "")]
            assert not named, f"{name} {param.opts[0]} restates {named} in its help"
    assert generated >= 40


def test_help_of_every_command_shows_env_and_default_from_the_fields() -> None:
    from ci_report.cli import cli

    runner = CliRunner()
    out = runner.invoke(cli, ["image-push", "--help"], terminal_width=200).output
    assert "[env CI_REPORT_KILL_GRACE; default 30]" in out
    out = runner.invoke(cli, ["trigger", "--help"], terminal_width=200).output
    assert "[env CI_REPORT_QUEUE_TIMEOUT; default 600]" in out
    out = runner.invoke(cli, ["reconcile", "--help"], terminal_width=200).output
    assert "--interval S" in out and "[env CI_REPORT_RECONCILE_INTERVAL; default 30]" in out
