"""Trigger logic with a mocked Jenkins: exit codes, parameters, merge, lost answers."""

from __future__ import annotations

import io

import pytest
import requests

from ci_report.console import Console
from ci_report.errors import InputError
from ci_report.platform.jenkins import JenkinsClient
from ci_report.platform.trigger import TriggerOutcome, parse_params, trigger_build

BASE = "https://ci.example/"
JOB = BASE + "job/app/"
FAST = {"poll_interval": 0.001, "poll_max": 0.002, "sleep": lambda s: None}


def _run(requests_mock, **kw):
    stream = io.StringIO()
    outcome = trigger_build(
        JenkinsClient(BASE, "u", "t"), "app", console=Console(stream=stream), **FAST, **kw
    )
    return outcome, stream.getvalue()


def _job(requests_mock, params=()) -> None:
    requests_mock.get(
        JOB + "api/json",
        json={
            "buildable": True,
            "property": [{"parameterDefinitions": [{"name": p} for p in params]}] if params else [],
        },
    )


def test_parse_params() -> None:
    assert parse_params(["A=1", "A=2", "B=x=y", "C="]) == [
        ("A", "1"),
        ("A", "2"),
        ("B", "x=y"),
        ("C", ""),
    ]
    with pytest.raises(InputError):
        parse_params(["novalue"])


@pytest.mark.parametrize(
    ("state", "result", "code"),
    [
        ("finished", "SUCCESS", 0),
        ("finished", "FAILURE", 1),
        ("finished", "UNSTABLE", 6),
        ("finished", "ABORTED", 7),
        ("finished", "NOT_BUILT", 7),
        ("finished", "WEIRD", 3),
        ("started", None, 0),
        ("lost", None, 3),
        ("cancelled", None, 4),
        ("timed-out", None, 5),
    ],
)
def test_exit_codes(state: str, result, code: int) -> None:
    assert TriggerOutcome(job="j", state=state, result=result).exit_code == code


def test_full_flow_with_trigger_id_and_undefined_param(requests_mock) -> None:
    _job(requests_mock, ["CI_REPORT_TRIGGER_ID", "ENV"])
    post = requests_mock.post(
        JOB + "buildWithParameters", status_code=201, headers={"Location": "/queue/item/5/"}
    )
    requests_mock.get(
        BASE + "queue/item/5/api/json",
        [
            {
                "json": {
                    "_class": "hudson.model.Queue$WaitingItem",
                    "why": "In the quiet period. Expires in 4.9 sec",
                }
            },
            {
                "json": {
                    "_class": "hudson.model.Queue$WaitingItem",
                    "why": "In the quiet period. Expires in 2.1 sec",
                }
            },
            {
                "json": {
                    "_class": "hudson.model.Queue$BuildableItem",
                    "why": "Waiting for next available executor",
                    "stuck": True,
                }
            },
            {
                "json": {
                    "_class": "hudson.model.Queue$BuildableItem",
                    "why": "Waiting for next available executor",
                    "stuck": True,
                }
            },
            {"json": {"_class": "hudson.model.Queue$LeftItem", "executable": None}},
            {"json": {"_class": "hudson.model.Queue$LeftItem", "executable": {"number": 17}}},
        ],
    )
    requests_mock.get(
        JOB + "17/api/json",
        [
            {"json": {"building": True, "result": "UNSTABLE", "queueId": 5}},  # not done yet
            {"json": {"building": False, "result": None, "queueId": 5}},
            {
                "json": {
                    "building": False,
                    "result": "UNSTABLE",
                    "duration": 1234,
                    "queueId": 5,
                    "url": "https://root/job/app/17/",
                }
            },
        ],
    )
    outcome, text = _run(requests_mock, params=[("ENV", "x"), ("NOPE", "1")], wait=True)
    assert outcome.result == "UNSTABLE" and outcome.exit_code == 6
    assert outcome.url == "https://root/job/app/17/" and outcome.duration_ms == 1234
    assert f"CI_REPORT_TRIGGER_ID={outcome.trigger_id}" in post.last_request.text
    assert text.count("In the quiet period") == 1  # a countdown is not a change
    assert text.count("is stuck") == 1
    assert "does not define NOPE" in text


def test_read_timeout_without_trigger_id_never_reposts(requests_mock) -> None:
    _job(requests_mock, ["ENV"])
    post = requests_mock.post(JOB + "buildWithParameters", exc=requests.exceptions.ReadTimeout)
    outcome, _ = _run(requests_mock)
    assert outcome.state == "lost" and post.call_count == 1
    assert any("CI_REPORT_TRIGGER_ID" in f for f in outcome.fixes)


def test_read_timeout_with_trigger_id_reposts_when_not_found(requests_mock) -> None:
    _job(requests_mock, ["CI_REPORT_TRIGGER_ID"])
    post = requests_mock.post(
        JOB + "buildWithParameters",
        [
            {"exc": requests.exceptions.ReadTimeout},
            {"status_code": 303, "headers": {"Location": "/queue/item/6/"}},
        ],
    )
    requests_mock.get(BASE + "queue/api/json", json={"items": []})
    requests_mock.get(JOB + "api/json?tree=builds", json={"builds": []})
    requests_mock.get(
        BASE + "queue/item/6/api/json", json={"_class": "x$LeftItem", "executable": {"number": 2}}
    )
    outcome, _ = _run(requests_mock)
    assert post.call_count == 2 and outcome.number == 2 and outcome.queue_id == 6


def test_connect_error_retries(requests_mock) -> None:
    _job(requests_mock)
    requests_mock.post(
        JOB + "build",
        [
            {"exc": requests.exceptions.ConnectTimeout},
            {"status_code": 201, "headers": {"Location": "/queue/item/1/"}},
        ],
    )
    requests_mock.get(BASE + "queue/item/1/api/json", json={"cancelled": True})
    outcome, _ = _run(requests_mock)
    assert outcome.state == "cancelled" and outcome.exit_code == 4


def test_vanished_item_is_lost_after_grace(requests_mock) -> None:
    _job(requests_mock)
    requests_mock.post(JOB + "build", status_code=201, headers={"Location": "/queue/item/1/"})
    requests_mock.get(BASE + "queue/item/1/api/json", status_code=404)
    requests_mock.get(JOB + "api/json?tree=builds", json={"builds": [{"number": 1, "queueId": 0}]})
    outcome, _ = _run(requests_mock, lost_grace=0.0)
    assert outcome.state == "lost" and "vanished" in outcome.message


def test_merged_item_is_never_cancelled(requests_mock) -> None:
    _job(requests_mock)
    requests_mock.post(JOB + "build", status_code=303, headers={"Location": "/queue/item/1/"})
    requests_mock.get(BASE + "queue/item/1/api/json", json={"why": "Waiting"})
    cancel = requests_mock.post(BASE + "queue/cancelItem", status_code=204)
    ticks = iter(range(100))
    outcome, text = _run(
        requests_mock, queue_timeout=3, cancel_on_timeout=True, clock=lambda: float(next(ticks))
    )
    assert outcome.state == "timed-out" and cancel.call_count == 0
    assert "merged with another trigger" in text


def test_disabled_job(requests_mock) -> None:
    """A disabled job is a usage/configuration answer (HTTP 409 semantics) with a fix, and
    nothing is POSTed to it."""
    from ci_report.platform.jenkins import JenkinsHTTPError

    requests_mock.get(JOB + "api/json", json={"buildable": False})
    from ci_report.errors import EXIT_USAGE

    with pytest.raises(JenkinsHTTPError) as info:
        _run(requests_mock)
    assert info.value.message == "job 'app' is disabled or not buildable"
    assert info.value.status == 409 and info.value.exit_code == EXIT_USAGE
    assert info.value.fix and "enable the job" in info.value.fix
    assert not [r for r in requests_mock.request_history if r.method == "POST"]


def test_disabled_job_refused_at_post(requests_mock) -> None:
    """Disabled between the read and the POST: Jenkins' own answer to the build POST is HTTP
    409 ("is not buildable"). The same usage error (exit 2) naming the disabled job, and the
    POST is not re-sent."""
    from ci_report.errors import EXIT_USAGE
    from ci_report.platform.jenkins import JenkinsHTTPError

    _job(requests_mock)
    post = requests_mock.post(JOB + "build", status_code=409, text="app is not buildable")
    with pytest.raises(JenkinsHTTPError) as info:
        _run(requests_mock)
    assert info.value.status == 409 and info.value.exit_code == EXIT_USAGE
    assert info.value.fix == "job 'app' is disabled or not buildable"
    assert post.call_count == 1


def test_401_after_the_trigger_keeps_the_build_and_exits_3(requests_mock) -> None:
    """A token revoked (or an SSO page) mid-wait must not lose which build was started."""
    _job(requests_mock)
    requests_mock.post(JOB + "build", status_code=201, headers={"Location": "/queue/item/7/"})
    requests_mock.get(
        BASE + "queue/item/7/api/json",
        json={"executable": {"number": 12, "url": JOB + "12/"}},
    )
    requests_mock.get(JOB + "12/api/json", status_code=401, text="Invalid password/token")
    outcome, _ = _run(requests_mock, wait=True)
    assert outcome.state == "lost" and outcome.exit_code == 3
    assert (outcome.queue_id, outcome.number) == (7, 12)
    assert "build #12" in outcome.message and "HTTP 401" in outcome.message
    assert any("JENKINS_TOKEN" in f for f in outcome.fixes)
    assert outcome.to_json()["outcome"] == "lost"


def test_interrupted_outcome_says_so(requests_mock) -> None:
    from ci_report.errors import Interrupted
    from ci_report.platform.trigger import Trigger

    _job(requests_mock)
    requests_mock.post(JOB + "build", status_code=201, headers={"Location": "/queue/item/7/"})
    requests_mock.get(BASE + "queue/item/7/api/json", json={"why": "Waiting"})
    requests_mock.post(BASE + "queue/cancelItem", status_code=204)

    def sleep(_: float) -> None:
        raise Interrupted(15)

    runner = Trigger(
        JenkinsClient(BASE, "u", "t"),
        "app",
        console=Console(stream=io.StringIO()),
        poll_interval=0.001,
        sleep=sleep,
    )
    with pytest.raises(Interrupted):
        runner.run()
    assert runner.outcome.state == "interrupted" and runner.outcome.queue_id == 7
    assert runner.outcome.to_json()["outcome"] == "interrupted"
