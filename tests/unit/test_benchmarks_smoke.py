"""Smoke test of benchmarks/ (issue 6): the generator writes valid JUnit with the requested
counts, the floors agree with it, and benchmarks/run.py runs every comparison at a tiny size.

No timing assertions: timings are the benchmark's business, not the test suite's.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generate():
    sys.path.insert(0, str(BENCH))
    try:
        yield _load("generate", BENCH / "generate.py")
    finally:
        sys.path.remove(str(BENCH))


def test_generator_writes_valid_junit_with_the_requested_counts(generate, tmp_path):
    path = generate.ensure_report(123, out_dir=tmp_path)
    root = ElementTree.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1  # 123 cases < SUITE_SIZE
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == 123
    expected = generate.expected_counts(path)
    assert expected["total"] == 123
    assert len(root.findall("./testsuite/testcase/failure")) == expected["failed"]
    assert len(root.findall("./testsuite/testcase/error")) == expected["errored"]
    assert len(root.findall("./testsuite/testcase/skipped")) == expected["skipped"]
    assert int(suites[0].get("tests")) == 123
    for failure in root.iter("failure"):
        assert len(failure.text) >= generate.TRACE_BYTES  # ~2 KB stack traces


def test_generator_is_deterministic_and_splits_suites(generate, tmp_path):
    a = generate.write_report(tmp_path / "a.xml", 600)
    b = generate.write_report(tmp_path / "b.xml", 600)
    assert a == b
    assert (tmp_path / "a.xml").read_bytes() == (tmp_path / "b.xml").read_bytes()
    root = ElementTree.parse(tmp_path / "a.xml").getroot()
    assert [int(s.get("tests")) for s in root.findall("testsuite")] == [250, 250, 100]


@pytest.mark.parametrize("floor", ["parse_etree", "parse_lxml", "parse_junitparser"])
def test_parse_floors_count_like_the_generator(generate, tmp_path, floor):
    path = generate.ensure_report(321, out_dir=tmp_path)
    module = _load(f"bench_floor_{floor}", BENCH / "floors" / f"{floor}.py")
    assert module.main(str(path)) == generate.expected_counts(path)


@pytest.mark.integration
def test_run_py_runs_every_comparison_at_a_tiny_size(generate, tmp_path):
    ci_report = Path(sys.executable).with_name("ci-report")
    if not ci_report.exists():
        pytest.skip("ci-report is not installed next to this interpreter")
    run = _load("bench_run", BENCH / "run.py")
    out = tmp_path / "results.json"
    code = run.main(
        [
            "--sizes", "40,80",
            "--runs", "1",
            "--no-warmup",
            "--e2e-cases", "20,30,50",
            "--spill-cases", "50",
            "--flush-entries", "3",
            "--data-dir", str(tmp_path / "data"),
            "--json", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    doc = json.loads(out.read_text())
    assert set(doc["comparisons"]) == {
        "parse-40",
        "parse-80",
        "startup",
        "callback-20",
        "callback-30",
        "callback-50",
        "flush",
    }
    parse = doc["comparisons"]["parse-80"]
    assert parse["payload_counts_match"] is True
    assert set(parse["variants"]) == {
        "ci-report",
        "floor-etree",
        "floor-lxml",
        "naive-junitparser",
    }
    for comp in doc["comparisons"].values():
        for variant in comp["variants"].values():
            assert variant["runs"] == 1
            assert variant["wall_s"] > 0
            assert variant["rss_mb"] > 0
    results = {t["target"]: t["result"] for t in doc["targets"]}
    # every target evaluated (40/80 stand in for 100k/1M, 20/30/50 for 200/2000/100k)
    assert len(results) == 9
    assert set(results.values()) <= {"PASS", "MISS"}
    assert out.with_suffix(".md").read_text().startswith("# ci-report benchmark results")
