"""The pull (C parser) path of ci_report.junit against its bounded expat path.

Every file goes to the pull path first; anything unusual is handed to the bounded path, which
resumes after the cases already counted. Both must give the same result, case by case, for the
whole corpus and for files that leave the pull path halfway.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import pytest

from ci_report import junit, junit_pull
from ci_report.junit import CaseResult, parse_reports
from ci_report.junit_keys import PassedKeys
from ci_report.junit_limits import PULL_CHUNK_BYTES, PULL_HELD_BYTES

CORPUS = Path(__file__).parents[1] / "data" / "junit-corpus"
FILES = sorted(CORPUS.rglob("*.xml"))
MB = 1 << 20


class NullSink:
    """Every case through pull_case (no shortcut: nothing is ever taken by the loop itself)."""

    max_text = 100

    def pull_suite(self, attrs: Any, top: bool) -> None:
        pass

    def pull_case(self, elem: Any, suite: Any) -> None:
        pass

    def shortcut(self) -> junit_pull.Shortcut:
        return junit_pull.Shortcut((), PassedKeys(), int, None, "f", [], 1, print)

    def pull_counted(self, cases: int, time_ms: int) -> None:
        raise AssertionError("no shortcut")


def _run(files: list[Path], **kwargs: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    cases: list[CaseResult] = []
    run = parse_reports(files, on_case=cases.append, **kwargs)
    fields = ("passed", "failed", "errored", "skipped", "flaky", "reruns", "cases_time_ms")
    summary = {f: getattr(run, f) for f in fields}
    summary["suites_time_ms"] = run.suites_time_ms
    summary["failed_after_pass"] = run.failed_after_pass
    summary["errors"] = [(e.file, e.error) for e in run.parse_errors]
    summary["results"] = [dataclasses.asdict(c) for c in run.results]
    return summary, [dataclasses.asdict(c) for c in cases]


def _both(monkeypatch: pytest.MonkeyPatch, files: list[Path], **kwargs: Any) -> tuple[Any, Any]:
    """(pull path first, bounded path only)."""
    fast = _run(files, **kwargs)
    with monkeypatch.context() as patch:
        patch.setattr(junit, "parse_pull", lambda stream, sink: False)
        bounded = _run(files, **kwargs)
    return fast, bounded


def _pulled(monkeypatch: pytest.MonkeyPatch, path: Path) -> tuple[bool, int]:
    """Whether the pull path parsed the whole file, and how many cases it handed over."""
    seen: list[tuple[bool, int]] = []
    real = junit.parse_pull

    def spy(stream: Any, sink: Any) -> bool:
        done = real(stream, sink)
        seen.append((done, sink.cases))
        return done

    with monkeypatch.context() as patch:
        patch.setattr(junit, "parse_pull", spy)
        parse_reports([path])
    return seen[0]


@pytest.mark.skipif(not FILES, reason=f"JUnit corpus not found at {CORPUS}")
@pytest.mark.parametrize("max_message", [8000, 40])
def test_corpus_same_on_both_paths(monkeypatch: pytest.MonkeyPatch, max_message: int) -> None:
    fast, bounded = _both(monkeypatch, FILES, max_message=max_message)
    assert fast == bounded
    assert len(fast[1]) > 1000


@pytest.mark.skipif(not FILES, reason=f"JUnit corpus not found at {CORPUS}")
@pytest.mark.parametrize("max_results", [0, 100, 10_000])
def test_corpus_with_a_case_map_same_on_both_paths(
    monkeypatch: pytest.MonkeyPatch, max_results: int
) -> None:
    cases: list[CaseResult] = []
    parse_reports(FILES, on_case=cases.append)
    case_map: dict[str, Any] = {f"{c.classname}.{c.name}": 1000 + i for i, c in enumerate(cases)}
    fast, bounded = _both(monkeypatch, FILES, case_map=case_map, max_results=max_results)
    assert fast == bounded
    assert sum(1 for c in fast[1] if c["case_id"] is not None) > 1000
    with monkeypatch.context() as patch:  # and without on_case (passed cases may be counted)
        plain = parse_reports(FILES, case_map=case_map, max_results=max_results)
        patch.setattr(junit, "parse_pull", lambda stream, sink: False)
        bounded_plain = parse_reports(FILES, case_map=case_map, max_results=max_results)
    assert plain == bounded_plain


@pytest.mark.skipif(not FILES, reason=f"JUnit corpus not found at {CORPUS}")
def test_most_of_the_corpus_takes_the_pull_path(monkeypatch: pytest.MonkeyPatch) -> None:
    pulled = sum(_pulled(monkeypatch, path)[0] for path in FILES)
    assert pulled >= 0.9 * len(FILES)


def _late_trouble(tmp_path: Path, trouble: str) -> Path:
    body = ['<testsuites><testsuite name="S" time="2.5">']
    for i in range(3000):  # several chunks of cases before the trouble
        name = f"t{i % 700}"  # repeats: reruns merge across the hand-over
        if i % 7 == 0:
            body.append(f'<testcase classname="C" name="{name}"><failure>f{i}</failure></testcase>')
        else:
            body.append(f'<testcase classname="C" name="{name}" time="0.01"/>')
    body.append(trouble)
    body.append('<testcase classname="D" name="after" time="1"/></testsuite>')
    body.append('<testsuite name="T" time="1.5"><testcase name="last"/></testsuite></testsuites>')
    path = tmp_path / "late.xml"
    path.write_text("".join(body), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "trouble",
    [
        '<testcase name="huge"><failure>'
        + "h" * (PULL_HELD_BYTES + 5 * PULL_CHUNK_BYTES)
        + "</failure></testcase>",
        "<system-out>" + "<![CDATA[<p>]]>" * (PULL_HELD_BYTES // 10) + "</system-out>",
        '<testcase name="ns"><failure xmlns="urn:x" message="m"/></testcase>',
        '<testcase name="p"><p:failure/></testcase>',  # unbound prefix: C parser error only
        '<testcase name="many">' + "<x/>" * 10_050 + '<failure message="late"/></testcase>',
        '<testcase name="deep"><failure>'
        + "<x>" * 40
        + "t"
        + "</x>" * 40
        + "</failure></testcase>",
        '<testcase name="e">&undefined;</testcase>',
    ],
    ids=["huge-text", "huge-cdata", "default-ns", "unbound-prefix", "many", "deep", "entity"],
)
def test_hand_over_halfway_counts_each_case_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, trouble: str
) -> None:
    path = _late_trouble(tmp_path, trouble)
    done, handed = _pulled(monkeypatch, path)
    assert not done and handed >= 2000  # the pull path got far before it gave the file up
    fast, bounded = _both(monkeypatch, [path], max_message=100)
    assert fast == bounded
    # passed cases only counted (no on_case, no results kept) before the hand-over
    lean = parse_reports([path], max_results=0)
    lean_fields = ("passed", "failed", "reruns", "cases_time_ms", "suites_time_ms")
    assert {f: getattr(lean, f) for f in lean_fields} == {f: fast[0][f] for f in lean_fields}
    assert lean.failed_after_pass == fast[0]["failed_after_pass"]
    broken = "&undefined;" in trouble  # an error in both paths: the second suite is never read
    assert bool(fast[0]["errors"]) == broken
    assert fast[0]["suites_time_ms"] == (2500 if broken else 4000)  # each suite counted once


def test_truncated_file_counts_cases_before_the_error_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "trunc.xml"
    path.write_text("<testsuite>" + '<testcase name="a"/>' * 5000 + '<testcase name="b"><fai')
    fast, bounded = _both(monkeypatch, [path])
    assert fast == bounded
    assert fast[0]["passed"] == 5000
    assert fast[0]["errors"][0][1].endswith("(5000 test case(s) before the error were counted)")


def test_result_texts_capped_as_the_bounded_path_caps_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    doc = (
        '<testsuite><testcase name="a"><failure>\n  ' + "y" * 900 + "\n </failure></testcase>"
        '<testcase name="b"><flakyFailure>  '
        + "z" * 30
        + "<stackTrace>s</stackTrace>"
        + "t" * 90
        + "</flakyFailure></testcase>"
        '<testcase name="c"><properties><property name="caseId">'
        + "7" * 300
        + "</property></properties><skipped>"
        + " " * 200
        + "s</skipped></testcase>"
        '<testsuite name="in"><error message="">' + "e" * 500 + "</error></testsuite>"
        "</testsuite>"
    )
    path = tmp_path / "texts.xml"
    path.write_text(doc)
    assert _pulled(monkeypatch, path) == (True, 4)
    fast, bounded = _both(monkeypatch, [path], max_message=50)
    assert fast == bounded
    messages = {c["name"]: c["message"] for c in fast[1]}
    marker = "... [truncated, {} chars]"
    assert messages == {
        "a": "y" * (50 - len(marker.format(905))) + marker.format(905),  # whole text counted
        "b": "z" * (50 - len(marker.format(122))) + marker.format(122),  # with the tails
        "c": None,  # the first 51 characters kept are blanks
        "(suite)": "e" * (50 - len(marker.format(500))) + marker.format(500),
    }


DOC = '<testsuite name="s"><testcase name="a"/><testcase name="b"/></testsuite>'
DECL = '<?xml version="1.0" encoding="{}"?>'


@pytest.mark.parametrize(
    "doc",
    [
        (DECL.format("UTF-16") + DOC).encode("utf-16"),  # with a BOM
        DOC.encode("utf-16-le"),  # no BOM: the byte checks would not see a DOCTYPE
        DOC.encode("utf-32"),
        (DECL.format("windows-1251") + DOC).encode("cp1251"),  # not in the plain list
        (DECL.replace(" encoding", " " * 3000 + "encoding").format("cp1251") + DOC).encode(),
        ('<?xml version="1.0"' + " " * PULL_CHUNK_BYTES + "?>" + DOC).encode(),
        b"  hello",
    ],
    ids=["utf-16", "utf-16-le", "utf-32", "cp1251", "padded-decl", "decl-past-chunk", "junk"],
)
def test_files_not_in_a_plain_encoding_go_to_the_bounded_path(doc: bytes) -> None:
    class Sink(NullSink):
        def pull_suite(self, attrs: Any, top: bool) -> None:
            raise AssertionError("nothing may be parsed")

        def pull_case(self, elem: Any, suite: Any) -> None:
            raise AssertionError("nothing may be parsed")

    assert junit_pull.parse_pull(io.BytesIO(doc), Sink()) is False


@pytest.mark.parametrize("cut", range(1, 9))
def test_a_doctype_across_a_chunk_seam_is_never_fed(cut: int) -> None:
    marker = b"<!DOCTYPE"
    prev = b"<testsuite>" * 10 + marker[:cut]
    assert junit_pull._plain_chunk(b"<a/>", b"<a/>")
    assert not junit_pull._plain_chunk(marker[cut:] + b" x>", prev)


@pytest.mark.parametrize(
    "doc",
    [
        '<testsuites xmlns="urn:x"><testsuite><testcase name="a"><failure/></testcase>'
        "</testsuite></testsuites>",
        '<testsuites><testsuite xmlns="urn:x"><testcase name="a"><failure/></testcase>'
        "</testsuite></testsuites>",
        '<testsuite><testcase name="a" xmlns="urn:x"><failure/></testcase></testsuite>',
        '<testsuite><testcase name="a"><failure xmlns="urn:x"/></testcase></testsuite>',
        '<testsuite><testcase name="a"><properties><property xmlns="urn:x" name="caseId" '
        'value="7"/></properties></testcase></testsuite>',
        '<testsuite><testcase name="a"><properties xmlns:p="urn:p"><p:property name="caseId" '
        'value="7"/></properties></testcase></testsuite>',
    ],
    ids=["root", "suite", "case", "result", "property", "prefixed-property"],
)
def test_a_namespace_goes_to_the_bounded_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, doc: str
) -> None:
    """The C parser names a namespaced tag ``{uri}tag``, the bounded path reads ``tag``."""
    path = tmp_path / "ns.xml"
    path.write_text(doc)
    assert _pulled(monkeypatch, path) == (False, 0)
    fast, bounded = _both(monkeypatch, [path])
    assert fast == bounded
    lean = parse_reports([path], max_results=0)  # passed cases only counted: no record
    assert (lean.passed, lean.failed, lean.total) == (fast[0]["passed"], fast[0]["failed"], 1)


def test_doctype_after_cases_is_refused_by_the_bounded_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "late-doctype.xml"
    padding = '<testcase name="a"/>' * (3 * PULL_CHUNK_BYTES // 20)
    path.write_text(f"<testsuite>{padding}<!DOCTYPE x [<!ENTITY e 'boom'>]></testsuite>")
    done, handed = _pulled(monkeypatch, path)
    assert not done and handed > 0
    fast, bounded = _both(monkeypatch, [path])
    assert fast == bounded and fast[0]["errors"][0][1].startswith("not XML")


def test_closed_cases_are_dropped_by_the_pull_path(tmp_path: Path) -> None:
    """One suite of many cases: memory stays flat (each closed case leaves its parent)."""
    import tracemalloc

    path = tmp_path / "one-suite.xml"
    path.write_text("<testsuite>" + '<testcase name="a" classname="C"/>' * 100_000 + "</testsuite>")
    seen: list[str] = []

    class Sink(NullSink):
        def pull_case(self, elem: Any, suite: Any) -> None:
            seen.append(elem.tag)

    with open(path, "rb") as stream:
        tracemalloc.start()
        try:
            assert junit_pull.parse_pull(stream, Sink())
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert len(seen) == 100_000
    assert peak < 2 * MB + 8 * len(seen)  # the list of tags; 100k kept elements: ~20 MB


def test_passed_keys_are_exact_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from ci_report import junit_keys

    keys = junit_keys.PassedKeys()
    added = [hash(("S", "C", f"t{i}")) for i in range(50_000)]
    for key_hash in added:
        keys.add(key_hash)
    assert all(key_hash in keys for key_hash in added)
    others = [hash(("S", "C", f"u{i}")) for i in range(50_000)]
    assert not any(key_hash in keys for key_hash in others)  # same buckets, never a match
    assert "t1" not in keys and keys.count == 50_000
    keys.clear()
    assert added[0] not in keys and keys.count == 0
    monkeypatch.setattr(junit_keys, "PASSED_KEYS_LIMIT", 10)
    for key_hash in added[:20]:
        keys.add(key_hash)
    assert keys.count == 10 and added[9] in keys and added[10] not in keys


@pytest.mark.parametrize("max_results", [0, 2, 10_000])
def test_reruns_merge_the_same_when_passed_cases_are_only_counted(
    tmp_path: Path, max_results: int
) -> None:
    """With no on_case and full results, passed cases get no record; reruns still merge."""
    doc = (
        '<testsuite name="S">'
        + "".join(f'<testcase classname="C" name="p{i}" time="0.5"/>' for i in range(5))
        + '<testcase classname="C" name="p1"><failure>later</failure></testcase>'  # after pass
        + '<testcase classname="C" name="f"><failure>first</failure></testcase>'
        + '<testcase classname="C" name="f" time="1"/>'  # passes on rerun: flaky
        + '<testcase classname="C" name="g"><properties/></testcase>'
        + "</testsuite>"
    )
    path = tmp_path / "reruns.xml"
    path.write_text(doc)
    run = parse_reports([path], max_results=max_results)
    assert (run.passed, run.failed, run.flaky, run.reruns) == (7, 0, 1, 2)
    assert run.failed_after_pass == ["C::p1"]
    assert run.cases_time_ms == 3500
