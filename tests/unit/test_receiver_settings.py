"""The receiver reads its secrets and options through Settings: the sender's parser, pinned."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from ci_report.callback.auth import sign_request
from ci_report.config import load_settings
from ci_report.platform.receiver import auth_from_settings
from ci_report.verify import CallbackVerifier

WHSEC_A = "whsec_" + base64.b64encode(b"a" * 32).decode()
WHSEC_B = "whsec_" + base64.b64encode(b"b" * 32).decode()
URL = "http://127.0.0.1:9/api/jenkins/callback"


def _auth(tmp_path: Path, **env: str) -> dict:
    return auth_from_settings(load_settings({}, env=env, cwd=tmp_path))


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("raw secret with spaces", ["raw secret with spaces"]),
        (f"{WHSEC_A} {WHSEC_B}", [WHSEC_A, WHSEC_B]),
        (f"  {WHSEC_A}  ", [WHSEC_A]),
    ],
)
def test_signature_secrets_are_parsed_like_the_sender(tmp_path, value, parsed) -> None:
    auth = _auth(tmp_path, JENKINS_SIGNATURE_SECRET=value)
    assert auth["signature_secrets"] == parsed
    # and what the sender signs with that value, the receiver accepts
    settings = load_settings({}, env={"JENKINS_SIGNATURE_SECRET": value}, cwd=tmp_path)
    headers = sign_request(settings, b"{}", "msg_pinned", url=URL)
    verifier = CallbackVerifier(signature_secrets=auth["signature_secrets"])
    assert verifier.verify(b"{}", headers).modes == ["hmac"]


def test_audience_issuer_and_required_modes_from_the_environment(tmp_path) -> None:
    auth = _auth(
        tmp_path,
        JENKINS_API_KEY="k" * 20,
        JENKINS_JWT_SECRET="j" * 32,
        CI_REPORT_JWT_AUDIENCE="https://platform.example/cb",
        CI_REPORT_JWT_ISSUER="team-ci",
        CI_REPORT_REQUIRE="hmac, jwt",
    )
    assert auth["api_keys"] == ["k" * 20] and auth["jwt_secrets"] == ["j" * 32]
    assert auth["jwt_audience"] == "https://platform.example/cb"
    assert auth["jwt_issuer"] == "team-ci"
    assert auth["require_modes"] == ["hmac", "jwt"]


def test_no_secret_no_modes(tmp_path) -> None:
    auth = _auth(tmp_path)
    assert auth["api_keys"] == auth["jwt_secrets"] == auth["signature_secrets"] == []
    assert auth["require_modes"] == []


def test_a_malformed_whsec_secret_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not valid base64"):
        CallbackVerifier(signature_secrets=["whsec_%%%"])
