"""docs/prometheus-rules.yaml loads in Prometheus as it is, its alerts fire as intended (promtool's
own rule unit tests), and every metric a rule reads is one the receiver really exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ci_report.platform.metrics import PlatformMetrics

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "docs" / "prometheus-rules.yaml"
RULE_TESTS = REPO / "tests" / "data" / "prometheus" / "rules_test.yaml"

pytestmark = pytest.mark.integration

promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    promtool is None, reason="promtool not installed (Debian package prometheus)"
)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert promtool is not None
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=60, cwd=REPO, check=False
    )


@needs_promtool
def test_promtool_check_rules_accepts_the_file() -> None:
    result = _promtool("check", "rules", str(RULES))
    print(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout


@needs_promtool
def test_promtool_rule_unit_tests_pass() -> None:
    result = _promtool("test", "rules", str(RULE_TESTS))
    print(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


class _Ledger:
    def counts_by_status(self) -> dict[str, int]:
        return {"running": 1}

    def oldest_open_age_s(self) -> float:
        return 1.0

    def stuck(self, older_than_s: float, limit: object = None) -> list[object]:
        return []


def test_every_metric_the_rules_read_is_exported() -> None:
    exported = PlatformMetrics(_Ledger()).render().decode()
    names = set(re.findall(r"^(?:# TYPE )?(ci_report_[a-z_]+)", exported, re.MULTILINE))
    wanted = set(re.findall(r"\bci_report_[a-z_]+", RULES.read_text()))
    assert wanted, "no metric found in the rules file"
    missing = sorted(wanted - names)
    assert not missing, f"rules read metrics the receiver does not export: {missing}"
