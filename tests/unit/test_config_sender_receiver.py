"""Sender and receiver read the same environment through one Settings parser: what
``ci-report callback`` signs with ``JENKINS_SIGNATURE_SECRET`` / ``CI_REPORT_JWT_AUDIENCE`` is what
``ci-report receiver`` accepts, and a different audience is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_report.callback.auth import sign_request
from ci_report.config import load_settings
from ci_report.platform.receiver import auth_from_settings
from ci_report.verify import CallbackVerificationError, CallbackVerifier

URL = "http://127.0.0.1:9/api/jenkins/callback"
JWT = "j" * 32


def _verifier(env: dict[str, str], tmp_path: Path) -> CallbackVerifier:
    auth = auth_from_settings(load_settings({}, env=env, cwd=tmp_path))
    auth.pop("require_modes")
    return CallbackVerifier(**auth)


def _signed(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return sign_request(load_settings({}, env=env, cwd=tmp_path), b"{}", "msg_1", url=URL)


def test_raw_signature_secret_with_a_space_signs_and_verifies(tmp_path: Path) -> None:
    env = {"JENKINS_SIGNATURE_SECRET": "  raw secret with a space  "}
    assert _verifier(env, tmp_path).verify(b"{}", _signed(env, tmp_path)).modes == ["hmac"]
    # the same secret split on its space (the receiver's old parser) would not verify
    split = CallbackVerifier(signature_secrets=["raw", "secret", "with", "a", "space"])
    with pytest.raises(CallbackVerificationError):
        split.verify(b"{}", _signed(env, tmp_path))


def test_jwt_audience_from_the_environment_on_both_sides(tmp_path: Path) -> None:
    env = {"JENKINS_JWT_SECRET": JWT, "CI_REPORT_JWT_AUDIENCE": "https://platform.example/cb"}
    headers = _signed(env, tmp_path)
    assert _verifier(env, tmp_path).verify(b"{}", headers).modes == ["jwt"]
    other = dict(env, CI_REPORT_JWT_AUDIENCE="https://other.example/cb")
    with pytest.raises(CallbackVerificationError):
        _verifier(other, tmp_path).verify(b"{}", headers)
