"""Hostile and broken reports: each gives a clear per-file error or a correct
result, memory stays bounded (measured in a child process via ru_maxrss), nothing
is fetched, and the other files still count. No timing assertions here."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_report.junit import DOCTYPE_REFUSED, MAX_DEPTH, parse_reports

pytestmark = pytest.mark.integration

MB = 1 << 20
GOOD = b'<testsuite name="ok"><testcase classname="C" name="fine"/></testsuite>'

# Child process: parse the given files, report counts, errors and peak RSS growth.
# Peak RSS is VmHWM from /proc (per address space, reset by exec); ru_maxrss is
# only a fallback because Linux carries it over fork+exec from the parent, so a
# child of a big pytest process would report the parent's peak.
CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from ci_report.junit import parse_reports

    def peak_kb():
        try:
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    parse_reports([])  # imports junitparser, so the baseline includes it
    base = peak_kb()
    run = parse_reports(sys.argv[1:])
    peak = peak_kb()
    print(json.dumps({
        "total": run.total, "passed": run.passed, "failed": run.failed,
        "errors": [e.error for e in run.parse_errors],
        "messages": [len(c.message or "") for c in run.results],
        "rss_growth_mb": (peak - base) / 1024,
    }))
    """
)


def parse_in_child(*files: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *map(str, files)],
        check=True,
        capture_output=True,
        text=True,
        timeout=240,
    )
    return json.loads(out.stdout)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def billion_laughs() -> bytes:
    decls = ['<!ENTITY lol0 "lol">']
    decls += [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n' + "\n".join(decls) + "\n]>\n"
        '<testsuite><testcase name="&lol9;"><failure message="&lol9;"/></testcase></testsuite>'
    ).encode()


# ------------------------------------------------------------------ entities / DTD


def test_billion_laughs_refused_with_bounded_memory(tmp_path: Path) -> None:
    bomb = write(tmp_path, "bomb.xml", billion_laughs())
    good = write(tmp_path, "good.xml", GOOD)
    result = parse_in_child(bomb, good)
    assert result["errors"] == [DOCTYPE_REFUSED]
    assert result["total"] == 1 and result["passed"] == 1
    assert result["rss_growth_mb"] < 20


def test_entity_reference_without_doctype_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "q.xml", b'<testsuite><testcase name="&a;"/></testsuite>')
    run = parse_reports([path])
    assert run.parse_errors[0].error == "not XML: line 1, column 11: undefined entity"


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # pragma: no cover - must never run
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"<!ENTITY leak 'fetched'>")

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    _Recorder.hits = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_external_entities_are_never_read_or_fetched(tmp_path: Path, http_server: str) -> None:
    secret = write(tmp_path, "secret.txt", b"TOP-SECRET-VALUE")
    docs = {
        "file.xml": f'<!DOCTYPE t [<!ENTITY x SYSTEM "file://{secret}">]>'
        '<testsuite><testcase name="&x;"/></testsuite>',
        "http.xml": f'<!DOCTYPE t [<!ENTITY x SYSTEM "{http_server}/x">]>'
        '<testsuite><testcase name="&x;"/></testsuite>',
        "param.xml": f'<!DOCTYPE t [<!ENTITY % p SYSTEM "{http_server}/p.dtd"> %p;]>'
        "<testsuite><testcase name='&leak;'/></testsuite>",
        "external-dtd.xml": f'<!DOCTYPE testsuite SYSTEM "{http_server}/junit.dtd">'
        "<testsuite><testcase name='a'/></testsuite>",
    }
    paths = [write(tmp_path, name, doc.encode()) for name, doc in docs.items()]
    run = parse_reports([*paths, write(tmp_path, "good.xml", GOOD)])
    assert [e.error for e in run.parse_errors] == [DOCTYPE_REFUSED] * len(docs)
    assert run.total == 1
    assert _Recorder.hits == []
    assert all("TOP-SECRET" not in (c.name + (c.message or "")) for c in run.results)


# ------------------------------------------------------------------ size


def test_20mb_text_node_is_accepted_with_bounded_memory(tmp_path: Path) -> None:
    big = (
        b'<testsuites><testsuite name="S"><testcase classname="C" name="huge">'
        b"<failure>" + b"x" * (20 * MB) + b"</failure>"
        b"<system-out>" + b"o" * (20 * MB) + b"</system-out></testcase>"
        b'<testcase classname="C" name="after"/>'
        b"<system-out>" + b"s" * (20 * MB) + b"</system-out></testsuite></testsuites>"
    )
    path = write(tmp_path, "big.xml", big)
    result = parse_in_child(path)
    assert result["errors"] == []
    assert result["total"] == 2 and result["failed"] == 1
    assert max(result["messages"]) == 8000  # default max_message, with the marker
    # the text is streamed and capped: 60 MB of text must not be held
    assert result["rss_growth_mb"] < 30


def test_many_cases_memory_stays_flat(tmp_path: Path) -> None:
    trace = "at pkg.Cls.method(Cls.java:1)\n" * 60
    path = tmp_path / "many.xml"
    with open(path, "w", encoding="utf-8") as out:
        out.write("<testsuites>")
        for suite in range(100):
            out.write(f'<testsuite name="S{suite}" time="1">')
            for i in range(1000):
                if i % 20 == 0:
                    out.write(
                        f'<testcase classname="S{suite}" name="t{i}" time="0.1">'
                        f'<failure message="boom">{trace}</failure></testcase>'
                    )
                else:
                    out.write(f'<testcase classname="S{suite}" name="t{i}" time="0.1"/>')
            out.write("</testsuite>")
        out.write("</testsuites>")
    result = parse_in_child(path)
    assert result["errors"] == [] and result["total"] == 100_000 and result["failed"] == 5000
    # 10k capped results + rerun bookkeeping; holding 100k cases would be far more
    assert result["rss_growth_mb"] < 60


# ------------------------------------------------------------------ structure


def test_deep_nesting_is_a_clear_error_not_a_crash(tmp_path: Path) -> None:
    depth = 100_000
    deep = b"<testsuites>" + b"<a>" * depth + b"</a>" * depth + b"</testsuites>"
    in_case = (
        b'<testsuite><testcase name="c">' + b"<x>" * depth + b"</x>" * depth + b"</testcase>"
        b"</testsuite>"
    )
    files = [write(tmp_path, "deep.xml", deep), write(tmp_path, "deepcase.xml", in_case)]
    result = parse_in_child(*files, write(tmp_path, "good.xml", GOOD))
    assert result["errors"] == [f"elements nested deeper than {MAX_DEPTH} levels"] * 2
    assert result["total"] == 1
    assert result["rss_growth_mb"] < 30


def test_nesting_below_the_limit_parses(tmp_path: Path) -> None:
    depth = MAX_DEPTH - 10
    doc = (
        b'<testsuite><testcase name="c"><failure message="m">'
        + b"<x>" * depth
        + b"</x>" * depth
        + b"</failure></testcase></testsuite>"
    )
    run = parse_reports([write(tmp_path, "d.xml", doc)])
    assert run.parse_errors == [] and run.failed == 1


def test_broken_files_each_get_a_clear_error_and_others_count(tmp_path: Path) -> None:
    cases = {
        "junk.bin": (bytes(range(256)) * 64, "not XML: line 1, column 0: not well-formed"),
        "empty.xml": (b"", "empty file"),
        "blank.xml": (b"\n  \n", "empty file (only whitespace)"),
        "page.html": (b"<html><body>502</body></html>", "root element <html> is not"),
        "trunc.xml": (b'<testsuite><testcase name="a"><failure mess', "not XML: line 1"),
        "two-roots.xml": (
            b"<testsuite/><testsuite/>",
            "not XML: line 1, column 12: junk after document element",
        ),
        "gzip.xml.gz": (b"\x1f\x8b\x08\x00" + bytes(100), "not XML"),
    }
    paths = [write(tmp_path, name, data) for name, (data, _) in cases.items()]
    utf16 = '<?xml version="1.0" encoding="UTF-16"?><testsuite><testcase name="ü"/></testsuite>'
    latin1 = (
        '<?xml version="1.0" encoding="ISO-8859-1"?><testsuite><testcase name="é"/></testsuite>'
    )
    good = [
        write(tmp_path, "utf16.xml", utf16.encode("utf-16")),
        write(tmp_path, "latin1.xml", latin1.encode("latin-1")),
        write(tmp_path, "good.xml", GOOD),
    ]
    run = parse_reports([*paths, *good])
    errors = {Path(e.file).name: e.error for e in run.parse_errors}
    for name, (_, expected) in cases.items():
        assert errors[name].startswith(expected), (name, errors[name])
        assert "Traceback" not in errors[name]
    assert run.total == 3 and {c.name for c in run.results} == {"ü", "é", "fine"}
    assert len(run.files) == len(cases) + 3


# ------------------------------------------------------------------ workspace content (issue 9)


def test_fifo_named_like_a_report_is_one_unreadable_file_and_never_blocks(tmp_path: Path) -> None:
    import os

    from ci_report.junit import discover_reports

    reports = tmp_path / "build" / "test-results" / "test"
    reports.mkdir(parents=True)
    os.mkfifo(reports / "TEST-fifo.xml")  # no writer ever opens it: a plain open() blocks
    write(reports, "TEST-good.xml", GOOD)
    found = discover_reports(None, tmp_path)
    assert [p.name for p in found.files] == ["TEST-fifo.xml", "TEST-good.xml"]
    out = subprocess.run(  # a child with a timeout: a blocking open would hang the test run
        [sys.executable, "-c", CHILD, *map(str, found.files)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    result = json.loads(out.stdout)
    assert result["errors"] == [
        "cannot read: not a regular file (a FIFO, socket, device or directory)"
    ]
    assert result["total"] == 1 and result["passed"] == 1


def test_symlink_loop_under_a_default_glob_is_one_unreadable_file(tmp_path: Path) -> None:
    from ci_report.junit import discover_reports

    reports = tmp_path / "build" / "test-results" / "test"
    reports.mkdir(parents=True)
    (reports / "TEST-loop.xml").symlink_to("TEST-loop.xml")  # points at itself
    (reports / "TEST-a.xml").symlink_to("TEST-b.xml")
    (reports / "TEST-b.xml").symlink_to("TEST-a.xml")  # a two-link loop
    write(reports, "TEST-good.xml", GOOD)
    found = discover_reports(None, tmp_path)  # resolve() fails on these: never an abort
    assert sorted(p.name for p in found.files) == [
        "TEST-a.xml",
        "TEST-b.xml",
        "TEST-good.xml",
        "TEST-loop.xml",
    ]
    run = parse_reports(found.files)
    assert run.total == 1 and run.passed == 1
    errors = {Path(e.file).name: e.error for e in run.parse_errors}
    assert set(errors) == {"TEST-a.xml", "TEST-b.xml", "TEST-loop.xml"}
    assert all(e == "cannot read: Too many levels of symbolic links" for e in errors.values())


def test_200mb_attribute_is_refused_with_bounded_memory(tmp_path: Path) -> None:
    from ci_report.junit import MAX_TOKEN_BYTES, TOKEN_REFUSED

    path = tmp_path / "huge-attr.xml"
    with open(path, "wb") as out:
        out.write(b'<testsuite name="S"><testcase classname="C" name="before"/>')
        out.write(b'<testcase classname="C" name="huge"><failure message="')
        for _ in range(200):
            out.write(b"m" * MB)
        out.write(b'"/></testcase></testsuite>')
    result = parse_in_child(path, write(tmp_path, "good.xml", GOOD))
    assert result["errors"] == [TOKEN_REFUSED + " (1 test case(s) before the error were counted)"]
    assert result["total"] == 2  # the case before it and the other file still count
    # expat holds one token whole: the cap bounds it (200 MB used to take 641 MB)
    assert result["rss_growth_mb"] < 3 * MAX_TOKEN_BYTES / MB


def test_attribute_below_the_token_cap_is_capped_like_a_message(tmp_path: Path) -> None:
    doc = (
        b'<testsuite><testcase classname="C" name="long"><failure message="'
        + b"m" * (4 * MB)
        + b'"/></testcase></testsuite>'
    )
    run = parse_reports([write(tmp_path, "long.xml", doc)])
    assert run.parse_errors == [] and run.failed == 1
    assert len(run.results[0].message or "") == 8000
