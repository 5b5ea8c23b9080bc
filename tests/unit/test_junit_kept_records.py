"""The parser keeps at most max_results records in all (failures first), on both paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_report import junit


def _reports(tmp: Path, bounded: bool) -> list[Path]:
    """Passed, failed and skipped cases, then (in a second file: the failures wait for a rerun
    until their file ends) passed cases again."""
    rows = [f'<testcase name="p{i}" classname="c" time="0.001"/>' for i in range(50)]
    rows += [
        f'<testcase name="f{i}" classname="c"><failure message="m"/></testcase>' for i in range(30)
    ]
    rows += [f'<testcase name="q{i}" classname="c"><skipped/></testcase>' for i in range(50)]
    xmlns = ' xmlns="urn:x"' if bounded else ""  # a default namespace: the bounded path
    again = [f'<testcase name="r{i}" classname="c" time="0.001"/>' for i in range(50)]
    paths = [tmp / "a.xml", tmp / "b.xml"]
    for path, cases in zip(paths, (rows, again)):
        path.write_text(f'<testsuite name="s"{xmlns}>' + "".join(cases) + "</testsuite>")
    return paths


@pytest.mark.parametrize("bounded", [False, True])
@pytest.mark.parametrize("on_case", [False, True])
def test_failures_take_the_place_of_kept_passed_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bounded: bool, on_case: bool
) -> None:
    peak = [0]
    add = junit._Collector.add

    def counting_add(self: junit._Collector, case: junit.CaseResult) -> None:
        add(self, case)
        peak[0] = max(peak[0], len(self.bad) + len(self.other))

    finish = junit._Collector.finish

    def counting_finish(self: junit._Collector) -> junit.TestRun:
        peak[0] = max(peak[0], len(self.bad) + len(self.other))  # the pull path's own too
        return finish(self)

    monkeypatch.setattr(junit._Collector, "add", counting_add)
    monkeypatch.setattr(junit._Collector, "finish", counting_finish)
    seen: list[str] = []
    run = junit.parse_reports(
        _reports(tmp_path, bounded),
        max_results=40,
        on_case=(lambda c: seen.append(c.name)) if on_case else None,
    )
    assert not run.parse_errors
    assert [c.name for c in run.results] == [f"f{i}" for i in range(30)] + [
        f"p{i}" for i in range(10)
    ]
    assert run.total == 180 and run.results_truncated
    assert peak[0] <= 40  # never more records than results can hold
    assert len(seen) == (180 if on_case else 0)


@pytest.mark.parametrize("bounded", [False, True])
def test_records_share_one_str_per_classname(tmp_path: Path, bounded: bool) -> None:
    """Records of one classname hold one str (the parser gives each case's attribute a str of
    its own); past junit_pull.CLASSNAMES_SHARED distinct ones, names are still right."""
    xmlns = ' xmlns="urn:x"' if bounded else ""
    kinds = ["", "<failure message='m'/>", "<properties/>"]
    rows = [
        f'<testcase name="t{i}" classname="pkg.C{i % 2}">{kinds[i % 3]}</testcase>'
        for i in range(12)
    ]
    rows += [f'<testcase name="u{i}" classname="pkg.D{i}"/>' for i in range(5000)]
    report = tmp_path / "r.xml"
    report.write_text(f'<testsuite name="s"{xmlns}>' + "".join(rows) + "</testsuite>")
    run = junit.parse_reports([report], max_results=10_000)
    first = {c.name: c for c in run.results if c.name.startswith("t")}
    assert len(first) == 12
    for i in range(2, 12):
        assert first[f"t{i}"].classname is first[f"t{i % 2}"].classname
    assert [c.classname for c in run.results if c.name.startswith("u")] == [
        f"pkg.D{i}" for i in range(5000)
    ]
