"""JUnit semantics of ci_report.junit, one rule per test, with small inline reports."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from ci_report.junit import (
    DEFAULT_PATTERNS,
    CaseResult,
    TestRun,
    discover_reports,
    load_case_map,
    parse_reports,
    parse_seconds,
    truncate,
)


def parse(tmp_path: Path, xml: str | bytes, name: str = "r.xml", **kwargs: Any) -> TestRun:
    path = tmp_path / name
    path.write_bytes(xml.encode() if isinstance(xml, str) else xml)
    return parse_reports([path], **kwargs)


def counts(run: TestRun) -> tuple[int, int, int, int]:
    return run.passed, run.failed, run.errored, run.skipped


def by_name(run: TestRun) -> dict[str, CaseResult]:
    return {c.name: c for c in run.results}


# ------------------------------------------------------------------ structure


def test_testsuites_root_and_basic_statuses(tmp_path: Path) -> None:
    run = parse(
        tmp_path,
        """<?xml version="1.0"?>
        <testsuites><testsuite name="S" time="2.5">
          <testcase classname="C" name="ok" time="0.5"/>
          <testcase classname="C" name="bad" time="1">
            <failure message="boom">trace</failure></testcase>
          <testcase classname="C" name="err"><error type="E">kaput</error></testcase>
          <testcase classname="C" name="skip"><skipped message="later"/></testcase>
        </testsuite></testsuites>""",
    )
    assert counts(run) == (1, 1, 1, 1)
    assert run.total == 4
    cases = by_name(run)
    assert cases["bad"].status == "failed" and cases["bad"].message == "boom"
    assert cases["err"].status == "error" and cases["err"].message == "kaput"
    assert cases["skip"].status == "skipped" and cases["skip"].message == "later"
    assert cases["ok"].duration_ms == 500 and cases["ok"].suite == "S"
    assert cases["ok"].classname == "C" and cases["ok"].file == str(tmp_path / "r.xml")
    assert run.suites_time_ms == 2500 and run.cases_time_ms == 1500
    assert run.parse_errors == [] and run.files == [str(tmp_path / "r.xml")]


def test_bare_testsuite_root(tmp_path: Path) -> None:
    run = parse(tmp_path, '<testsuite name="S" time="1"><testcase name="a"/></testsuite>')
    assert counts(run) == (1, 0, 0, 0)
    assert run.suites_time_ms == 1000
    assert run.results[0].suite == "S"


def test_nested_suites_count_cases_once_and_top_level_time_only(tmp_path: Path) -> None:
    run = parse(
        tmp_path,
        """<testsuites>
          <testsuite name="outer" time="10">
            <testsuite name="inner" time="4"><testcase name="a" time="1"/></testsuite>
            <testcase name="b" time="2"/>
          </testsuite>
          <testsuite name="other" time="5"><testcase name="c"/></testsuite>
        </testsuites>""",
    )
    assert run.total == 3
    assert run.suites_time_ms == 15_000
    assert run.cases_time_ms == 3000
    assert by_name(run)["a"].suite == "inner" and by_name(run)["b"].suite == "outer"


def test_suite_time_none_when_no_suite_has_one(tmp_path: Path) -> None:
    run = parse(
        tmp_path, '<testsuites><testsuite><testcase name="a" time="1"/></testsuite></testsuites>'
    )
    assert run.suites_time_ms is None
    assert run.cases_time_ms == 1000


def test_missing_attributes(tmp_path: Path) -> None:
    run = parse(
        tmp_path, "<testsuite><testcase/><testcase name='x'><failure/></testcase></testsuite>"
    )
    cases = run.results
    assert {c.status for c in cases} == {"passed", "failed"}
    nameless = next(c for c in cases if c.status == "passed")
    assert nameless.name == "" and nameless.classname is None and nameless.duration_ms == 0
    failed = next(c for c in cases if c.status == "failed")
    assert failed.message is None


def test_suite_level_error_counts_as_one_case(tmp_path: Path) -> None:
    run = parse(
        tmp_path,
        """<testsuite name="pkg.LoadTest" tests="1" errors="1">
             <error message="NoClassDefFoundError" type="java.lang.Error">stack</error>
           </testsuite>""",
    )
    assert counts(run) == (0, 0, 1, 0)
    case = run.results[0]
    assert case.name == "(suite)" and case.classname == "pkg.LoadTest"
    assert case.message == "NoClassDefFoundError"


# ------------------------------------------------------------------ statuses


def test_failure_and_skipped_together_is_failed(tmp_path: Path) -> None:
    run = parse(
        tmp_path,
        '<testsuite><testcase name="a"><skipped/><failure message="real"/></testcase></testsuite>',
    )
    assert counts(run) == (0, 1, 0, 0)
    assert run.results[0].message == "real"


def test_error_wins_over_failure(tmp_path: Path) -> None:
    run = parse(
        tmp_path,
        '<testsuite><testcase name="a"><failure message="f"/><error message="e"/></testcase>'
        "</testsuite>",
    )
    assert counts(run) == (0, 0, 1, 0)


def test_several_failures_count_once(tmp_path: Path) -> None:
    run = parse(
        tmp_path,
        '<testsuite><testcase name="a"><failure message="1"/><failure message="2"/></testcase>'
        "</testsuite>",
    )
    assert run.total == 1 and run.failed == 1
    assert run.results[0].message == "1"


@pytest.mark.parametrize("status", ["disabled", "notrun", "DISABLED"])
def test_disabled_cases_are_skipped_even_with_a_failure(tmp_path: Path, status: str) -> None:
    run = parse(
        tmp_path,
        f"""<testsuites><testsuite>
          <testcase name="a" status="{status}"/>
          <testcase name="b" status="{status}"><failure message="stale"/></testcase>
          <testcase name="c" status="run"/>
        </testsuite></testsuites>""",
    )
    assert counts(run) == (1, 0, 0, 2)


def test_message_falls_back_to_text_and_is_truncated(tmp_path: Path) -> None:
    text = "E" * 5000
    run = parse(
        tmp_path,
        f'<testsuite><testcase name="a"><failure>\n  {text}  \n</failure></testcase></testsuite>',
        max_message=100,
    )
    message = run.results[0].message
    assert message is not None and len(message) == 100
    # the marker gives the raw text length (5000 + the surrounding whitespace)
    assert message.startswith("EEE") and message.endswith("[truncated, 5006 chars]")


def test_long_message_attribute_truncated(tmp_path: Path) -> None:
    run = parse(
        tmp_path,
        f'<testsuite><testcase name="a"><error message="{"m" * 300}"/></testcase></testsuite>',
        max_message=120,
    )
    assert len(run.results[0].message or "") == 120


def test_system_out_is_not_a_message(tmp_path: Path) -> None:
    run = parse(
        tmp_path,
        "<testsuite><testcase name='a'><system-out>noise</system-out><failure/></testcase>"
        "<system-out>suite noise</system-out></testsuite>",
    )
    assert run.results[0].message is None


# ------------------------------------------------------------------ reruns / flaky


def test_surefire_flaky_failure_is_passed_and_flaky(tmp_path: Path) -> None:
    run = parse(
        tmp_path,
        """<testsuite name="S"><testcase name="f" classname="C" time="1.2">
             <flakyFailure message="first try" type="AssertionError">
               <stackTrace>at x</stackTrace></flakyFailure>
           </testcase>
           <testcase name="e" classname="C"><flakyError message="oops"/></testcase>
           <testcase name="p" classname="C"/></testsuite>""",
    )
    assert counts(run) == (3, 0, 0, 0)
    cases = by_name(run)
    assert cases["f"].flaky and cases["e"].flaky and not cases["p"].flaky
    assert cases["f"].message == "first try"
    assert run.flaky == 2


def test_surefire_rerun_failure_with_final_failure_is_failed(tmp_path: Path) -> None:
    run = parse(
        tmp_path,
        """<testsuite><testcase name="r" classname="C">
             <failure message="1st" type="A"/>
             <rerunFailure message="2nd" type="A"><stackTrace>x</stackTrace></rerunFailure>
           </testcase>
           <testcase name="only-rerun" classname="C"><rerunError message="re"/></testcase>
           </testsuite>""",
    )
    cases = by_name(run)
    assert cases["r"].status == "failed" and not cases["r"].flaky
    assert cases["r"].message == "1st"
    assert cases["only-rerun"].status == "error"


def test_repeated_testcases_fail_then_pass_merge_into_one_flaky_pass(tmp_path: Path) -> None:
    run = parse(
        tmp_path,
        """<testsuite name="S">
             <testcase classname="C" name="t" time="1"><failure message="first"/></testcase>
             <testcase classname="C" name="other"/>
             <testcase classname="C" name="t" time="2"/>
           </testsuite>""",
    )
    assert counts(run) == (2, 0, 0, 0)
    t = by_name(run)["t"]
    assert t.flaky and t.attempts == 2 and t.message == "first" and t.duration_ms == 2000
    assert run.reruns == 1
    assert run.cases_time_ms == 3000  # every execution's time is counted


def test_repeated_testcases_all_failing_stay_one_failure(tmp_path: Path) -> None:
    run = parse(
        tmp_path,
        """<testsuite>
             <testcase classname="C" name="t"><failure message="1"/></testcase>
             <testcase classname="C" name="t"><failure message="2"/></testcase>
             <testcase classname="C" name="t"><error message="3"/></testcase>
           </testsuite>""",
    )
    assert counts(run) == (0, 0, 1, 0)
    assert run.results[0].attempts == 3 and run.results[0].message == "3"


def test_repeated_testcases_pass_then_fail_count_as_passed(tmp_path: Path) -> None:
    run = parse(
        tmp_path,
        """<testsuite>
             <testcase classname="C" name="t"/>
             <testcase classname="C" name="t"><failure/></testcase>
           </testsuite>""",
    )
    assert counts(run) == (1, 0, 0, 0)
    assert run.reruns == 1
    # never silent: the caller is told which failing execution was merged into a pass
    assert run.failed_after_pass == ["C::t"]


def test_repeated_passing_cases_are_not_merged(tmp_path: Path) -> None:
    run = parse(
        tmp_path,
        """<testsuite>
             <testcase classname="C" name="t"/><testcase classname="C" name="t"/>
             <testcase classname="D" name="t"><failure/></testcase>
           </testsuite>""",
    )
    assert counts(run) == (2, 1, 0, 0)


def test_reruns_are_not_merged_across_files(tmp_path: Path) -> None:
    one = tmp_path / "1.xml"
    two = tmp_path / "2.xml"
    one.write_text('<testsuite><testcase classname="C" name="t"><failure/></testcase></testsuite>')
    two.write_text('<testsuite><testcase classname="C" name="t"/></testsuite>')
    run = parse_reports([one, two])
    assert counts(run) == (1, 1, 0, 0)


# ------------------------------------------------------------------ times


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("1.5", 1.5),
        ("1,5", 1.5),
        ("1,234", 1.234),
        ("1,234.5", 1234.5),
        ("2,503.1", 2503.1),
        ("1,234,567", 1234567.0),
        (" 3 ", 3.0),
        ("1e-3", 0.001),
        ("-345345", 0.0),
        ("nan", 0.0),
        ("<<computed>>", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_seconds(raw: str | None, seconds: float | None) -> None:
    assert parse_seconds(raw) == pytest.approx(seconds) if seconds is not None else True
    if seconds is None:
        assert parse_seconds(raw) is None


def test_comma_times_in_report(tmp_path: Path) -> None:
    run = parse(
        tmp_path,
        '<testsuites><testsuite time="2,503.1"><testcase name="a" time="1,234"/>'
        '<testcase name="b" time="bogus"/></testsuite></testsuites>',
    )
    assert run.suites_time_ms == 2_503_100
    assert by_name(run)["a"].duration_ms == 1234 and by_name(run)["b"].duration_ms == 0


# ------------------------------------------------------------------ names, encodings


def test_non_ascii_names(tmp_path: Path) -> None:
    run = parse(
        tmp_path,
        '<testsuite name="Überprüfung"><testcase classname="Ωmega" name="测试 ✓ é"/></testsuite>',
    )
    case = run.results[0]
    assert case.name == "测试 ✓ é" and case.classname == "Ωmega" and case.suite == "Überprüfung"


def test_utf16_with_bom(tmp_path: Path) -> None:
    xml = '<?xml version="1.0" encoding="UTF-16"?><testsuite><testcase name="ü✓"/></testsuite>'
    run = parse(tmp_path, xml.encode("utf-16"))
    assert run.parse_errors == [] and run.results[0].name == "ü✓"


def test_utf8_bom(tmp_path: Path) -> None:
    run = parse(tmp_path, b"\xef\xbb\xbf<testsuite><testcase name='a'/></testsuite>")
    assert run.parse_errors == [] and run.passed == 1


@pytest.mark.parametrize("encoding", ["ISO-8859-1", "windows-1252"])
def test_declared_single_byte_encodings(tmp_path: Path, encoding: str) -> None:
    xml = (
        f'<?xml version="1.0" encoding="{encoding}"?><testsuite><testcase name="café"/></testsuite>'
    )
    run = parse(tmp_path, xml.encode("latin-1"))
    assert run.parse_errors == [] and run.results[0].name == "café"


def test_default_namespace_is_tolerated(tmp_path: Path) -> None:
    run = parse(
        tmp_path,
        '<testsuites xmlns="urn:x"><testsuite><testcase name="a"/></testsuite></testsuites>',
    )
    assert run.passed == 1


# ------------------------------------------------------------------ case ids


@pytest.mark.parametrize("prop", ["caseId", "case_id", "testcase_id"])
def test_case_id_from_property(tmp_path: Path, prop: str) -> None:
    run = parse(
        tmp_path,
        f"""<testsuite><testcase name="a"><properties><property name="{prop}" value="42"/>
        </properties></testcase>
        <testcase name="b"><properties><property name="{prop}" value="TC-7"/></properties>
        <failure/></testcase></testsuite>""",
    )
    assert by_name(run)["a"].case_id == 42 and by_name(run)["b"].case_id == "TC-7"


def test_case_id_property_wins_over_case_map(tmp_path: Path) -> None:
    run = parse(
        tmp_path,
        '<testsuite><testcase classname="C" name="a"><properties>'
        '<property name="caseId" value="1"/></properties></testcase></testsuite>',
        case_map={"C.a": 99},
    )
    assert run.results[0].case_id == 1


def test_case_map_keys(tmp_path: Path) -> None:
    run = parse(
        tmp_path,
        """<testsuite>
          <testcase classname="C" name="dot"/>
          <testcase classname="C" name="colons"><failure/></testcase>
          <testcase name="plain"/>
          <testcase classname="C" name="unknown"/>
        </testsuite>""",
        case_map={"C.dot": 1, "C::colons": "2", "plain": "x-3"},
    )
    ids = {c.name: c.case_id for c in run.results}
    assert ids == {"dot": 1, "colons": 2, "plain": "x-3", "unknown": None}


def test_load_case_map_json_and_csv(tmp_path: Path) -> None:
    js = tmp_path / "m.json"
    js.write_text('{"C.a": 1, "C::b": "22", "c": "TC-3"}')
    assert load_case_map(js) == {"C.a": 1, "C::b": 22, "c": "TC-3"}
    cs = tmp_path / "m.csv"
    cs.write_text("key,caseId\nC.a,1\n# comment\n\nb,TC-9\n")
    assert load_case_map(cs) == {"C.a": 1, "b": "TC-9"}
    bad = tmp_path / "bad.csv"
    bad.write_text("onlyonecolumn\n")
    with pytest.raises(ValueError, match="expected 'key,caseId'"):
        load_case_map(bad)


# ------------------------------------------------------------------ results cap, streaming


def test_results_capped_failures_first_and_on_case_sees_all(tmp_path: Path) -> None:
    cases = "".join(
        f'<testcase name="t{i}">{"<failure/>" if i % 10 == 9 else ""}</testcase>' for i in range(50)
    )
    seen: list[CaseResult] = []
    run = parse(tmp_path, f"<testsuite>{cases}</testsuite>", max_results=8, on_case=seen.append)
    assert len(seen) == 50 and run.total == 50
    assert run.results_truncated
    assert [c.status for c in run.results] == ["failed"] * 5 + ["passed"] * 3
    assert [c.name for c in run.results[5:]] == ["t0", "t1", "t2"]


def test_not_truncated_when_all_fit(tmp_path: Path) -> None:
    run = parse(tmp_path, '<testsuite><testcase name="a"/></testsuite>')
    assert not run.results_truncated


def test_truncate_helper() -> None:
    assert truncate("abc", 10) == "abc"
    out = truncate("x" * 50, 40)
    assert len(out) == 40 and out.endswith("[truncated, 50 chars]")
    assert len(truncate("x" * 50, 5)) == 5


# ------------------------------------------------------------------ errors are per file


def test_bad_file_does_not_stop_others(tmp_path: Path) -> None:
    good = tmp_path / "good.xml"
    good.write_text('<testsuite><testcase name="a"/></testsuite>')
    bad = tmp_path / "bad.xml"
    bad.write_text("<testsuite><testcase></testsuite>")
    run = parse_reports([bad, good, tmp_path / "missing.xml"])
    assert run.passed == 1 and len(run.files) == 3
    errors = {Path(e.file).name: e.error for e in run.parse_errors}
    assert errors["bad.xml"] == "not XML: line 1, column 23: mismatched tag"
    assert errors["missing.xml"].startswith("cannot read:")


def test_wrong_root(tmp_path: Path) -> None:
    run = parse(tmp_path, "<html><testcase name='a'/></html>")
    assert run.total == 0
    assert run.parse_errors[0].error == "root element <html> is not <testsuites> or <testsuite>"


def test_truncated_file_keeps_cases_read_so_far(tmp_path: Path) -> None:
    run = parse(tmp_path, '<testsuite><testcase name="a"/><testcase name="b"><failure message="x">')
    assert run.passed == 1
    assert "no element found" in run.parse_errors[0].error
    assert "1 test case(s) before the error were counted" in run.parse_errors[0].error


# ------------------------------------------------------------------ discovery


def touch(path: Path, content: str = "<testsuite/>", mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_default_patterns_find_common_layouts_and_skip_vendored_dirs(tmp_path: Path) -> None:
    wanted = [
        touch(tmp_path / "svc/target/surefire-reports/TEST-a.B.xml"),
        touch(tmp_path / "svc/target/failsafe-reports/TEST-it.xml"),
        touch(tmp_path / "lib/build/test-results/test/TEST-x.xml"),
        touch(tmp_path / "lib/build/test-results/test/other.xml"),
        touch(tmp_path / "py/junit.xml"),
        touch(tmp_path / "report-junit-1.xml"),
        touch(tmp_path / "js/test-results/result.xml"),
    ]
    touch(tmp_path / "node_modules/pkg/junit.xml")
    touch(tmp_path / ".git/TEST-x.xml")
    touch(tmp_path / ".venv/lib/test-results/a.xml")
    touch(tmp_path / "svc/target/surefire-reports/summary.txt")
    found = discover_reports(None, tmp_path)
    assert found.files == sorted(wanted, key=str)
    assert found.unmatched_patterns == [] and found.skipped_old == []
    assert discover_reports([], tmp_path).files == found.files
    assert "**/target/surefire-reports/TEST-*.xml" in DEFAULT_PATTERNS


def test_explicit_patterns_dedupe_and_unmatched(tmp_path: Path) -> None:
    a = touch(tmp_path / "out/a.xml")
    b = touch(tmp_path / "out/sub/b.xml")
    found = discover_reports(["out/**/*.xml", "out/*.xml", "nothing/**/*.xml"], tmp_path)
    assert found.files == [a, b]
    assert found.unmatched_patterns == ["nothing/**/*.xml"]


def test_single_star_does_not_cross_directories(tmp_path: Path) -> None:
    a = touch(tmp_path / "out/a.xml")
    touch(tmp_path / "out/sub/b.xml")
    assert discover_reports(["out/*.xml"], tmp_path).files == [a]


def test_absolute_glob(tmp_path: Path) -> None:
    a = touch(tmp_path / "abs/x/TEST-1.xml")
    assert discover_reports([f"{tmp_path}/abs/**/TEST-*.xml"], Path("/nonexistent")).files == [a]


def test_existing_file_pattern_always_included(tmp_path: Path) -> None:
    old = touch(tmp_path / "weird/results.log", mtime=time.time() - 86_400)
    found = discover_reports(["weird/results.log"], tmp_path, since_ms=int(time.time() * 1000))
    assert found.files == [old] and found.skipped_old == []
    found = discover_reports([str(old)], Path("/"), since_ms=int(time.time() * 1000))
    assert found.files == [old]


def test_since_skips_old_files_with_tolerance(tmp_path: Path) -> None:
    start = time.time()
    old = touch(tmp_path / "r/TEST-old.xml", mtime=start - 60)
    slightly_early = touch(tmp_path / "r/TEST-edge.xml", mtime=start - 1)
    new = touch(tmp_path / "r/TEST-new.xml", mtime=start + 5)
    found = discover_reports(["r/*.xml"], tmp_path, since_ms=int(start * 1000))
    assert found.files == [slightly_early, new]
    assert found.skipped_old == [old]
    assert discover_reports(["r/*.xml"], tmp_path).files == [slightly_early, new, old]


def test_symlink_duplicates_resolved(tmp_path: Path) -> None:
    real = touch(tmp_path / "a/TEST-x.xml")
    (tmp_path / "b").mkdir()
    os.symlink(real, tmp_path / "b/TEST-x.xml")
    found = discover_reports(["**/TEST-*.xml"], tmp_path)
    assert len(found.files) == 1


# ------------------------------------------------------------------ bundled examples


def test_bundled_example_reports() -> None:
    root = Path(__file__).parents[2]
    found = discover_reports(["src/ci_report/examples/reports/*.xml"], root)
    assert len(found.files) == 4
    run = parse_reports(found.files)
    assert run.parse_errors == []
    assert counts(run) == (9, 2, 1, 2)
    assert run.flaky == 2 and run.reruns == 1
    ids = {c.name: c.case_id for c in run.results}
    assert ids["appliesDiscount"] == 103 and ids["test_health"] == 201
    assert ids["checkoutUnderLoad"] == 302
