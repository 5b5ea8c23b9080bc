"""The console script runs callback and flush without the cyclic GC; every other command, and
every in-process caller of ``main(argv)``, keeps it."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ci_report.cli import main

SCRIPT = textwrap.dedent(
    """
    import atexit, gc, sys
    marker = sys.argv.pop(1)
    # atexit handlers run at the very end of the command (exit_fast runs them)
    atexit.register(lambda: open(marker, "w").write(str(gc.isenabled())))
    from ci_report.cli import main
    sys.argv[0] = "ci-report"
    main()
    """
)


def gc_at_exit(tmp_path: Path, *args: str) -> str:
    marker = tmp_path / "marker"
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(marker), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "WORKSPACE": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    return marker.read_text()


@pytest.mark.parametrize(
    "args",
    [
        ("callback", "--dry-run", "--run-id", "7", "--output", "-"),
        ("flush", "--list"),
        ("--version",),
    ],
)
def test_batch_commands_run_without_the_cyclic_gc(tmp_path: Path, args: tuple[str, ...]) -> None:
    assert gc_at_exit(tmp_path, *args) == "False"


@pytest.mark.parametrize("args", [("config",), ("config", "--help")])
def test_other_commands_get_the_gc_back(tmp_path: Path, args: tuple[str, ...]) -> None:
    assert gc_at_exit(tmp_path, *args) == "True"


def test_main_with_argv_leaves_the_callers_gc_alone() -> None:
    assert gc.isenabled()
    with pytest.raises(SystemExit):
        main(["--version"])
    assert gc.isenabled()
