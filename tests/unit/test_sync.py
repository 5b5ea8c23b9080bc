"""sync: payloads from Jenkins data, archived result files, batch files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ci_report.callback.payload import canonical_body
from ci_report.errors import InputError
from ci_report.platform.sync import (
    SyncOutcome,
    _from_artifact,
    batch_exit_code,
    payload_from_jenkins,
    read_batch,
)

BUILD = {
    "number": 4,
    "url": "https://ci/job/a/4/",
    "result": "SUCCESS",
    "duration": 9000,
    "builtOn": "agent-7",
}


def test_status_only_never_invents_counts() -> None:
    payload, source, notes = payload_from_jenkins("a", BUILD, None, run_id="12")
    assert source == "status-only"
    assert payload["runId"] == 12 and payload["status"] == "success"
    assert payload["totalCases"] == 0 and payload["results"] == []
    assert payload["reports"]["files"] == 0 and "status only" in payload["reports"]["note"]
    assert payload["build"]["node"] == "agent-7" and payload["durationMs"] == 9000
    assert "status only" in notes[0]


def test_counts_come_from_the_report_even_without_cases() -> None:
    report = {"passCount": 5, "failCount": 2, "skipCount": 0}
    payload, source, notes = payload_from_jenkins(
        "a", {**BUILD, "result": "UNSTABLE"}, report, run_id=None
    )
    assert source == "test-report"
    assert (payload["passedCases"], payload["failedCases"], payload["totalCases"]) == (5, 2, 7)
    assert payload["status"] == "failed" and payload["errorCases"] is None
    assert any("counts only" in n for n in notes)


def test_results_capped_failures_first() -> None:
    cases = [
        {"name": f"t{i}", "className": "c", "status": "PASSED", "duration": 0.1} for i in range(5)
    ]
    cases.append(
        {
            "name": "bad",
            "className": "c",
            "status": "FAILED",
            "duration": 1,
            "errorDetails": "x" * 50,
        }
    )
    report = {
        "passCount": 5,
        "failCount": 1,
        "skipCount": 0,
        "childReports": [{"result": {"suites": [{"cases": cases}]}}],
    }
    payload, _, _ = payload_from_jenkins(
        "a", BUILD, report, run_id=None, max_results=2, max_message=10
    )
    assert payload["resultsTruncated"] is True and len(payload["results"]) == 2
    assert payload["results"][0]["caseName"] == "bad"
    assert payload["results"][0]["errorMessage"] == "x" * 10 + "…"
    assert payload["results"][1]["duration"] == 100


def test_archived_file_roundtrips_to_the_same_bytes() -> None:
    payload = {"runId": 1, "status": "success", "name": "ünï", "results": [{"d": 0.5}]}
    body = canonical_body(payload)
    doc = (
        b'{"schema": "ci-report/callback-result/v1", "deliveryId": "msg_'
        + b"a" * 32
        + b'", "url": "u", "outcome": "queued", "attempts": 3, "payload":'
        + body
        + b"}"
    )
    parsed, delivery_id, url, outcome = _from_artifact(doc)
    assert canonical_body(parsed) == body and delivery_id == "msg_" + "a" * 32
    assert (url, outcome) == ("u", "queued")


@pytest.mark.parametrize(
    "doc",
    [
        b"not json",
        b'{"schema": "other"}',
        b'{"schema": "ci-report/callback-result/v1", "payload": {}}',
        b'{"schema": "ci-report/callback-result/v1", "payload": {}, "deliveryId": "msg_a.b"}',
    ],
)
def test_bad_artifacts_refused(doc: bytes) -> None:
    with pytest.raises(ValueError):
        _from_artifact(doc)


def test_read_batch(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    path.write_text('# c\n\n{"runId": 1, "job": "a/b", "build": 3}\n{"job": "c", "build": "4"}\n')
    entries = read_batch(path)
    assert [(e.job, e.build, e.run_id) for e in entries] == [("a/b", 3, "1"), ("c", 4, None)]
    path.write_text('{"job": "a"}\n')
    with pytest.raises(InputError, match="line 1"):
        read_batch(path)


def test_batch_exit_codes() -> None:
    done = SyncOutcome(job="a", number=1, state="recovered", delivery="delivered")
    gone = SyncOutcome(job="a", number=2, state="not-found")
    failed = SyncOutcome(job="a", number=3, state="recovered", delivery="queued")
    assert batch_exit_code([done, gone]) == 0
    assert batch_exit_code([gone]) == 3 and batch_exit_code([]) == 3
    assert batch_exit_code([done, failed]) == 1
    # the summary is the --json line platforms parse: every key, JSON-serializable, each
    # value from its own field (all distinct, so a dropped, renamed or swapped key shows)
    full = SyncOutcome(
        job="a",
        number=1,
        run_id="64",
        state="recovered",
        source="artifact",
        build_result="UNSTABLE",
        delivery_id="msg_0123456789abcdef",
        url="https://platform.example.com/cb",
        delivery="delivered",
        attempts=2,
        error="HTTP 503 (first attempt)",
        notes=["archived result file used"],
    )
    assert json.loads(json.dumps(full.summary())) == {
        "runId": "64",
        "job": "a",
        "build": 1,
        "state": "recovered",
        "source": "artifact",
        "buildResult": "UNSTABLE",
        "deliveryId": "msg_0123456789abcdef",
        "url": "https://platform.example.com/cb",
        "delivery": "delivered",
        "attempts": 2,
        "error": "HTTP 503 (first attempt)",
        "notes": ["archived result file used"],
    }
    # and the unset ones are there as null, not left out
    assert json.loads(json.dumps(done.summary())) == {
        "runId": None,
        "job": "a",
        "build": 1,
        "state": "recovered",
        "source": None,
        "buildResult": None,
        "deliveryId": None,
        "url": None,
        "delivery": "delivered",
        "attempts": 0,
        "error": None,
        "notes": [],
    }


def test_read_batch_names_the_missing_key(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    path.write_text('{"job": "a"}\n')
    with pytest.raises(InputError) as info:
        read_batch(path)
    assert info.value.cause == "missing 'build'"
    path.write_text("[1]\n")
    with pytest.raises(InputError):
        read_batch(path)


HOSTILE_TOML = 'not-a-setting = 1\nurl = "http://127.0.0.1:9/hostile"\n'


@pytest.fixture
def hostile_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own configuration at its worst: a config file that load_settings
    refuses (an unknown key) in HOME, in ~/.config, in the process's cwd (own file and
    pyproject) and named by CI_REPORT_CONFIG, and CI_REPORT_* variables in the environment.
    A test that builds its settings from ``env={}`` and a tmp cwd is not changed by any of it."""
    home = tmp_path_factory.mktemp("hostile-home")
    cwd = tmp_path_factory.mktemp("hostile-cwd")
    for folder in (home, home / ".config" / "ci-report", cwd):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".ci-report.toml").write_text(HOSTILE_TOML)
        (folder / "config.toml").write_text(HOSTILE_TOML)
    (cwd / "pyproject.toml").write_text("[tool.ci-report]\n" + HOSTILE_TOML)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("CI_REPORT_CONFIG", str(cwd / ".ci-report.toml"))
    monkeypatch.setenv("CI_REPORT_URL", "http://127.0.0.1:9/hostile")
    monkeypatch.setenv("CI_REPORT_MAX_ATTEMPTS", "not a number")
    monkeypatch.chdir(cwd)


def _from_nothing(settings: Any) -> Any:
    """Settings resolved from ``env={}`` and an empty cwd hold every default and name no
    source: one hostile value read from os.environ, the process cwd or HOME shows here."""
    from ci_report.config import Settings

    assert settings.sources == {} and settings.config_file is None
    assert settings == Settings() and settings.url is None
    return settings


@pytest.mark.usefixtures("hostile_home")
def test_jenkins_unreachable_is_never_nothing_to_recover(requests_mock, tmp_path: Path) -> None:
    """Exit 3 tells a platform 'give up on this run'; an unreachable Jenkins must not say it."""
    import requests

    from ci_report.config import load_settings
    from ci_report.platform.jenkins import JenkinsClient
    from ci_report.platform.sync import sync_one

    base = "https://ci.example/"
    client = JenkinsClient(base, "u", "t")
    settings = _from_nothing(load_settings({}, env={}, cwd=tmp_path))
    requests_mock.get(base + "job/a/4/api/json", exc=requests.exceptions.ConnectionError("reset"))
    down = sync_one(client, "a", 4, settings, run_id="64")
    assert down.state == "error" and down.exit_code == 1
    assert down.summary()["runId"] == 64  # the same JSON shape as a recovered build's
    requests_mock.get(base + "job/a/4/api/json", status_code=401, text="Invalid password/token")
    refused = sync_one(client, "a", 4, settings)
    assert refused.exit_code == 2 and "401" in (refused.error or "")
    assert batch_exit_code([refused]) == 1


@pytest.mark.usefixtures("hostile_home")
def test_missing_job_is_not_called_a_missing_build(requests_mock, tmp_path: Path) -> None:
    from ci_report.config import load_settings
    from ci_report.platform.jenkins import JenkinsClient
    from ci_report.platform.sync import sync_build

    base = "https://ci.example/"
    requests_mock.get(base + "job/a/4/api/json", status_code=404)
    requests_mock.get(base + "job/a/api/json", status_code=404)
    requests_mock.get(base + "job/b/9/api/json", status_code=404)
    requests_mock.get(base + "job/b/api/json", json={"buildable": True})
    client = JenkinsClient(base, "u", "t")
    settings = _from_nothing(load_settings({}, env={}, cwd=tmp_path))
    no_job = sync_build(client, "a", 4, settings)
    assert no_job.exit_code == 3 and no_job.error == "no job 'a' (or u cannot see it)"
    no_build = sync_build(client, "b", 9, settings)
    assert no_build.exit_code == 3 and (no_build.error or "").startswith("no build #9 of b")


def _shape(value: object) -> object:
    """The key structure of a payload (dicts by key; the first element stands for a list)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return None


def test_synced_and_agent_payloads_have_the_same_fields() -> None:
    """One payload model: a field the agent's payload gains is in the synced one too (both are
    written by payload.assemble_payload); sync only adds its provenance under ``reports``."""
    from ci_report.callback.payload import build_payload
    from ci_report.jenkins_env import BuildContext
    from ci_report.junit import CaseResult, TestRun

    case = CaseResult(
        name="t",
        classname="c",
        status="failed",
        duration_ms=1000,
        message="boom",
        case_id=None,
        flaky=False,
        file="r.xml",
        suite="S",
    )
    run = TestRun(results=[case], failed=1)
    agent = build_payload(run, BuildContext(job_name="a"), run_id="1", build_result="FAILURE")
    report = {
        "passCount": 0,
        "failCount": 1,
        "skipCount": 0,
        "suites": [
            {
                "cases": [
                    {
                        "name": "t",
                        "className": "c",
                        "status": "FAILED",
                        "duration": 1,
                        "errorDetails": "boom",
                    }
                ]
            }
        ],
    }
    synced, _, _ = payload_from_jenkins("a", {**BUILD, "result": "FAILURE"}, report, run_id="1")
    agent_shape, synced_shape = _shape(agent), _shape(synced)
    assert isinstance(agent_shape, dict) and isinstance(synced_shape, dict)
    extra = set(synced_shape["reports"]) - set(agent_shape["reports"])
    assert extra == {"source", "note"}
    for key in extra:
        del synced_shape["reports"][key]
    assert synced_shape == agent_shape
    assert synced["results"][0] == {**agent["results"][0], "caseId": None}


def _foreign_artifact_mock(requests_mock, base: str) -> None:
    doc = {
        "schema": "ci-report/callback-result/v1",
        "deliveryId": "msg_" + "f" * 32,
        "outcome": "queued",
        "url": "https://elsewhere.example/cb",
        "payload": {"runId": "r-other", "status": "success"},
    }
    requests_mock.get(
        base + "job/a/4/artifact/ci-report/callback.json", content=json.dumps(doc).encode()
    )
    requests_mock.get(base + "job/a/4/testReport/api/json", status_code=404)


def test_a_build_already_read_is_not_read_again_and_a_foreign_file_can_be_ignored(
    requests_mock, tmp_path: Path
) -> None:
    from ci_report.config import load_settings
    from ci_report.platform.jenkins import JenkinsClient
    from ci_report.platform.sync import IGNORE, sync_build

    base = "https://ci.example/"
    _foreign_artifact_mock(requests_mock, base)
    build_json = requests_mock.get(base + "job/a/4/api/json", json={**BUILD, "building": False})
    client, settings = JenkinsClient(base, "u", "t"), load_settings({}, env={}, cwd=tmp_path)
    out = sync_build(
        client, "a", 4, settings, run_id="r-mine", build={**BUILD, "building": False},
        foreign_artifact=IGNORE,
    )  # fmt: skip
    assert build_json.call_count == 0  # handed in: not read a second time
    assert (out.state, out.source, out.ignored_run_id) == ("recovered", "status-only", '"r-other"')
    assert out.payload is not None and out.payload["runId"] == "r-mine"
    assert out.delivery_id != "msg_" + "f" * 32
    # the sync command's default: the same file is refused, nothing to send
    refused = sync_build(client, "a", 4, settings, run_id="r-mine")
    assert build_json.call_count == 1
    assert refused.state == "error" and refused.body is None and "refused" in (refused.error or "")
