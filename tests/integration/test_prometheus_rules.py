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


@needs_promtool
def test_a_stuck_run_scraped_from_the_receiver_fires_the_stuck_alert(tmp_path: Path) -> None:
    """What the live receiver exports for a stuck run, held for 15 minutes, fires
    CIReportRunsStuck with the rules file as it is (promtool evaluates it)."""
    import json
    import time

    import requests
    import yaml
    from fault_server import WHSEC
    from prometheus_client.parser import text_string_to_metric_families

    from ci_report.console import Console
    from ci_report.platform.receiver import start_receiver
    from ci_report.platform.runs import open_ledger

    offset = [-3600.0]
    log = (tmp_path / "console.log").open("w")
    ledger = open_ledger(
        str(tmp_path / "runs.db"),
        clock=lambda: time.time() + offset[0],
        console=Console(stream=log),
    )
    ledger.create("team/app/main", {}, run_id="r-stuck")  # an hour ago, never changed since
    offset[0] = 0.0
    handle = start_receiver(signature_secrets=[WHSEC], ledger=ledger)
    try:
        text = requests.get(handle.base_url + "/metrics", timeout=5).text
    finally:
        handle.stop()
        ledger.close()
        log.close()
    scraped = {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name in ("ci_report_stuck_runs", "ci_report_open_runs")
    }
    assert scraped == {"ci_report_stuck_runs": 1.0, "ci_report_open_runs": 1.0}

    rules = yaml.safe_load(RULES.read_text())
    stuck = next(
        r for g in rules["groups"] for r in g["rules"] if r["alert"] == "CIReportRunsStuck"
    )
    annotations = dict(stuck["annotations"])
    annotations["summary"] = annotations["summary"].replace("{{ $value }}", "1")
    case = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f'{name}{{instance="receiver"}}', "values": f"{value:g}x20"}
                    for name, value in scraped.items()
                ],
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": "CIReportRunsStuck", "exp_alerts": []},
                    {
                        "eval_time": "15m",
                        "alertname": "CIReportRunsStuck",
                        "exp_alerts": [
                            {"exp_labels": {"severity": "warning"}, "exp_annotations": annotations}
                        ],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "live_test.yaml"
    path.write_text(json.dumps(case))  # JSON is YAML
    result = _promtool("test", "rules", str(path))
    print(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr


prometheus = shutil.which("prometheus")


@pytest.mark.skipif(prometheus is None, reason="prometheus not installed (Debian package)")
def test_a_real_prometheus_loads_the_rules_and_sees_the_stuck_run(tmp_path: Path) -> None:
    """Prometheus itself scrapes the receiver with the rules file as it is: the stuck run makes
    CIReportRunsStuck pending (it fires after its 10 minutes)."""
    import json
    import socket
    import time

    import requests
    from fault_server import WHSEC

    from ci_report.console import Console
    from ci_report.platform.receiver import start_receiver
    from ci_report.platform.runs import open_ledger

    offset = [-3600.0]
    log = (tmp_path / "console.log").open("w")
    ledger = open_ledger(
        str(tmp_path / "runs.db"),
        clock=lambda: time.time() + offset[0],
        console=Console(stream=log),
    )
    ledger.create("team/app/main", {}, run_id="r-stuck")
    offset[0] = 0.0
    handle = start_receiver(signature_secrets=[WHSEC], ledger=ledger)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = handle.base_url.split("://", 1)[1]
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {"job_name": "ci-report", "static_configs": [{"targets": [target]}]}
                ],
            }
        )
    )
    assert prometheus is not None
    proc = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 60
        seen: dict[str, str] = {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
            try:
                alerts = requests.get(api + "/alerts", timeout=2).json()["data"]["alerts"]
            except (requests.RequestException, ValueError, KeyError):
                alerts = []
            seen = {a["labels"]["alertname"]: a["state"] for a in alerts}
            if "CIReportRunsStuck" in seen:
                break
            time.sleep(0.2)
        assert seen.get("CIReportRunsStuck") == "pending", seen
        groups = requests.get(api + "/rules", timeout=5).json()["data"]["groups"]
        loaded = sorted(r["name"] for g in groups for r in g["rules"])
        assert len(loaded) == 8
        errors = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"]]
        assert not [e for e in errors if e[1]], errors
        print("prometheus alerts:", seen)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        handle.stop()
        ledger.close()
        log.close()
