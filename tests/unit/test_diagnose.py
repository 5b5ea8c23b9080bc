"""diagnose: the configuration step (no network needed) and the report shape."""

from __future__ import annotations

from pathlib import Path

from ci_report.callback.diagnose import DiagnoseReport, Step, diagnose
from ci_report.config import load_settings

WHSEC = "whsec_aW50ZWdyYXRpb24taG1hYy1rZXktMzItYnl0ZXMhISE="


def _settings(tmp_path: Path, **env: str):
    return load_settings({}, env=env, cwd=tmp_path)


def test_no_url(tmp_path: Path) -> None:
    report = diagnose(_settings(tmp_path, JENKINS_API_KEY="k" * 20))
    assert report.steps[0].name == "config" and report.steps[0].failed
    assert "CI_REPORT_URL" in (report.steps[0].fix or "")
    assert all(s.status == "skip" for s in report.steps[1:])
    assert report.exit_code == 1


def test_not_http(tmp_path: Path) -> None:
    report = diagnose(_settings(tmp_path, CI_REPORT_URL="ftp://x/y", JENKINS_API_KEY="k" * 20))
    assert report.failed_steps[0].name == "config"


def test_bad_whsec(tmp_path: Path) -> None:
    report = diagnose(
        _settings(
            tmp_path,
            CI_REPORT_URL="http://127.0.0.1:9/api/jenkins/callback",
            JENKINS_SIGNATURE_SECRET="whsec_not*base64",
        )
    )
    step = report.failed_steps[0]
    assert step.name == "config" and "base64" in step.detail


def test_short_jwt_secret_warns_and_goes_on(tmp_path: Path) -> None:
    seen: list[Step] = []
    report = diagnose(
        _settings(
            tmp_path,
            CI_REPORT_URL="http://nonexistent.invalid/api/jenkins/callback",
            JENKINS_JWT_SECRET="short",
            JENKINS_SIGNATURE_SECRET=WHSEC,
        ),
        on_step=seen.append,
    )
    assert report.steps[0].status == "warn" and "32 bytes" in report.steps[0].detail
    assert report.failed_steps[0].name == "dns"
    assert [s.name for s in seen] == [s.name for s in report.steps]
    assert [s.name for s in report.steps][-2:] == ["auth jwt", "auth hmac"]


def test_report_json() -> None:
    report = DiagnoseReport(
        url="u", steps=[Step("config", "ok", "fine"), Step("dns", "FAIL", "no", "fix it", {"a": 1})]
    )
    data = report.to_json()
    assert data["ok"] is False and data["failedStep"] == "dns"
    assert "data" not in data["steps"][0] and data["steps"][1]["data"] == {"a": 1}
