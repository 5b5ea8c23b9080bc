"""ci_report.junit against a corpus of real reports (tests/data/junit-corpus, sources and licences
in its README).

Every labelled file in expected.json is compared on the fields its source states
(null fields are not asserted; ``failures_plus_errors`` where the source merges
the two). Where we differ on purpose the file is in KNOWN_DIFFERENCES with the
reason, and the test checks it still differs, so the list stays honest.
Run with ``-s`` to see the agreement line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import pytest

from ci_report.junit import TestRun, parse_reports

CORPUS = Path(__file__).parents[1] / "data" / "junit-corpus"

pytestmark = pytest.mark.skipif(
    not (CORPUS / "expected.json").is_file(),
    reason=f"JUnit corpus not found at {CORPUS}",
)

MIN_AGREEMENT = 0.95

#: Files we deliberately count differently from their source, and why.
KNOWN_DIFFERENCES: dict[str, str] = {
    "action-junit-report/test_results/junit-web-test/expected.xml": (
        "not well-formed XML: a test template with time=\"<<computed>>\" (raw '<' in an "
        "attribute value); mikepenz's lenient parser reads it, we reject it with a ParseError"
    ),
    "action-junit-report/test_results/junit-web-test/expectedRetries.xml": (
        "same '<<computed>>' template as expected.xml: rejected as not well-formed XML"
    ),
}

#: expected.json gives no whole-file counts for these (expected: null) but its
#: "basis" states the cases: all_cases = [Failure, Skipped, pass].
PARTIAL_EXPECTATIONS: dict[str, dict[str, int]] = {
    "junitparser/tests/data/jenkins.xml": {"tests": 3, "failures": 1, "skipped": 1, "passed": 1},
    "junitparser/tests/data/no_suites_tag.xml": {
        "tests": 3,
        "failures": 1,
        "skipped": 1,
        "passed": 1,
    },
    "junitparser/tests/data/normal.xml": {"tests": 3, "failures": 1, "skipped": 1, "passed": 1},
}


def _load(name: str) -> dict[str, Any]:
    with open(CORPUS / name, encoding="utf-8") as handle:
        return json.load(handle)


def _ours(run: TestRun) -> dict[str, int]:
    return {
        "tests": run.total,
        "failures": run.failed,
        "errors": run.errored,
        "skipped": run.skipped,
        "passed": run.passed,
        "failures_plus_errors": run.failed + run.errored,
    }


def _mismatch(path: str, entry: dict[str, Any]) -> Optional[str]:
    """None when we agree with the entry, else a short description of the difference."""
    run = parse_reports([CORPUS / path])
    expected = entry.get("expected") or PARTIAL_EXPECTATIONS.get(path)
    if expected is None:
        return "no expectation to compare (add it to PARTIAL_EXPECTATIONS)"
    if expected.get("parse_error"):
        if not run.parse_errors or run.total:
            return f"expected a parse error, got {_ours(run)} errors={run.parse_errors}"
        return None
    if run.parse_errors:
        return f"parse error: {run.parse_errors[0].error}"
    ours = _ours(run)
    diffs = [
        f"{key}: ours {ours[key]} != {value}"
        for key, value in expected.items()
        if key in ours and value is not None and ours[key] != value
    ]
    return "; ".join(diffs) or None


def _compare_all() -> tuple[dict[str, Optional[str]], int]:
    expected = _load("expected.json")
    results = {path: _mismatch(path, entry) for path, entry in sorted(expected.items())}
    return results, len(expected)


@pytest.fixture(scope="module")
def comparison() -> tuple[dict[str, Optional[str]], int]:
    return _compare_all()


def test_agreement_with_labelled_corpus(comparison: tuple[dict[str, Optional[str]], int]) -> None:
    results, labelled = comparison
    agree = sum(1 for diff in results.values() if diff is None)
    summary = (
        f"JUnit corpus agreement: {agree} of {labelled} labelled files ({agree / labelled:.1%})"
    )
    print(f"\n{summary}")
    unexplained = {p: d for p, d in results.items() if d is not None and p not in KNOWN_DIFFERENCES}
    assert not unexplained, f"{summary}; differences not in KNOWN_DIFFERENCES: {unexplained}"
    assert agree / labelled >= MIN_AGREEMENT, summary


def test_known_differences_still_differ(comparison: tuple[dict[str, Optional[str]], int]) -> None:
    results, _ = comparison
    stale = [path for path in KNOWN_DIFFERENCES if results.get(path, "absent") is None]
    assert not stale, f"these now agree; drop them from KNOWN_DIFFERENCES: {stale}"
    missing = [path for path in KNOWN_DIFFERENCES if path not in results]
    assert not missing, f"not labelled in expected.json: {missing}"


def test_known_differences_are_the_template_files_we_reject() -> None:
    for path in KNOWN_DIFFERENCES:
        run = parse_reports([CORPUS / path])
        assert run.parse_errors, path
        assert "not well-formed" in run.parse_errors[0].error


def test_every_corpus_file_parses_or_is_rejected_clearly() -> None:
    catalog = _load("catalog.json")
    problems = {}
    for path in sorted(catalog):
        run = parse_reports([CORPUS / path])  # must never raise
        for error in run.parse_errors:
            if not error.error or "unexpected" in error.error or "Traceback" in error.error:
                problems[path] = error.error
    assert not problems, problems


def test_external_entity_probes_fetch_nothing() -> None:
    for name in ("testXxe-oob.xml", "testXxe-xxe.xml"):
        path = CORPUS / "junit-plugin/src/test/resources/hudson/tasks/junit" / name
        run = parse_reports([path])
        assert run.total == 0 and len(run.parse_errors) == 1
