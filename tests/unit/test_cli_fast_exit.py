"""The console script ends with os._exit (no final GC): output, atexit and exit codes intact."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import atexit, sys
    marker = sys.argv.pop(1)
    atexit.register(lambda: open(marker, "w").write("atexit ran"))
    print("x" * 100000, end="")  # buffered on a pipe: must be flushed before os._exit
    sys.stderr.write("partial line without newline")
    from ci_report.cli import main
    sys.argv[0] = "ci-report"
    main()
    """
)


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    marker = tmp_path / "marker"
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(marker), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "WORKSPACE": str(tmp_path)},
    )


def test_output_atexit_and_exit_code_survive_the_fast_exit(tmp_path: Path) -> None:
    out = run(tmp_path, "--version")
    assert out.returncode == 0
    assert out.stdout == "x" * 100000 + "ci-report 0.1.0\n"
    assert out.stderr.startswith("partial line without newline")
    assert (tmp_path / "marker").read_text() == "atexit ran"


def test_usage_error_keeps_exit_code_2(tmp_path: Path) -> None:
    out = run(tmp_path, "--no-such-option")
    assert out.returncode == 2
    assert "No such option" in out.stderr
    assert (tmp_path / "marker").read_text() == "atexit ran"


def test_payload_on_stdout_is_complete(tmp_path: Path) -> None:
    reports = tmp_path / "build" / "test-results" / "test"
    reports.mkdir(parents=True)
    cases = "".join(f'<testcase classname="C" name="t{i}" time="0.1"/>' for i in range(3000))
    (reports / "TEST-big.xml").write_text(f'<testsuite name="S">{cases}</testsuite>')
    out = run(tmp_path, "callback", "--dry-run", "--run-id", "7", "--output", "-")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout[100000:])
    assert payload["totalCases"] == 3000 and payload["runId"] == 7
