"""junitparser is the oracle of ci_report.junit's case semantics (it left the hot path).

The parser reads each ``<testcase>`` element directly; here the same parse runs a second time
with every element read through junitparser's ``xunit2.TestCase`` / result wrappers instead (what
the parser did before), on every file of the corpus, and the two must agree on the counts and on
every case (status, message, duration, ids, flaky, attempts, file and suite).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Optional

import pytest

from ci_report import junit
from ci_report.junit import CaseResult, TestRun, parse_reports

CORPUS = Path(__file__).parents[1] / "data" / "junit-corpus"
FILES = sorted(CORPUS.rglob("*.xml"))

pytestmark = pytest.mark.skipif(not FILES, reason=f"JUnit corpus not found at {CORPUS}")


def _junitparser() -> Any:
    """junitparser on xml.etree (it picks lxml when installed; our elements are stdlib ones)."""
    hidden = "lxml" not in sys.modules
    if hidden:
        sys.modules["lxml"] = None  # type: ignore[assignment]
    try:
        import junitparser
        from junitparser import xunit2
    finally:
        if hidden:
            del sys.modules["lxml"]
    return junitparser, xunit2


class OracleSemantics(junit._Semantics):
    """Every case element read through junitparser (the pre-change implementation)."""

    def __init__(self, max_message: int, case_map: Optional[Any]) -> None:
        super().__init__(max_message, case_map)
        jp, x2 = _junitparser()
        self.classes = {
            cls._tag: (cls, kind)
            for cls, kind in (
                (jp.Error, "error"),
                (jp.Failure, "failure"),
                (jp.Skipped, "skipped"),
                (x2.FlakyFailure, "flaky"),
                (x2.FlakyError, "flaky"),
                (x2.RerunFailure, "rerun-failure"),
                (x2.RerunError, "rerun-error"),
            )
        }
        self.test_case = x2.TestCase

    def case(self, elem: Any, file: str, suite: Optional[str]) -> CaseResult:
        tc = self.test_case.fromelem(elem)
        first: dict[str, Any] = {}
        for child in elem:
            known = self.classes.get(child.tag)
            if known is not None and known[1] not in first:
                first[known[1]] = known[0].fromelem(child)
        status, result = self._status(elem, first)
        message: Optional[str] = None
        if result is not None:
            text = (result.message or "").strip()
            total = None
            if not text:
                text = (result.text or "").strip()
                textlen = result._elem.get(junit._TEXTLEN)
                total = int(textlen) if textlen else None
            message = junit.truncate(text, self.max_message, total) if text else None
        name = tc.name or ""
        classname = tc.classname or None
        return CaseResult(
            name=name,
            classname=classname,
            status=status,
            duration_ms=junit._to_ms(junit.parse_seconds(elem.get("time"))),
            message=message,
            case_id=self._case_id(elem, classname, name),
            flaky=status == "passed" and "flaky" in first,
            file=file,
            suite=suite,
        )


def parse_all(monkeypatch: pytest.MonkeyPatch, oracle: bool) -> tuple[TestRun, list[CaseResult]]:
    cases: list[CaseResult] = []
    with monkeypatch.context() as patch:
        if oracle:
            patch.setattr(junit, "_Semantics", OracleSemantics)
        run = parse_reports(FILES, max_message=500, on_case=cases.append)
    return run, cases


def counts(run: TestRun) -> dict[str, Any]:
    return {
        f: getattr(run, f)
        for f in ("passed", "failed", "errored", "skipped", "flaky", "reruns", "cases_time_ms")
    } | {"errors": [(e.file, e.error) for e in run.parse_errors]}


def test_corpus_case_by_case_as_junitparser_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    ours, our_cases = parse_all(monkeypatch, oracle=False)
    oracle, oracle_cases = parse_all(monkeypatch, oracle=True)
    assert len(FILES) >= 200 and ours.total > 1000  # the whole corpus, not a sample
    assert counts(ours) == counts(oracle)
    assert len(our_cases) == len(oracle_cases) == ours.total
    for mine, theirs in zip(our_cases, oracle_cases):
        assert dataclasses.asdict(mine) == dataclasses.asdict(theirs), mine.file
    # the corpus exercises every result kind the semantics distinguish
    statuses = {c.status for c in our_cases}
    assert statuses == {"passed", "failed", "error", "skipped"}
    assert any(c.flaky for c in our_cases) and any(c.message for c in our_cases)


def test_junitparser_is_not_imported_by_a_parse() -> None:
    import subprocess

    code = (
        "import sys; from ci_report.junit import parse_reports; "
        f"run = parse_reports([{str(FILES[0])!r}]); "
        "print('junitparser' in sys.modules, 'importlib.metadata' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
