"""The Jenkins side: shared library parse, harness tests and lint, via scripts/groovy-tests.sh.

Needs Debian's groovy 2.4.21 (the Groovy in Jenkins core) and a Java 17 JDK; npm-groovy-lint is
installed by the script on first use. Without groovy this test fails on purpose: set
CI_REPORT_SKIP_GROOVY=1 to skip it on machines that cannot run it.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "groovy-tests.sh"

pytestmark = pytest.mark.integration


def test_shared_library_parses_passes_its_harness_tests_and_lints():
    if os.environ.get("CI_REPORT_SKIP_GROOVY") == "1":
        pytest.skip("CI_REPORT_SKIP_GROOVY=1")
    if shutil.which("groovy") is None:
        pytest.fail(
            "groovy is not on PATH: install Debian's groovy 2.4.21 (apt-get install -y groovy) "
            "and a Java 17 JDK, or set CI_REPORT_SKIP_GROOVY=1 to skip the shared-library checks"
        )
    proc = subprocess.run(
        ["bash", str(SCRIPT)],
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=240,
    )
    output = proc.stdout
    assert proc.returncode == 0, f"scripts/groovy-tests.sh failed ({proc.returncode}):\n{output}"
    lines = [line.strip() for line in output.splitlines()]
    counts = [line for line in lines if line.endswith(" failed") and " passed, " in line]
    assert counts and counts[-1].endswith(" 0 failed"), output
    assert "groovy-tests: all checks passed" in lines, output
