"""Shared fixtures of the unit tests.

Fixtures here are opt-in (none is autouse): a module that wants them lists them in
``pytestmark = pytest.mark.usefixtures(...)`` or takes them as arguments.
"""

from __future__ import annotations

import io
from typing import Any, Callable

import pytest

from ci_report import console as console_module
from ci_report.config import Settings
from ci_report.console import Console

# Variables that change what the code under test does: secrets, URLs, Jenkins identity.
CI_REPORT_ENV = (
    "CI_REPORT_URL",
    "API_CALLBACK_URL",
    "RUN_ID",
    "JENKINS_API_KEY",
    "JENKINS_JWT_SECRET",
    "JENKINS_SIGNATURE_SECRET",
    "JENKINS_TOKEN",
    "CI_REPORT_API_TOKEN",
    "CI_REPORT_CONFIG",
    "CI_REPORT_OUTBOX",
    "CI_REPORT_DEBUG",
    "CI_REPORT_LOG_FORMAT",
    "CI_REPORT_JUNIT",
    "CI_REPORT_MAX_ATTEMPTS",
    "CI_REPORT_DEADLINE",
    "CI_REPORT_STRICT",
    "CI_REPORT_JWT_AUDIENCE",
    "CI_REPORT_JWT_ISSUER",
    "JOB_NAME",
    "BUILD_NUMBER",
    "BUILD_URL",
    "JENKINS_URL",
    "BUILD_TAG",
    "NODE_NAME",
    "WORKSPACE",
    "GIT_COMMIT",
    "GIT_BRANCH",
    "BRANCH_NAME",
    "CHANGE_ID",
    "NO_COLOR",
    "REQUESTS_CA_BUNDLE",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No ci-report, secret or Jenkins variable from the outer environment leaks in."""
    for name in CI_REPORT_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def restore_console() -> Any:
    """Put the process-wide console back after a test that replaced it (CLI tests)."""
    saved = console_module._console
    yield
    console_module._console = saved


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    """``Settings`` with fields set directly (no environment, no config file)."""

    def factory(**values: Any) -> Settings:
        settings = Settings()
        for name, value in values.items():
            if not hasattr(settings, name):
                raise AttributeError(f"Settings has no field {name!r}")
            setattr(settings, name, value)
            settings.sources[name] = "test"
        return settings

    return factory


class CapturedConsole(Console):
    """A human console writing into a buffer; ``text`` and ``lines`` read it back."""

    def __init__(self, **kwargs: Any) -> None:
        self.buffer = io.StringIO()
        kwargs.setdefault("color", "never")
        super().__init__(stream=self.buffer, **kwargs)

    @property
    def text(self) -> str:
        return self.buffer.getvalue()

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()


@pytest.fixture
def captured_console() -> CapturedConsole:
    return CapturedConsole(debug=True)
