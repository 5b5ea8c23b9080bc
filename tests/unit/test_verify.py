"""Receiver-side verification (ci_report.verify) against requests signed by ci-report."""

from __future__ import annotations

import base64
import time

import jwt
import pytest

from ci_report.callback.auth import body_sha256, sign_request
from ci_report.verify import CallbackVerificationError, CallbackVerifier

pytestmark = pytest.mark.usefixtures("clean_env")

URL = "https://platform.example.com/api/jenkins/callback"
BODY = b'{"runId":64,"status":"failed","name":"\xc3\xa9"}'
ID = "msg_0123456789abcdef0123456789abcdef"
API_KEY = "api-key-0123456789"
JWT_SECRET = "jwt-secret-0123456789abcdef0123456789"
WHSEC = "whsec_" + base64.b64encode(b"k" * 32).decode()
WHSEC_OLD = "whsec_" + base64.b64encode(b"o" * 32).decode()
RAW_SECRET = "raw-hmac-secret-0123456789abcdef"


def signed(make_settings, now=None, body=BODY, **secrets) -> dict:
    settings = make_settings(**secrets)
    return sign_request(settings, body, ID, url=URL, now=now, subject="team/app#42")


def verifier(**kw) -> CallbackVerifier:
    kw.setdefault("jwt_audience", URL)
    return CallbackVerifier(**kw)


ALL = dict(api_key=API_KEY, jwt_secret=JWT_SECRET, signature_secret=WHSEC)
ALL_V = dict(api_keys=[API_KEY], jwt_secrets=[JWT_SECRET], signature_secrets=[WHSEC])


# ------------------------------------------------------------------------ accept


@pytest.mark.parametrize(
    ("sender", "receiver", "mode"),
    [
        ({"api_key": API_KEY}, {"api_keys": [API_KEY]}, "api-key"),
        ({"jwt_secret": JWT_SECRET}, {"jwt_secrets": [JWT_SECRET]}, "jwt"),
        ({"signature_secret": WHSEC}, {"signature_secrets": [WHSEC]}, "hmac"),
        ({"signature_secret": RAW_SECRET}, {"signature_secrets": [RAW_SECRET]}, "hmac"),
    ],
)
def test_accepts_each_mode(make_settings, sender, receiver, mode) -> None:
    headers = signed(make_settings, **sender)
    result = verifier(**receiver).verify(BODY, headers)
    assert result.modes == [mode]
    assert result.webhook_id == ID
    assert result.payload["runId"] == 64
    assert result.body == BODY


def test_accepts_all_modes(make_settings) -> None:
    headers = signed(make_settings, **ALL)
    result = verifier(**ALL_V).verify(BODY, headers)
    assert result.modes == ["api-key", "jwt", "hmac"]


def test_header_names_case_insensitive(make_settings) -> None:
    headers = {k.upper(): v for k, v in signed(make_settings, **ALL).items()}
    assert verifier(**ALL_V).verify(BODY, headers).modes == ["api-key", "jwt", "hmac"]


def test_credentials_of_modes_not_enabled_are_ignored(make_settings) -> None:
    headers = signed(make_settings, api_key="other-key", signature_secret=WHSEC)
    assert verifier(signature_secrets=[WHSEC]).verify(BODY, headers).modes == ["hmac"]


def test_rotation_receiver_accepts_old_or_new(make_settings) -> None:
    v = verifier(signature_secrets=[WHSEC, WHSEC_OLD], jwt_secrets=[JWT_SECRET, "new" * 12])
    for secret in (WHSEC, WHSEC_OLD):
        assert v.verify(BODY, signed(make_settings, signature_secret=secret)).modes == ["hmac"]
    assert v.verify(BODY, signed(make_settings, jwt_secret="new" * 12)).modes == ["jwt"]


def test_rotation_sender_signs_with_both(make_settings) -> None:
    headers = signed(make_settings, signature_secret=f"{WHSEC} {WHSEC_OLD}")
    assert verifier(signature_secrets=[WHSEC_OLD]).verify(BODY, headers).modes == ["hmac"]
    assert verifier(signature_secrets=[WHSEC]).verify(BODY, headers).modes == ["hmac"]


def test_timestamp_within_tolerance(make_settings) -> None:
    now = time.time()
    headers = signed(make_settings, now=now - 290, signature_secret=WHSEC)
    assert verifier(signature_secrets=[WHSEC]).verify(BODY, headers, now=now).modes == ["hmac"]


# ------------------------------------------------------------------------ reject


def rejects(v: CallbackVerifier, body: bytes, headers: dict, **kw) -> CallbackVerificationError:
    with pytest.raises(CallbackVerificationError) as info:
        v.verify(body, headers, **kw)
    return info.value


@pytest.mark.parametrize(
    "sender",
    [
        {"api_key": API_KEY, "signature_secret": WHSEC},
        {"jwt_secret": JWT_SECRET},
        {"signature_secret": WHSEC},
    ],
)
def test_rejects_tampered_body(make_settings, sender) -> None:
    headers = signed(make_settings, **sender)
    err = rejects(verifier(**ALL_V), BODY.replace(b"failed", b"passed"), headers)
    assert err.mode in ("jwt", "hmac")


def test_rejects_reserialised_body(make_settings) -> None:
    import json

    headers = signed(make_settings, signature_secret=WHSEC)
    reserialised = json.dumps(json.loads(BODY)).encode()
    rejects(verifier(signature_secrets=[WHSEC]), reserialised, headers)


@pytest.mark.parametrize(
    ("sender", "receiver"),
    [
        ({"api_key": "wrong-key-xyz"}, {"api_keys": [API_KEY]}),
        ({"jwt_secret": "wrong-secret" * 4}, {"jwt_secrets": [JWT_SECRET]}),
        ({"signature_secret": WHSEC_OLD}, {"signature_secrets": [WHSEC]}),
    ],
)
def test_rejects_wrong_key(make_settings, sender, receiver) -> None:
    err = rejects(verifier(**receiver), BODY, signed(make_settings, **sender))
    assert err.mode in ("api-key", "jwt", "hmac")


@pytest.mark.parametrize("offset", [-301, 301, -3600])
def test_rejects_stale_or_future_timestamp(make_settings, offset) -> None:
    now = time.time()
    headers = signed(make_settings, now=now + offset, signature_secret=WHSEC)
    err = rejects(verifier(signature_secrets=[WHSEC]), BODY, headers, now=now)
    assert "tolerance" in err.reason


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_rejects_missing_headers(make_settings, missing) -> None:
    headers = signed(make_settings, signature_secret=WHSEC)
    del headers[missing]
    rejects(verifier(signature_secrets=[WHSEC]), BODY, headers)


@pytest.mark.parametrize("ts", ["1700000000.5", "abc", "", "²", "-5"])
def test_rejects_malformed_timestamp(make_settings, ts) -> None:
    headers = signed(make_settings, signature_secret=WHSEC)
    headers["webhook-timestamp"] = ts
    rejects(verifier(signature_secrets=[WHSEC]), BODY, headers)


def test_rejects_id_with_dot(make_settings) -> None:
    headers = signed(make_settings, signature_secret=WHSEC)
    headers["webhook-id"] = "msg_a.b"
    rejects(verifier(signature_secrets=[WHSEC]), BODY, headers)


def test_rejects_id_changed_after_signing(make_settings) -> None:
    headers = signed(make_settings, jwt_secret=JWT_SECRET, signature_secret=WHSEC)
    headers["webhook-id"] = "msg_ffffffffffffffffffffffffffffffff"
    rejects(verifier(signature_secrets=[WHSEC]), BODY, headers)
    headers.pop("webhook-signature")
    err = rejects(verifier(jwt_secrets=[JWT_SECRET]), BODY, headers)
    assert "webhook_id" in err.reason


@pytest.mark.parametrize(
    ("bad", "good"),
    [
        ({"api_key": "wrong-key-xyz"}, {"signature_secret": WHSEC, "jwt_secret": JWT_SECRET}),
        ({"jwt_secret": "wrong-secret" * 4}, {"api_key": API_KEY, "signature_secret": WHSEC}),
        ({"signature_secret": WHSEC_OLD}, {"api_key": API_KEY, "jwt_secret": JWT_SECRET}),
    ],
)
def test_rejects_wrong_credential_even_when_another_passes(make_settings, bad, good) -> None:
    headers = signed(make_settings, **good, **bad)
    err = rejects(verifier(**ALL_V), BODY, headers)
    assert (
        err.mode
        == {"api_key": "api-key", "jwt_secret": "jwt", "signature_secret": "hmac"}[next(iter(bad))]
    )


def test_rejects_no_accepted_credential(make_settings) -> None:
    headers = signed(make_settings, api_key=API_KEY)
    err = rejects(verifier(signature_secrets=[WHSEC]), BODY, headers)
    assert "no accepted credential" in err.reason


def test_rejects_garbage_signature_entries(make_settings) -> None:
    headers = signed(make_settings, signature_secret=WHSEC)
    for value in ("v1", "v1,", "v1,@@@", "v2,abcd", "v1a,abcd", "  "):
        headers["webhook-signature"] = value
        rejects(verifier(signature_secrets=[WHSEC]), BODY, headers)


def _token(claims: dict, secret: str = JWT_SECRET, alg: str = "HS256", **kw) -> str:
    return jwt.encode(claims, secret.encode() if alg != "none" else None, algorithm=alg, **kw)


def _claims(now: float, **over) -> dict:
    claims = {
        "iss": "ci-report",
        "sub": "team/app#42",
        "aud": URL,
        "iat": int(now) - 30,
        "nbf": int(now) - 30,
        "exp": int(now) + 300,
        "jti": "j1",
        "webhook_id": ID,
        "body_sha256": body_sha256(BODY),
    }
    claims.update(over)
    return claims


def _jwt_headers(token: str, now: float) -> dict:
    return {
        "webhook-id": ID,
        "webhook-timestamp": str(int(now)),
        "Authorization": f"Bearer {token}",
    }


def test_handmade_jwt_accepted() -> None:
    now = time.time()
    headers = _jwt_headers(_token(_claims(now)), now)
    assert verifier(jwt_secrets=[JWT_SECRET]).verify(BODY, headers).modes == ["jwt"]


def test_rejects_jwt_alg_none() -> None:
    now = time.time()
    token = _token(_claims(now), alg="none")
    err = rejects(verifier(jwt_secrets=[JWT_SECRET]), BODY, _jwt_headers(token, now))
    assert err.mode == "jwt"


def test_rejects_jwt_wrong_body_hash() -> None:
    now = time.time()
    token = _token(_claims(now, body_sha256=body_sha256(b"{}")))
    err = rejects(verifier(jwt_secrets=[JWT_SECRET]), BODY, _jwt_headers(token, now))
    assert "body_sha256" in err.reason


def test_rejects_jwt_too_long_lifetime() -> None:
    now = time.time()
    token = _token(_claims(now, exp=int(now) + 3600))
    err = rejects(verifier(jwt_secrets=[JWT_SECRET]), BODY, _jwt_headers(token, now))
    assert "lifetime" in err.reason


@pytest.mark.parametrize(
    "over",
    [
        {"exp": 1_000_000_000},  # expired long ago
        {"aud": "https://elsewhere/api/jenkins/callback"},
        {"iss": "someone-else"},
        {"iat": 4_000_000_000},  # issued in the future
    ],
)
def test_rejects_jwt_bad_claims(over) -> None:
    now = time.time()
    token = _token(_claims(now, **over))
    rejects(verifier(jwt_secrets=[JWT_SECRET]), BODY, _jwt_headers(token, now))


@pytest.mark.parametrize("claim", ["exp", "iat", "jti", "webhook_id", "body_sha256"])
def test_rejects_jwt_missing_required_claim(claim) -> None:
    now = time.time()
    claims = _claims(now)
    del claims[claim]
    rejects(verifier(jwt_secrets=[JWT_SECRET]), BODY, _jwt_headers(_token(claims), now))


def test_jwt_leeway_for_small_clock_differences() -> None:
    now = time.time()
    token = _token(_claims(now, exp=int(now) - 30, iat=int(now) - 300))
    assert verifier(jwt_secrets=[JWT_SECRET]).verify(BODY, _jwt_headers(token, now)).modes == [
        "jwt"
    ]


def test_verifier_needs_a_secret() -> None:
    with pytest.raises(ValueError):
        CallbackVerifier(signature_secrets=["  "])


def test_enabled_modes() -> None:
    assert verifier(**ALL_V).enabled_modes == ["api-key", "jwt", "hmac"]


# ------------------------------------------------------------------------ hostile headers


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("webhook-timestamp", "9" * 5000),  # int() of 5000 digits raised ValueError out of verify
        ("webhook-timestamp", "1" * 13),
        ("webhook-id", "m" * 65_000),
        ("webhook-id", "msg_\x00nul"),
        ("webhook-signature", "v1," + "A" * 60_000),
        ("x-api-key", "k" * 60_000),
    ],
)
def test_malformed_headers_raise_only_verification_errors(make_settings, name, value) -> None:
    headers = signed(make_settings, api_key=API_KEY, signature_secret=WHSEC)
    headers[name] = value
    rejects(verifier(api_keys=[API_KEY], signature_secrets=[WHSEC]), BODY, headers)


def test_overlong_jwt_is_refused_before_decoding(make_settings) -> None:
    headers = signed(make_settings, jwt_secret=JWT_SECRET)
    headers["Authorization"] = "Bearer " + "e" * 10_000
    err = rejects(verifier(jwt_secrets=[JWT_SECRET]), BODY, headers)
    assert "too long" in err.reason


def test_headers_are_verified_without_the_body(make_settings) -> None:
    """Key, JWT signature and claims, timestamp and shape are known before the body is read;
    the body-bound checks (HMAC, JWT body hash) come after."""
    v = verifier(**ALL_V)
    pending = v.verify_headers(signed(make_settings, **ALL))
    assert pending.modes == ["api-key", "jwt", "hmac"]
    assert v.verify_body(pending, BODY).modes == ["api-key", "jwt", "hmac"]
    with pytest.raises(CallbackVerificationError):
        v.verify_body(pending, BODY + b" ")
    wrong_key = signed(make_settings, api_key="wrong-key-xyz", signature_secret=WHSEC)
    with pytest.raises(CallbackVerificationError):
        v.verify_headers(wrong_key)


@pytest.mark.parametrize(
    ("require", "sender", "ok"),
    [
        (["hmac"], {"api_key": API_KEY}, False),
        (["hmac"], {"api_key": API_KEY, "signature_secret": WHSEC}, True),
        (["jwt"], {"signature_secret": WHSEC}, False),
        (["jwt", "hmac"], {"jwt_secret": JWT_SECRET, "signature_secret": WHSEC}, True),
        (["jwt", "hmac"], {"jwt_secret": JWT_SECRET}, False),
    ],
)
def test_required_modes(make_settings, require, sender, ok) -> None:
    v = verifier(**ALL_V, require=require)
    headers = signed(make_settings, **sender)
    if ok:
        assert v.verify(BODY, headers).modes
    else:
        assert "required credential not presented" in rejects(v, BODY, headers).reason


def test_api_key_alone_gives_no_integrity_unless_a_signature_is_required(make_settings) -> None:
    """Finding 9: the right X-Api-Key plus a tampered body is accepted unless HMAC/JWT is
    required; with ``require`` the tampered body is refused."""
    headers = signed(make_settings, api_key=API_KEY)
    tampered = BODY.replace(b"failed", b"passed")
    assert verifier(**ALL_V).verify(tampered, headers).modes == ["api-key"]
    rejects(verifier(**ALL_V, require=["hmac"]), tampered, headers)


def test_require_needs_the_mode_configured() -> None:
    with pytest.raises(ValueError, match="not configured: hmac"):
        CallbackVerifier(api_keys=[API_KEY], require=["hmac"])
    with pytest.raises(ValueError, match="unknown"):
        CallbackVerifier(api_keys=[API_KEY], require=["basic"])


# ------------------------------------------------------------------------ Standard Webhooks

# the spec repository's own vector (standard-webhooks libraries/python/tests/test_webhooks.py,
# test_sign_function)
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TS = 1614265330
SW_BODY = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_official_standard_webhooks_vector() -> None:
    headers = {
        "webhook-id": SW_ID,
        "webhook-timestamp": str(SW_TS),
        "webhook-signature": SW_SIGNATURE,
    }
    v = CallbackVerifier(signature_secrets=[SW_SECRET])
    assert v.verify(SW_BODY, headers, now=SW_TS).modes == ["hmac"]
    headers["webhook-signature"] = "v1,h0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    rejects(v, SW_BODY, headers, now=SW_TS)
    # every byte of the MAC counts: its last byte changed, the MAC cut short (down to one
    # byte) or extended are each refused
    mac = base64.b64decode(SW_SIGNATURE[len("v1,") :])
    for forged in (mac[:-1] + bytes([mac[-1] ^ 1]), mac[:16], mac[:1], mac + b"\0"):
        headers["webhook-signature"] = "v1," + base64.b64encode(forged).decode()
        rejects(v, SW_BODY, headers, now=SW_TS)


@pytest.mark.parametrize("secret", [WHSEC, RAW_SECRET])
def test_requests_signed_by_the_official_library_are_accepted(secret) -> None:
    from datetime import datetime, timezone

    from standardwebhooks.webhooks import Webhook

    official = Webhook(secret if secret.startswith("whsec_") else secret.encode())
    now = int(time.time())
    signature = official.sign(ID, datetime.fromtimestamp(now, tz=timezone.utc), BODY.decode())
    headers = {"webhook-id": ID, "webhook-timestamp": str(now), "webhook-signature": signature}
    assert CallbackVerifier(signature_secrets=[secret]).verify(BODY, headers).modes == ["hmac"]
    rejects(CallbackVerifier(signature_secrets=[secret]), BODY + b" ", headers)


@pytest.mark.parametrize("secret", [WHSEC, RAW_SECRET])
def test_the_official_library_accepts_what_ci_report_signs(make_settings, secret) -> None:
    from standardwebhooks.webhooks import Webhook

    headers = signed(make_settings, signature_secret=secret)
    official = Webhook(secret if secret.startswith("whsec_") else secret.encode())
    official.verify(BODY, headers, json_parse=False)  # raises on a mismatch


def test_verify_imports_without_click_requests_or_jwt() -> None:
    """Platforms import ci_report.verify alone: it must load with those three blocked (PyJWT
    is needed only once a JWT is checked)."""
    import subprocess
    import sys

    code = (
        "import builtins, sys\n"
        "real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name.split('.')[0] in ('click', 'requests', 'jwt'):\n"
        "        raise ImportError('blocked ' + name)\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        "from ci_report.verify import CallbackVerifier\n"
        "v = CallbackVerifier(api_keys=['k' * 16])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('click', 'requests', 'jwt')))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
