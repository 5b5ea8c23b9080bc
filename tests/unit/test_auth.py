"""Request authentication: Standard Webhooks HMAC, JWT (HS256) and API key headers."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from datetime import datetime, timezone

import jwt
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from ci_report import USER_AGENT
from ci_report.callback import auth
from ci_report.callback.auth import (
    body_sha256,
    check_auth_settings,
    hmac_key,
    hmac_signature,
    make_jwt,
    sign_request,
    signature_header,
)
from ci_report.errors import ConfigError

pytestmark = pytest.mark.usefixtures("clean_env")

# V1: the Standard Webhooks repository's own test vector
V1_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
V1_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
V1_TS = 1614265330
V1_BODY = b'{"test": 2432232314}'
V1_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

# V2: a raw (non-whsec) secret
V2_SECRET = "ci-report-test-secret-0123456789abcdef"
V2_ID = "msg_2b5c3f0e8a9d4c1b7e6f5a4d3c2b1a09"
V2_TS = 1700000000
V2_BODY = (
    b'{"build":42,"job":"team/app/main","schema":"ci-report/v1","tests":{"failed":1,"total":3}}'
)
V2_SIG = "v1,YF48ULrGjeOdZZ3KhiUGiAF5804s12z0MYq17nQ07MI="
V2_BODY_SHA256 = "vhCbOYBk_auCSS4dU5rC4wFqmruBR6n3VaAh8VLNErk"

# JWT decode vector
JWT_SECRET = "ci-report-jwt-test-secret-0123456789abcdef"
JWT_AUD = "https://platform.example.com/api/jenkins/callback"
JWT_VECTOR = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJjaS1yZXBvcnQiLCJhdWQiOiJodHRwczovL3BsYXRm"
    "b3JtLmV4YW1wbGUuY29tL2FwaS9qZW5raW5zL2NhbGxiYWNrIiwic3ViIjoidGVhbS9hcHAvbWFpbiM0MiIsImlh"
    "dCI6MTY5OTk5OTk3MCwibmJmIjoxNjk5OTk5OTcwLCJleHAiOjE3MDAwMDAzMDAsImp0aSI6IjVmMGMyZDFlOWI4"
    "YTRjN2Q4ZTZmNWE0YjNjMmQxZTBmIiwid2ViaG9va19pZCI6Im1zZ18yYjVjM2YwZThhOWQ0YzFiN2U2ZjVhNGQz"
    "YzJiMWEwOSIsImJvZHlfc2hhMjU2IjoidmhDYk9ZQmtfYXVDU1M0ZFU1ckM0d0ZxbXJ1QlI2bjNWYUFoOFZMTkVy"
    "ayJ9.jYe1_3Rj3iDsiaeqlmImGvB-Ke-ozgmo4fFZ35SNPww"
)

URL = "https://platform.example.com/api/jenkins/callback"


def whsec(n: int = 32, seed: int = 0) -> str:
    raw = hashlib.sha256(f"seed-{seed}".encode()).digest() * 2
    return "whsec_" + base64.b64encode(raw[:n]).decode()


def decode(token: str, secret: str, audience: str = URL, **kwargs: object) -> dict:
    return jwt.decode(
        token,
        secret.encode(),
        algorithms=["HS256"],
        audience=audience,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        **kwargs,
    )


# ------------------------------------------------------------------------- HMAC


def test_v1_vector_whsec_secret() -> None:
    assert hmac_signature(hmac_key(V1_SECRET), V1_ID, V1_TS, V1_BODY) == V1_SIG
    assert signature_header([V1_SECRET], V1_ID, V1_TS, V1_BODY) == V1_SIG


def test_v1_vector_matches_official_sign() -> None:
    when = datetime.fromtimestamp(V1_TS, tz=timezone.utc)
    assert Webhook(V1_SECRET).sign(V1_ID, when, V1_BODY.decode()) == V1_SIG


def test_v2_vector_raw_secret_used_as_utf8_bytes() -> None:
    assert hmac_key(V2_SECRET) == V2_SECRET.encode("utf-8")
    assert hmac_signature(hmac_key(V2_SECRET), V2_ID, V2_TS, V2_BODY) == V2_SIG
    when = datetime.fromtimestamp(V2_TS, tz=timezone.utc)
    assert Webhook(V2_SECRET.encode()).sign(V2_ID, when, V2_BODY.decode()) == V2_SIG


def test_body_sha256_vector() -> None:
    assert body_sha256(V2_BODY) == V2_BODY_SHA256


def test_secret_whitespace_is_stripped() -> None:
    assert hmac_key(f"  {V1_SECRET}\n") == hmac_key(V1_SECRET)
    assert hmac_key(V2_SECRET + "\n") == V2_SECRET.encode()


def test_unpadded_whsec_secret_accepted() -> None:
    padded = whsec(31)  # 31 bytes -> base64 ends with '='
    assert padded.endswith("=")
    assert hmac_key(padded.rstrip("=")) == hmac_key(padded)


def test_several_whsec_secrets_one_entry_each_all_verify(make_settings) -> None:
    secrets = [whsec(seed=1), whsec(seed=2), whsec(seed=3)]
    settings = make_settings(signature_secret="  ".join(secrets))  # any whitespace between
    now = time.time()
    headers = sign_request(settings, V2_BODY, V2_ID, url=URL, now=now)
    value = headers["webhook-signature"]
    entries = value.split(" ")
    assert len(entries) == 3
    assert "  " not in value
    assert all(e.startswith("v1,") for e in entries)
    assert len(set(entries)) == 3
    for secret in secrets:
        Webhook(secret).verify(V2_BODY, headers, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        Webhook(whsec(seed=99)).verify(V2_BODY, headers, json_parse=False)


def test_raw_secret_verifies_with_official_library_as_bytes(make_settings) -> None:
    settings = make_settings(signature_secret=V2_SECRET)
    headers = sign_request(settings, V2_BODY, V2_ID, url=URL)
    assert len(headers["webhook-signature"].split(" ")) == 1
    assert Webhook(V2_SECRET.encode()).verify(V2_BODY, headers)["build"] == 42


def test_raw_secret_with_spaces_is_one_secret(make_settings) -> None:
    settings = make_settings(signature_secret="not whsec but has spaces")
    assert settings.signature_secrets == ["not whsec but has spaces"]
    headers = sign_request(settings, V2_BODY, V2_ID, url=URL)
    Webhook(b"not whsec but has spaces").verify(V2_BODY, headers, json_parse=False)


@pytest.mark.parametrize("bad", ["whsec_not*valid*base64", "whsec_ab$cdXY", "whsec_QQQQQ"])
def test_invalid_whsec_base64_is_config_error_without_secret(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        hmac_key(bad)
    err = info.value
    text = " ".join(str(x) for x in (err.message, err.cause, err.fix, err))
    assert bad not in text
    assert bad[len("whsec_") :] not in text
    assert "JENKINS_SIGNATURE_SECRET" in err.message


def test_empty_whsec_is_config_error() -> None:
    with pytest.raises(ConfigError):
        hmac_key("whsec_")


# -------------------------------------------------------------------------- JWT


def test_jwt_claims(monkeypatch: pytest.MonkeyPatch, make_settings) -> None:
    settings = make_settings(jwt_secret=JWT_SECRET)
    now = 1_700_000_000.7
    headers = sign_request(settings, V2_BODY, V2_ID, url=URL, now=now, subject="team/app#42")
    scheme, _, token = headers["Authorization"].partition(" ")
    assert scheme == "Bearer"
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = decode(token, JWT_SECRET, issuer="ci-report")
    assert claims["iss"] == "ci-report"
    assert claims["sub"] == "team/app#42"
    assert claims["aud"] == URL  # default audience = the callback URL
    assert claims["iat"] == 1_700_000_000 - 30
    assert claims["nbf"] == claims["iat"]
    assert claims["exp"] == 1_700_000_000 + 300
    assert claims["webhook_id"] == V2_ID
    assert claims["body_sha256"] == V2_BODY_SHA256
    assert len(claims["jti"]) == 32


def test_jwt_verifies_now_with_pyjwt_defaults(make_settings) -> None:
    settings = make_settings(jwt_secret=JWT_SECRET)
    headers = sign_request(settings, V2_BODY, V2_ID, url=URL, subject="s")
    token = headers["Authorization"][len("Bearer ") :]
    claims = jwt.decode(
        token,
        JWT_SECRET.encode(),
        algorithms=["HS256"],
        audience=URL,
        issuer="ci-report",
        options={"require": ["iss", "aud", "sub", "iat", "exp", "jti", "webhook_id"]},
    )
    assert claims["webhook_id"] == V2_ID


def test_jwt_configured_issuer_and_audience(make_settings) -> None:
    settings = make_settings(jwt_secret=JWT_SECRET, jwt_issuer="jenkins-a", jwt_audience="aud-x")
    token = sign_request(settings, b"{}", V2_ID, url=URL, subject="s")["Authorization"][7:]
    claims = decode(token, JWT_SECRET, audience="aud-x", issuer="jenkins-a")
    assert claims["aud"] == "aud-x"


def test_jwt_jti_unique_per_token() -> None:
    tokens = [
        make_jwt(JWT_SECRET, issuer="i", audience="a", subject="s", webhook_id="m", body=b"")
        for _ in range(5)
    ]
    jtis = {decode(t, JWT_SECRET, audience="a")["jti"] for t in tokens}
    assert len(jtis) == 5


def test_jwt_subject_defaults_to_build_identity(
    monkeypatch: pytest.MonkeyPatch, make_settings
) -> None:
    monkeypatch.setenv("JOB_NAME", "team/app/main")
    monkeypatch.setenv("BUILD_NUMBER", "42")
    settings = make_settings(jwt_secret=JWT_SECRET)
    token = sign_request(settings, b"{}", V2_ID, url=URL)["Authorization"][7:]
    assert decode(token, JWT_SECRET)["sub"] == "team/app/main#42"


def test_jwt_decode_vector_from_signing_md() -> None:
    claims = jwt.decode(
        JWT_VECTOR,
        JWT_SECRET.encode(),
        algorithms=["HS256"],
        audience=JWT_AUD,
        issuer="ci-report",
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert claims["iat"] == claims["nbf"] == 1699999970
    assert claims["exp"] == 1700000300
    assert claims["webhook_id"] == V2_ID
    assert claims["body_sha256"] == body_sha256(V2_BODY)
    assert claims["sub"] == "team/app/main#42"


def test_jwt_decode_vector_fails_with_other_secret() -> None:
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            JWT_VECTOR,
            b"another-secret-of-sufficient-length-000",
            algorithms=["HS256"],
            audience=JWT_AUD,
            options={"verify_exp": False},
        )


# ------------------------------------------------------------------ sign_request

META = {"Content-Type", "User-Agent", "webhook-id", "webhook-timestamp", "Idempotency-Key"}


def test_api_key_only(make_settings) -> None:
    settings = make_settings(api_key=" key-123 \n")
    headers = sign_request(settings, V2_BODY, V2_ID, url=URL, now=V2_TS)
    assert set(headers) == META | {"X-Api-Key"}
    assert headers["X-Api-Key"] == "key-123"
    assert headers["webhook-id"] == headers["Idempotency-Key"] == V2_ID
    assert headers["webhook-timestamp"] == str(V2_TS)
    assert headers["User-Agent"] == USER_AGENT
    assert headers["Content-Type"] == "application/json"


def test_jwt_only(make_settings) -> None:
    settings = make_settings(jwt_secret=JWT_SECRET)
    headers = sign_request(settings, V2_BODY, V2_ID, url=URL, subject="s")
    assert set(headers) == META | {"Authorization"}


def test_hmac_only_with_timestamp_integer(make_settings) -> None:
    settings = make_settings(signature_secret=V2_SECRET)
    headers = sign_request(settings, V2_BODY, V2_ID, url=URL, now=V2_TS + 0.9)
    assert set(headers) == META | {"webhook-signature"}
    assert headers["webhook-timestamp"] == str(V2_TS)
    assert headers["webhook-signature"] == V2_SIG


def test_all_modes_together(make_settings) -> None:
    settings = make_settings(api_key="k" * 40, jwt_secret=JWT_SECRET, signature_secret=V1_SECRET)
    headers = sign_request(settings, V2_BODY, V2_ID, url=URL, subject="s")
    assert set(headers) == META | {"X-Api-Key", "Authorization", "webhook-signature"}
    Webhook(V1_SECRET).verify(V2_BODY, headers, json_parse=False)
    claims = decode(headers["Authorization"][7:], JWT_SECRET)
    assert claims["webhook_id"] == headers["webhook-id"]


def test_modes_argument_restricts(make_settings) -> None:
    settings = make_settings(api_key="k" * 40, jwt_secret=JWT_SECRET, signature_secret=V1_SECRET)
    headers = sign_request(settings, V2_BODY, V2_ID, url=URL, modes=["hmac"])
    assert set(headers) == META | {"webhook-signature"}
    assert set(sign_request(settings, V2_BODY, V2_ID, url=URL, modes=[])) == META


def test_fresh_timestamp_per_call_same_id(monkeypatch: pytest.MonkeyPatch, make_settings) -> None:
    clock = iter([1_700_000_000.0, 1_700_000_007.0])
    monkeypatch.setattr(auth.time, "time", lambda: next(clock))
    settings = make_settings(jwt_secret=JWT_SECRET, signature_secret=V1_SECRET)
    first = sign_request(settings, V2_BODY, V2_ID, url=URL, subject="s")
    second = sign_request(settings, V2_BODY, V2_ID, url=URL, subject="s")
    assert first["webhook-timestamp"] == "1700000000"
    assert second["webhook-timestamp"] == "1700000007"
    assert first["webhook-signature"] != second["webhook-signature"]
    assert first["Authorization"] != second["Authorization"]
    for h in (first, second):
        assert h["webhook-id"] == h["Idempotency-Key"] == V2_ID
    claims = [decode(h["Authorization"][7:], JWT_SECRET) for h in (first, second)]
    assert claims[1]["iat"] - claims[0]["iat"] == 7
    assert claims[0]["jti"] != claims[1]["jti"]


# ------------------------------------------------------------ check_auth_settings


def test_no_mode_configured_is_config_error(make_settings) -> None:
    with pytest.raises(ConfigError) as info:
        check_auth_settings(make_settings())
    assert "JENKINS_API_KEY" in (info.value.cause or "")
    assert info.value.fix


def test_good_secrets_give_no_warning(make_settings) -> None:
    settings = make_settings(
        api_key="k", jwt_secret="j" * 32, signature_secret=f"{whsec(24)} {whsec(32, 1)}"
    )
    assert check_auth_settings(settings) == []


def test_short_keys_warn_without_the_secret(make_settings) -> None:
    short_whsec = whsec(16)
    settings = make_settings(jwt_secret="short-jwt", signature_secret=short_whsec)
    warnings = check_auth_settings(settings)
    assert len(warnings) == 2
    assert any("JENKINS_SIGNATURE_SECRET" in w and "16 bytes" in w for w in warnings)
    assert any("JENKINS_JWT_SECRET" in w for w in warnings)
    assert not any("short-jwt" in w or short_whsec in w for w in warnings)


def test_short_raw_hmac_secret_warns(make_settings) -> None:
    warnings = check_auth_settings(make_settings(signature_secret="tiny-secret"))
    assert warnings and "11 bytes" in warnings[0]


def test_bad_whsec_refused_by_check(make_settings) -> None:
    with pytest.raises(ConfigError):
        check_auth_settings(make_settings(signature_secret="whsec_***"))


def test_random_whsec_roundtrip() -> None:
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    sig = signature_header([secret], "msg_x", 1, b"{}")
    when = datetime.fromtimestamp(1, tz=timezone.utc)
    assert Webhook(secret).sign("msg_x", when, "{}") == sig
