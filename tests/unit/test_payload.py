"""The callback payload (design.md 4): canonical bytes, delivery id, run id, status, counts."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import pytest

from ci_report.callback.payload import (
    SCHEMA,
    build_payload,
    canonical_body,
    decide_status,
    make_delivery_id,
    normalize_build_result,
    run_id_value,
)
from ci_report.errors import ConfigError
from ci_report.jenkins_env import BuildContext
from ci_report.junit import CaseResult, ParseError, TestRun

CONTEXT = BuildContext(
    job_name="team/app/main",
    build_number=42,
    build_url="https://jenkins.example.com/job/team/job/app/job/main/42/",
    jenkins_url="https://jenkins.example.com/",
    node="agent-1",
    git_commit="abc123",
    git_branch="main",
)


def case(name: str, status: str, duration: int = 10, **kw: object) -> CaseResult:
    values = dict(
        name=name,
        classname="pkg.Cls",
        status=status,
        duration_ms=duration,
        message=None if status == "passed" else f"{name} {status}",
        case_id=None,
        flaky=False,
        file="r.xml",
        suite="S",
    )
    values.update(kw)
    return CaseResult(**values)  # type: ignore[arg-type]


def small_run() -> TestRun:
    results = [
        case("t_fail", "failed", 120, case_id=7),
        case("t_err", "error", 5),
        case("t_pass", "passed", 30),
        case("t_flaky", "passed", 40, flaky=True),
        case("t_skip", "skipped", 0),
    ]
    return TestRun(
        files=["a.xml", "b.xml"],
        parse_errors=[ParseError("b.xml", "not XML")],
        passed=2,
        failed=1,
        errored=1,
        skipped=1,
        suites_time_ms=1500,
        cases_time_ms=195,
        results=results,
        results_truncated=False,
    )


# -------------------------------------------------------------- canonical bytes


def test_canonical_body_sorted_compact_utf8() -> None:
    body = canonical_body({"b": 1, "a": {"z": [1, 2], "y": "é ✓ 日本"}})
    assert body == '{"a":{"y":"é ✓ 日本","z":[1,2]},"b":1}'.encode()
    assert b"\\u" not in body
    assert json.loads(body) == {"a": {"y": "é ✓ 日本", "z": [1, 2]}, "b": 1}


def test_canonical_body_independent_of_insertion_order() -> None:
    assert canonical_body({"x": 1, "y": 2}) == canonical_body({"y": 2, "x": 1})


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_canonical_body_refuses_nan(bad: float) -> None:
    with pytest.raises(ValueError):
        canonical_body({"durationMs": bad})


# ------------------------------------------------------------------ delivery id


def test_delivery_id_format_and_determinism() -> None:
    body = b'{"a":1}'
    first = make_delivery_id(CONTEXT, body)
    assert re.fullmatch(r"msg_[0-9a-f]{32}", first)
    assert make_delivery_id(CONTEXT, body) == first
    assert make_delivery_id(dataclasses.replace(CONTEXT, node="other"), body) == first


@pytest.mark.parametrize(
    "change",
    [
        {"body": b'{"a":2}'},
        {"context": dataclasses.replace(CONTEXT, job_name="team/app/dev")},
        {"context": dataclasses.replace(CONTEXT, build_number=43)},
        {"context": dataclasses.replace(CONTEXT, jenkins_url="https://other/")},
        {"kind": "sync"},
    ],
)
def test_delivery_id_changes_with_inputs(change: dict) -> None:
    base = make_delivery_id(CONTEXT, b'{"a":1}')
    args = {"context": CONTEXT, "body": b'{"a":1}', "kind": "callback"}
    args.update(change)
    assert make_delivery_id(args["context"], args["body"], args["kind"]) != base


def test_delivery_id_outside_jenkins() -> None:
    assert re.fullmatch(r"msg_[0-9a-f]{32}", make_delivery_id(BuildContext(), b"{}"))


# ----------------------------------------------------------------------- run id


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("64", 64),
        (" 64 ", 64),
        ("007", 7),
        ("run-64", "run-64"),
        ("6.4", "6.4"),
        ("-1", "-1"),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_run_id_value(raw, expected) -> None:
    value = run_id_value(raw)
    assert value == expected
    assert type(value) is type(expected)


def test_run_id_non_ascii_digits_stay_string() -> None:
    # str.isdigit() accepts superscripts; int() refuses them: must not crash
    assert run_id_value("²") == "²"


# ----------------------------------------------------------------------- status


@pytest.mark.parametrize(
    ("result", "failed", "total", "expected"),
    [
        ("SUCCESS", 3, 10, "success"),  # the build result wins over failed cases
        ("UNSTABLE", 0, 10, "failed"),
        ("FAILURE", 0, 10, "failed"),
        ("ABORTED", 0, 0, "failed"),
        ("NOT_BUILT", 0, 0, "failed"),
        ("SUCCESS", 0, 0, "success"),  # no report but a build result: follows the result
        (None, 0, 10, "success"),
        (None, 1, 10, "failed"),
        (None, 0, 0, "failed"),  # neither reports nor a result: never silent success
    ],
)
def test_status_default_style(result, failed, total, expected) -> None:
    assert decide_status(result, failed_cases=failed, total_cases=total) == expected


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ("SUCCESS", "success"),
        ("UNSTABLE", "unstable"),
        ("FAILURE", "failed"),
        ("ABORTED", "aborted"),
        ("NOT_BUILT", "not_built"),
    ],
)
def test_status_extended_style(result, expected) -> None:
    assert decide_status(result, failed_cases=1, total_cases=1, style="extended") == expected


def test_status_extended_without_result_uses_tests() -> None:
    assert decide_status(None, failed_cases=0, total_cases=3, style="extended") == "success"
    assert decide_status(None, failed_cases=2, total_cases=3, style="extended") == "failed"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("success", "SUCCESS"), (" Unstable ", "UNSTABLE"), ("not-built", "NOT_BUILT"), ("", None)],
)
def test_normalize_build_result(raw, expected) -> None:
    assert normalize_build_result(raw) == expected


def test_unknown_build_result_is_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        normalize_build_result("GREEN")
    assert "SUCCESS" in (info.value.fix or "")


# ---------------------------------------------------------------------- payload


def test_build_payload_fields_and_counts() -> None:
    payload = build_payload(small_run(), CONTEXT, run_id="64", build_result=None)
    assert list(payload)[:7] == [
        "runId",
        "status",
        "passedCases",
        "failedCases",
        "skippedCases",
        "durationMs",
        "results",
    ]
    assert payload["runId"] == 64
    assert payload["status"] == "failed"
    assert payload["passedCases"] == 2
    assert payload["failedCases"] == 2  # includes the errored case
    assert payload["errorCases"] == 1
    assert payload["skippedCases"] == 1
    assert payload["totalCases"] == 5
    assert (
        payload["passedCases"] + payload["failedCases"] + payload["skippedCases"]
        == payload["totalCases"]
    )
    assert payload["durationMs"] == 1500  # suites' time first
    assert payload["schema"] == SCHEMA
    assert payload["resultsTruncated"] is False
    assert payload["reports"] == {
        "files": 2,
        "parseErrors": [{"file": "b.xml", "error": "not XML"}],
    }
    assert payload["build"]["jobName"] == "team/app/main"
    assert payload["build"]["buildNumber"] == 42
    assert payload["build"]["result"] is None
    first = payload["results"][0]
    assert first == {
        "caseId": 7,
        "caseName": "t_fail",
        "className": "pkg.Cls",
        "status": "failed",
        "duration": 120,
        "errorMessage": "t_fail failed",
    }
    assert [r["status"] for r in payload["results"]] == [
        "failed",
        "error",
        "passed",
        "passed",
        "skipped",
    ]
    assert payload["results"][3]["flaky"] is True
    assert "flaky" not in payload["results"][2]
    canonical_body(payload)  # serialisable, no NaN


def test_build_payload_build_result_wins() -> None:
    payload = build_payload(small_run(), CONTEXT, run_id="64", build_result="SUCCESS")
    assert payload["status"] == "success"
    assert payload["build"]["result"] == "SUCCESS"
    extended = build_payload(
        small_run(), CONTEXT, run_id="x", build_result="UNSTABLE", status_style="extended"
    )
    assert extended["status"] == "unstable"
    assert extended["runId"] == "x"


def test_build_payload_duration_sources() -> None:
    run = small_run()
    assert (
        build_payload(run, CONTEXT, run_id=None, build_result=None, duration_ms=99)["durationMs"]
        == 99
    )
    run.suites_time_ms = None
    assert build_payload(run, CONTEXT, run_id=None, build_result=None)["durationMs"] == 195


def test_build_payload_empty_run() -> None:
    payload = build_payload(TestRun(), BuildContext(), run_id=None, build_result=None)
    assert payload["runId"] is None
    assert payload["status"] == "failed"
    assert payload["totalCases"] == 0
    assert payload["reports"] == {"files": 0, "parseErrors": []}
    assert payload["durationMs"] == 0
    with_result = build_payload(TestRun(), BuildContext(), run_id=None, build_result="SUCCESS")
    assert with_result["status"] == "success"


def test_build_payload_truncated_flag_and_counts_cover_all() -> None:
    run = small_run()
    run.results = run.results[:2]
    run.results_truncated = True
    payload = build_payload(run, CONTEXT, run_id="1", build_result=None)
    assert payload["resultsTruncated"] is True
    assert len(payload["results"]) == 2
    assert payload["totalCases"] == 5


def test_same_run_same_body_same_id() -> None:
    a = canonical_body(build_payload(small_run(), CONTEXT, run_id="64", build_result="FAILURE"))
    b = canonical_body(build_payload(small_run(), CONTEXT, run_id="64", build_result="FAILURE"))
    assert a == b
    assert make_delivery_id(CONTEXT, a) == make_delivery_id(CONTEXT, b)


_TEXTS = [
    "plain",
    "",
    'quote " \\ /',
    "tab\tnl\ncr\r nul\x00 esc\x1b",
    "é ✓ 日本 \u2028 \U0001f600",
]


def _odd_cases() -> list[CaseResult]:
    ids: list[object] = [None, 0, 42, -7, 10**30, "C-1", "", '"results":[]', True, 1.5]
    out = []
    for i in range(len(_TEXTS) * len(ids) * 2):
        text = _TEXTS[i % len(_TEXTS)]
        out.append(
            CaseResult(
                name=text + str(i),
                classname=None if i % 3 == 0 else text,
                status=("passed", "failed", "error", "skipped")[i % 4],
                duration_ms=(0, 1, 123456789, 10**20, True)[i % 5],
                message=None if i % 2 else text * 3,
                case_id=ids[i % len(ids)],  # type: ignore[arg-type]
                flaky=i % 7 == 0,
                file="f.xml",
                suite="S",
            )
        )
    return out


@pytest.mark.parametrize("count", [0, 1, 999, 1000, 1001, 2500])
def test_build_body_is_canonical_body_of_build_payload(count: int) -> None:
    """The body written straight from the records is byte for byte canonical_body(payload), for
    every field type a record can hold (a bool case id or duration goes through the dict), and
    across the encoding batches; the payload it returns is that payload without results."""
    from ci_report.callback.payload import build_body

    odd = _odd_cases()
    run = TestRun(
        files=['"results":[].xml'],
        parse_errors=[ParseError('a"results":[]', "x")],
        passed=count,
        results=[odd[i % len(odd)] for i in range(count)],
        results_truncated=count > 10,
    )
    context = dataclasses.replace(CONTEXT, job_name='"results":[]', git_branch="é\u2028")
    kwargs: dict[str, object] = dict(run_id='"results":[]', build_result="UNSTABLE")
    payload, body = build_body(run, context, **kwargs)  # type: ignore[arg-type]
    expected = build_payload(run, context, **kwargs)  # type: ignore[arg-type]
    assert body == canonical_body(expected)
    del expected["results"]
    assert payload == expected
