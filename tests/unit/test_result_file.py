"""``ci-report/callback.json``: payload, outcome, and every case when the payload was capped."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from ci_report.callback.payload import canonical_body
from ci_report.callback.result_file import (
    RESULT_SCHEMA,
    ResultSpill,
    read_result_file,
    write_result_file,
)


def case(n: int) -> dict:
    return {"caseName": f"test_{n}", "status": "failed" if n % 3 == 0 else "passed", "n": n}


def payload(results: list, truncated: bool) -> bytes:
    return canonical_body(
        {"runId": 1, "status": "failed", "results": results, "resultsTruncated": truncated}
    )


def write(path: Path, body: bytes, spill=None) -> dict:
    write_result_file(
        path,
        payload_bytes=body,
        delivery_id="msg_" + "a" * 32,
        url="https://platform.example.com/api/jenkins/callback",
        outcome="delivered",
        attempts=2,
        status_code=200,
        error=None,
        spill=spill,
    )
    return read_result_file(path)


def test_small_payload(tmp_path: Path) -> None:
    body = payload([case(1), case(2)], truncated=False)
    path = tmp_path / "ci-report" / "callback.json"
    data = write(path, body)
    assert data["schema"] == RESULT_SCHEMA
    assert data["deliveryId"] == "msg_" + "a" * 32
    assert data["outcome"] == "delivered"
    assert data["attempts"] == 2
    assert data["statusCode"] == 200
    assert data["error"] is None
    assert data["payload"] == json.loads(body)
    assert "allResults" not in data
    assert body in path.read_bytes()  # the payload exactly as sent
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # the Jenkins library archives it
    assert [p.name for p in path.parent.iterdir()] == ["callback.json"]


def test_spill_not_used_when_not_truncated(tmp_path: Path) -> None:
    spill = ResultSpill(limit=10, directory=tmp_path / "spill")
    for n in range(3):
        spill.add(case(n))
    data = write(tmp_path / "r.json", payload([case(0), case(1), case(2)], False), spill)
    assert "allResults" not in data
    spill.close()


def test_truncated_in_memory_spill_lists_every_case(tmp_path: Path) -> None:
    cases = [case(n) for n in range(50)]
    spill = ResultSpill(limit=100, directory=tmp_path / "spill")
    for c in cases:
        spill.add(c)
    assert spill.count == 50
    assert spill._file is None  # still in memory
    assert not (tmp_path / "spill").exists()
    body = payload(cases[:5], truncated=True)
    path = tmp_path / "callback.json"
    data = write(path, body, spill)  # json.load: the file is valid JSON
    assert data["payload"]["resultsTruncated"] is True
    assert len(data["payload"]["results"]) == 5
    assert data["allResults"] == cases
    spill.close()


def test_truncated_on_disk_spill_lists_every_case(tmp_path: Path) -> None:
    cases = [case(n) for n in range(250)]
    cases[7]["caseName"] = 'quote " and é ✓'
    spill_dir = tmp_path / "spill"
    spill = ResultSpill(limit=10, directory=spill_dir)
    for c in cases:
        spill.add(c)
    assert spill._file is not None  # beyond the limit: spilled to a file
    spill_files = list(spill_dir.iterdir())
    assert len(spill_files) == 1 and spill_files[0].suffix == ".part"
    path = tmp_path / "out" / "callback.json"
    data = write(path, payload(cases[:10], truncated=True), spill)
    assert data["allResults"] == cases
    assert data["outcome"] == "delivered"
    assert sorted(p.name for p in path.parent.iterdir()) == ["callback.json"]
    spill.close()
    assert list(spill_dir.iterdir()) == []  # the spill file is removed


def test_truncated_with_empty_spill(tmp_path: Path) -> None:
    spill = ResultSpill(limit=0, directory=tmp_path)
    data = write(tmp_path / "r.json", payload([], truncated=True), spill)
    assert data["allResults"] == []
    spill.close()
    spill.close()  # idempotent


def test_rewrite_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "callback.json"
    write(path, payload([case(1)], False))
    write_result_file(
        path,
        payload_bytes=payload([case(1)], False),
        delivery_id="msg_" + "b" * 32,
        url=None,
        outcome="queued",
        attempts=8,
        status_code=None,
        error="HTTP 503",
    )
    data = read_result_file(path)
    assert data["outcome"] == "queued" and data["error"] == "HTTP 503" and data["url"] is None
    assert [p.name for p in tmp_path.iterdir()] == ["callback.json"]


def test_case_results_spill_in_batches_and_rewrite_is_identical(tmp_path: Path) -> None:
    """The callback hands the spill CaseResults; beyond the limit they are encoded in batches
    (case_entry, keys sorted) and both writes of persist-first give the same allResults."""
    from ci_report.callback import result_file
    from ci_report.callback.payload import case_entry
    from ci_report.junit import CaseResult

    n = result_file.BATCH * 3 + 17
    cases = [
        CaseResult(
            f"t{i}", "C", "failed" if i % 7 == 0 else "passed", i, None, None, i == 3, "f", "S"
        )
        for i in range(n)
    ]
    spill = ResultSpill(limit=50, directory=tmp_path / "spill")
    for c in cases:
        spill.add(c)
    assert spill._written == 51 + 2 * result_file.BATCH  # the rest waits for the next batch
    body = payload([case_entry(c) for c in cases[:50]], truncated=True)
    first = write(tmp_path / "callback.json", body, spill)
    second = write(tmp_path / "callback.json", body, spill)
    assert first["allResults"] == second["allResults"] == [case_entry(c) for c in cases]
    assert first["allResults"][3]["flaky"] is True
    raw = (tmp_path / "callback.json").read_bytes()
    assert b'{"caseId": null, "caseName": "t0", "className": "C", "duration": 0' in raw
    spill.close()
