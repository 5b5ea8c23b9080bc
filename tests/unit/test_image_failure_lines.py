"""Real Kaniko failure lines (tests/data/kaniko/failure_lines.py) are diagnosed by their innermost
cause, with the stage (push check, push, pull of the base) in the wording."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest

from ci_report.image.diagnosis import CODES, RunFacts, diagnose
from ci_report.image.kaniko_log import LogState, match_catalogue
from ci_report.image.wrappers import peel

DATA: dict[str, Any] = runpy.run_path(
    str(Path(__file__).resolve().parents[1] / "data" / "kaniko" / "failure_lines.py")
)
LINES = DATA["LINES"]
TOP_LEVEL = ("error checking push permissions", "error pushing image: ", "error building image: ")


def _id(case: tuple[Any, ...]) -> str:
    return f"{case[3]}:{case[2][:40]}"


def test_no_fixture_omits_the_wrapper_kaniko_really_prints() -> None:
    for wrapper, cause, source, code, stage in LINES:
        line = DATA["line_of"](wrapper, cause)
        assert source and code in CODES, cause
        if wrapper is None:
            assert cause in DATA["UNWRAPPED_OK"], f"{cause!r} needs Kaniko's wrapper"
            continue
        assert line.startswith(TOP_LEVEL), line  # the outermost prefix Kaniko prints
        peeled = peel(line)
        assert peeled.cause == cause and peeled.wrappers, line
        assert peeled.stage == stage, line


IDS = [_id(c) for c in LINES]


@pytest.mark.parametrize(("wrapper", "cause", "source", "code", "stage"), LINES, ids=IDS)
def test_real_line_is_diagnosed_by_its_innermost_cause(
    wrapper: str | None, cause: str, source: str, code: str, stage: str | None
) -> None:
    line = DATA["line_of"](wrapper, cause)
    facts = RunFacts(exit_code=1, elapsed=30.0, lines=[line], log=LogState(), mode="direct")
    d = diagnose(facts)
    assert (d.outcome, d.code) == ("failed", code), (line, d.summary)
    words = {"push-check": "checking push access", "push": "pushing the image"}
    if stage == "pull" and code not in ("disk-full",):
        assert d.summary.startswith("pulling the base image failed: "), d.summary
    elif stage in words:
        assert d.summary.startswith(words[stage]), d.summary
    assert line in d.evidence


def test_the_push_check_wrapper_alone_is_not_an_auth_problem() -> None:
    # the bug: every cause behind "creating push check transport" was registry-auth
    transport = [c for c in LINES if c[0] in ("push-check-google", "push-check-fork")]
    codes = {c[3] for c in transport}
    assert {"registry-tls", "registry-network", "registry-auth"} <= codes
    unknown = DATA["WRAPPERS"]["push-check-fork"] + "something nobody has seen"
    assert match_catalogue([unknown]) == []  # an unknown cause is unknown, not "auth"


def test_stage_names_the_host_of_the_push_check() -> None:
    line = DATA["line_of"]("push-check-fork", LINES[1][1])
    d = diagnose(RunFacts(exit_code=1, elapsed=3.0, lines=[line], log=LogState()))
    assert d.summary.startswith("checking push access to registry.example.com failed: ")


def test_peel_is_bounded_and_leaves_unknown_text_alone() -> None:
    assert peel("plain text").cause == "plain text" and peel("plain text").stage is None
    many = "error building stage: " * 50 + "x"
    assert peel(many).cause.startswith("error building stage: ")  # at most 16 wrappers
