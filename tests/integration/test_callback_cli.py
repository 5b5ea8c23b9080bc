"""The callback command's contract at the edges: dry run, no reports, config errors, JSON logs."""

from __future__ import annotations

import json

import pytest
from fault_server import SAMPLE_COUNTS, Cli, CliResult

pytestmark = pytest.mark.integration


def _payload(res: CliResult) -> dict:
    lines = res.stdout.splitlines()
    assert len(lines) == 1, res
    return json.loads(lines[0])


def _json_lines(text: str) -> list[dict]:
    records = []
    for line in text.splitlines():
        record = json.loads(line)  # every line is one JSON object
        assert isinstance(record, dict), line
        assert {"ts", "level", "message"} <= set(record), line
        records.append(record)
    return records


def test_dry_run_needs_no_url_no_credentials(cli):
    env = cli.env(auth=False, CI_REPORT_URL=None)
    res = cli.run(["callback", "--dry-run", "--output", "-", "--strict"], env=env)
    assert res.returncode == 0, res
    payload = _payload(res)
    assert payload["schema"] == "ci-report/callback/v1"
    assert payload["runId"] == 64
    assert payload["totalCases"] == SAMPLE_COUNTS["total"]
    assert "dry run" in res.stderr
    assert not cli.result_file.exists()  # --dry-run writes only --output
    assert cli.outbox_entries() == []


def test_dry_run_makes_no_network_connection(cli, fault_servers):
    server = fault_servers(None, default="503")
    env = cli.env(CI_REPORT_URL=server.url, CI_REPORT_MAX_ATTEMPTS="1", BUILD_NUMBER="1")
    # an earlier build left a callback in the outbox: a real run would resend it first
    queued = cli.run(["callback", "--strict"], env=env)
    assert queued.returncode == 75, queued
    before = server.connections
    assert before == 1

    out_file = cli.tmp / "payload.json"
    env2 = dict(env, BUILD_NUMBER="2")
    to_stdout = cli.run(["callback", "--dry-run", "--output", "-", "--strict"], env=env2)
    to_file = cli.run(["callback", "--dry-run", "--output", str(out_file)], env=env2)
    for res in (to_stdout, to_file):
        assert res.returncode == 0, res
    assert server.connections == before, "a dry run opened a connection"
    assert json.loads(out_file.read_text()) == _payload(to_stdout)
    assert to_file.stdout == ""
    assert len(cli.outbox_entries()) == 1  # untouched


@pytest.mark.parametrize(
    ("build_result", "status"), [(None, "failed"), ("SUCCESS", "success"), ("FAILURE", "failed")]
)
def test_no_reports_is_never_silent(build_result, status, cli):
    env = cli.env(CI_REPORT_JUNIT=None)  # default discovery in an empty workspace
    args = ["callback", "--dry-run", "--output", "-"]
    if build_result:
        args += ["--build-result", build_result]
    res = cli.run(args, env=env)
    assert res.returncode == 0, res
    payload = _payload(res)
    assert payload["status"] == status
    assert payload["reports"]["files"] == 0
    assert payload["totalCases"] == 0
    assert "no JUnit report found" in res.stderr
    if build_result is None:
        assert "--build-result" in res.stderr


def test_missing_glob_warns(cli):
    env = cli.env(CI_REPORT_JUNIT=None)
    res = cli.run(["callback", "--dry-run", "--junit", "nowhere/**/*.xml"], env=env)
    assert res.returncode == 0, res
    assert "no report matches 'nowhere/**/*.xml'" in res.stderr


@pytest.mark.parametrize(("strict", "code"), [(True, 78), (False, 0)])
def test_config_error_keeps_the_payload(strict, code, cli, receiver):
    env = cli.env(CI_REPORT_URL=None)
    res = cli.run(["callback", *(["--strict"] if strict else [])], env=env)
    assert res.returncode == code, res
    assert "no callback URL configured" in res.stderr
    assert "API_CALLBACK_URL" in res.stderr  # the fix is named
    assert "Traceback" not in res.stderr
    assert res.stdout == ""
    (entry,) = cli.outbox_entries()
    assert entry["url"] is None
    result = cli.result()
    assert result["outcome"] == "queued"
    assert result["deliveryId"] == entry["deliveryId"]
    # a fixed configuration delivers it: flush --url
    flushed = cli.run(["flush", "--strict", "--url", receiver.url], env=env)
    assert flushed.returncode == 0, flushed
    assert cli.outbox_entries() == []
    assert receiver.executions()[0]["applied_count"] == 1


def test_no_credentials_is_a_config_error(cli, receiver):
    env = cli.env(auth=False, CI_REPORT_URL=receiver.url)
    res = cli.run(["callback", "--strict"], env=env)
    assert res.returncode == 78, res
    assert "no authentication configured" in res.stderr
    assert len(cli.outbox_entries()) == 1
    assert receiver.requests() == []


def test_api_callback_url_base_gets_the_path(cli, receiver):
    env = cli.env(CI_REPORT_URL=None, API_CALLBACK_URL=receiver.base_url + "/")
    res = cli.run(["callback", "--strict"], env=env)
    assert res.returncode == 0, res
    assert receiver.executions()[0]["applied_count"] == 1


@pytest.mark.parametrize("where", ["before", "after"])
def test_json_logs_delivered(where, cli, receiver):
    env = cli.env(CI_REPORT_URL=receiver.url)
    opt = ["--log-format", "json"]
    args = [*opt, "callback", "--strict"] if where == "before" else ["callback", "--strict", *opt]
    res = cli.run(args, env=env)
    assert res.returncode == 0, res
    assert res.stdout == ""
    records = _json_lines(res.stderr)
    outcome = [r for r in records if r["level"] == "outcome"]
    assert len(outcome) == 1, records
    assert outcome[0]["outcome"] == "delivered"
    assert outcome[0]["deliveryId"] == cli.result()["deliveryId"]
    assert not any(line.startswith("[ci-report]") for line in res.stderr.splitlines())


def test_json_logs_on_failures_and_dry_run(cli, receiver):
    from fault_server import closed_port

    with closed_port() as port:
        refused = cli.run(
            ["--log-format", "json", "callback", "--strict"],
            env=cli.env(CI_REPORT_URL=f"http://127.0.0.1:{port}/x", CI_REPORT_MAX_ATTEMPTS="2"),
        )
    assert refused.returncode == 75, refused
    assert refused.stdout == ""
    records = _json_lines(refused.stderr)
    assert any(r.get("outcome") == "queued" for r in records), records
    assert any(r["level"] == "info" and "retrying" in r["message"] for r in records)

    other = Cli(cli.tmp / "other")
    no_url = other.run(
        ["callback", "--log-format", "json", "--strict"], env=other.env(CI_REPORT_URL=None)
    )
    assert no_url.returncode == 78, no_url
    assert no_url.stdout == ""
    assert any(r["level"] == "error" for r in _json_lines(no_url.stderr))

    dry = other.run(
        ["callback", "--log-format", "json", "--dry-run", "--output", "-"],
        env=other.env(auth=False, CI_REPORT_URL=None),
    )
    assert dry.returncode == 0, dry
    assert _payload(dry)["totalCases"] == SAMPLE_COUNTS["total"]
    _json_lines(dry.stderr)

    blocker = cli.tmp / "blocker"
    blocker.write_text("x")
    crash = other.run(
        # --output under a regular file: an internal error (a result file that cannot be
        # written is only a warning: it never stops a delivery)
        ["--log-format", "json", "--debug", "callback", "--output", str(blocker / "r.json")],
        env=other.env(CI_REPORT_URL=receiver.url),
    )
    assert crash.returncode == 0, crash  # internal error without --strict: exit 0
    assert crash.stdout == ""
    records = _json_lines(crash.stderr)
    assert any("internal error" in r["message"] for r in records), records


def test_strict_from_env_applies_to_config_errors(cli):
    """Regression: CI_REPORT_STRICT=1 and a broken setting exited 0 (only --strict gave 78)."""
    env = cli.env(CI_REPORT_STRICT="1", CI_REPORT_MAX_RESULTS="lots")
    res = cli.run(["callback"], env=env)
    assert res.returncode == 78, res
    assert "CI_REPORT_MAX_RESULTS" in res.stderr


def test_output_without_dry_run_is_written(cli, receiver):
    """Regression: --output without --dry-run was silently ignored."""
    out = cli.tmp / "payload.json"
    res = cli.run(
        ["callback", "--strict", "--output", str(out)], env=cli.env(CI_REPORT_URL=receiver.url)
    )
    assert res.returncode == 0, res
    assert json.loads(out.read_text())["totalCases"] == SAMPLE_COUNTS["total"]
    assert res.stderr.startswith("[ci-report] callback delivered"), res


def test_no_url_and_no_auth_reported_together(cli):
    env = cli.env(auth=False, CI_REPORT_URL=None)
    res = cli.run(["callback", "--strict"], env=env)
    assert res.returncode == 78, res
    first = res.stderr.splitlines()[0]
    assert first.startswith("[ci-report] callback NOT sent (no callback URL configured)"), res
    assert "no authentication configured" in res.stderr
    assert "JENKINS_SIGNATURE_SECRET" in res.stderr
