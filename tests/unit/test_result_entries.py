"""``allResults`` entries formatted without a dict are byte for byte what json.dumps writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import pytest

from ci_report.callback.payload import case_entry
from ci_report.callback.result_file import BATCH, ResultSpill, _entry_text
from ci_report.junit import CaseResult

TEXTS = [
    "plain",
    "",
    'quote " backslash \\ slash /',
    "tab\tnewline\ncr\rnul\x00 bell\x07 esc\x1b del\x7f",
    "é ✓ 日本 \u2028 \u2029 \U0001f600",
    "</script> & <b>",
]


def cases() -> list[CaseResult]:
    out = []
    ids: list[Any] = [None, 0, 42, -7, 10**30, "C-1", "", '"id"']
    for i in range(len(TEXTS) * len(ids)):
        text = TEXTS[i % len(TEXTS)]
        out.append(
            CaseResult(
                name=text + str(i),
                classname=None if i % 5 == 0 else text,
                status=("passed", "failed", "error", "skipped")[i % 4],
                duration_ms=(0, 1, 123456789, 10**20)[i % 4],
                message=None if i % 3 == 0 else text * 3,
                case_id=ids[i % len(ids)],
                flaky=i % 7 == 0,
                file="f.xml",
                suite="S",
            )
        )
    return out


def dumps(entry: Any) -> str:
    return json.dumps(entry, ensure_ascii=False, sort_keys=True)


@pytest.mark.parametrize("case", cases(), ids=lambda c: repr(c.name)[:20])
def test_case_text_is_json_dumps_of_case_entry(case: CaseResult) -> None:
    assert _entry_text(case) == dumps(case_entry(case))


class Text(str):
    pass


class Number(int):
    def __repr__(self) -> str:
        return "Number()"


@pytest.mark.parametrize(
    "field, value",
    [
        ("duration_ms", True),
        ("duration_ms", 1.5),
        ("duration_ms", float("nan")),
        ("case_id", True),
        ("case_id", False),
        ("duration_ms", False),
        ("case_id", 2.0),
        ("case_id", ["x"]),
        ("classname", 5),
        ("message", {"a": 1}),
        ("name", None),
        ("status", 3),
        ("flaky", 1),
        ("flaky", ""),
        ("name", Text("a str subclass")),
        ("classname", Text("é")),
        ("case_id", Text("C-9")),
        ("case_id", Number(9)),
        ("duration_ms", Number(9)),
    ],
)
def test_unusual_field_types_give_what_json_dumps_gives(field: str, value: Any) -> None:
    case = cases()[1]
    setattr(case, field, value)
    assert _entry_text(case) == dumps(case_entry(case))


def test_the_parser_field_types_never_build_a_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path covers what the parser gives: every case of cases() is formatted without
    payload.case_entry (the dict is only for other types)."""
    from ci_report.callback import payload

    plain = cases()
    expected = [dumps(case_entry(c)) for c in plain]

    def no_dict(case: CaseResult) -> dict:
        raise AssertionError(f"case_entry called for {case!r}")

    monkeypatch.setattr(payload, "case_entry", no_dict)
    assert [_entry_text(c) for c in plain] == expected


def test_dict_entries_are_json_dumps_sorted() -> None:
    entry = {"z": 1, "a": [1, "é"], "m": None}
    assert _entry_text(entry) == dumps(entry)


@pytest.mark.parametrize("limit", [0, 5, 10_000])
def test_spilled_array_is_json_dumps_of_every_entry(tmp_path: Path, limit: int) -> None:
    items: list[Any] = (cases() * (BATCH // 40 + 2))[: BATCH + 123]
    items[3] = {"caseName": "a dict entry", "n": 3}
    spill = ResultSpill(limit=limit, directory=tmp_path)
    for item in items:
        spill.add(item)
    out = tmp_path / "array.json"
    with out.open("wb") as fh:
        spill.write_json_array(fh)
    spill.close()
    expected = [item if isinstance(item, dict) else case_entry(item) for item in items]
    assert out.read_bytes() == dumps(expected).encode("utf-8")


def test_add_passed_text_is_the_records_text() -> None:
    """ResultSpill.add_passed writes exactly the text of the record it stands for."""
    ids: list[Any] = [None, 0, 42, -7, 10**30, "C-1", "", '"id" é', 1.5]
    for i, text in enumerate(TEXTS):
        for classname in (None, text, "com.example.Suite"):
            for case_id in ids:
                record = CaseResult(
                    text, classname, "passed", i * 1000, None, case_id, False, "f", "S"
                )
                spill = ResultSpill(10)
                spill.add_passed(text, classname, i * 1000, case_id)
                assert spill._buffer == [_entry_text(record)]
                assert json.loads(spill._buffer[0]) == case_entry(record)


CORPUS = Path(__file__).parents[1] / "data" / "junit-corpus"


@pytest.mark.parametrize("max_results", [0, 3, 10_000])
def test_on_passed_gives_the_same_all_results(tmp_path: Path, max_results: int) -> None:
    """Parsed with the spill's add_passed as on_passed, the corpus (reruns, suite-level
    errors, case ids, namespaces, DOCTYPEs) and a file of 3000 passed cases with reruns give
    byte for byte the allResults, counts and results of records only."""
    import io

    from ci_report.junit import parse_reports

    big = tmp_path / "TEST-big.xml"
    rows = []
    for i in range(3000):
        name = f'case "{i % 2900}" é'  # repeats: reruns of the same key
        fail = "<failure message='x'/>" if i % 97 == 0 else ""
        if not fail and i % 5 == 0:  # passed with children: case ids (int, text), output
            value = ("C-" if i % 3 else "") + str(i) + ("&#233;" if i % 2 else "")
            fail = f"<properties><property name='caseId' value='{value}'/></properties>"
            fail += "<system-out>out</system-out>" if i % 4 else ""
        elif not fail and i % 7 == 0:
            fail = "<properties><property name='case_id'>" + "x" * 9000 + "</property></properties>"
        rows.append(
            f'<testcase name="{name.replace(chr(34), "&quot;")}" classname="c{i % 7}"'
            f' time="0.{i:03d}">{fail}</testcase>'
            if fail
            else f'<testcase name="{name.replace(chr(34), "&quot;")}" classname="c{i % 7}"'
            f' time="0.{i:03d}"/>'
        )
    big.write_text("<testsuite name='s'>" + "".join(rows) + "</testsuite>", encoding="utf-8")
    files = [*sorted(CORPUS.rglob("*.xml")), big]
    assert len(files) > 200

    calls: list[str] = []
    with_id: list[bool] = []

    def parse(fast: bool) -> tuple[bytes, Any]:
        spill = ResultSpill(max_results, tmp_path)

        def on_passed(name: str, classname: Optional[str], duration: int, case_id: Any) -> None:
            calls.append(name)
            with_id.append(case_id is not None)
            spill.add_passed(name, classname, duration, case_id)

        run = parse_reports(
            files,
            max_results=max_results,
            on_case=spill.add,
            on_passed=on_passed if fast else None,
        )
        out = io.BytesIO()
        spill.write_json_array(out)
        spill.close()
        return out.getvalue(), run

    (records, run), (fast, fast_run) = parse(False), parse(True)
    assert fast == records
    assert fast_run == run
    assert len(calls) > 2000  # the path was taken (the files hold > 16,000 cases)
    assert any(with_id)  # also for cases with a caseId property
