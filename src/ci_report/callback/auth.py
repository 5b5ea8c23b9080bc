"""Request authentication: API key, JWT (HS256) and Standard Webhooks HMAC signatures.

Every configured mode is sent together. Headers are computed per attempt: the timestamp, the
JWT and the signatures are fresh each time; the delivery id and the body never change.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
import uuid
from typing import TYPE_CHECKING, Optional, Sequence

from .. import USER_AGENT
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import Settings

MODES = ("api-key", "jwt", "hmac")
JWT_LIFETIME_S = 300
JWT_BACKDATE_S = 30
MIN_HMAC_KEY_BYTES = 24
MIN_JWT_KEY_BYTES = 32


def hmac_key(secret: str) -> bytes:
    """Standard Webhooks key derivation: ``whsec_`` + base64 -> decoded bytes; any other value
    is a raw secret used as UTF-8 bytes. Invalid base64 is refused (the official library would
    silently ignore bad characters)."""
    secret = secret.strip()
    if secret.startswith("whsec_"):
        encoded = secret[len("whsec_") :]
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(
                "JENKINS_SIGNATURE_SECRET: a whsec_ secret is not valid base64",
                fix="use whsec_ followed by standard base64 of at least 24 random bytes, "
                "e.g. python3 -c \"import os,base64;print('whsec_'+base64.b64encode("
                'os.urandom(32)).decode())"',
            ) from None
        if not key:
            raise ConfigError("JENKINS_SIGNATURE_SECRET: the whsec_ secret is empty")
        return key
    return secret.encode("utf-8")


def hmac_signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256(key, "{id}.{ts}.{body}")>`` (standard base64, padded)."""
    to_sign = msg_id.encode("ascii") + b"." + str(int(timestamp)).encode("ascii") + b"." + body
    digest = hmac.new(key, to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,`` entry per secret, separated by single spaces (key rotation)."""
    return " ".join(hmac_signature(hmac_key(s), msg_id, timestamp, body) for s in secrets)


def body_sha256(body: bytes) -> str:
    """base64url without padding of SHA-256(body): the JWT ``body_sha256`` claim."""
    return base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode("ascii")


def make_jwt(
    secret: str,
    *,
    issuer: str,
    audience: str,
    subject: str,
    webhook_id: str,
    body: bytes,
    now: Optional[float] = None,
) -> str:
    """An HS256 token bound to this request's id and body, valid five minutes."""
    import jwt  # PyJWT; imported here to keep start-up fast

    now_i = int(time.time() if now is None else now)
    claims = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": now_i - JWT_BACKDATE_S,
        "nbf": now_i - JWT_BACKDATE_S,
        "exp": now_i + JWT_LIFETIME_S,
        "jti": uuid.uuid4().hex,
        "webhook_id": webhook_id,
        "body_sha256": body_sha256(body),
    }
    return jwt.encode(claims, secret.strip().encode("utf-8"), algorithm="HS256")


def check_auth_settings(settings: Settings) -> list[str]:
    """Refuse a configuration that cannot authenticate; return warnings for weak secrets."""
    modes = settings.auth_modes
    if not modes:
        raise ConfigError(
            "no authentication configured for the callback",
            cause="none of JENKINS_API_KEY, JENKINS_JWT_SECRET, JENKINS_SIGNATURE_SECRET is set",
            fix="bind at least one of them with withCredentials (see the README), or use "
            "--dry-run to only build the payload",
        )
    warnings = []
    for secret in settings.signature_secrets:
        key = hmac_key(secret)  # raises on bad base64
        if len(key) < MIN_HMAC_KEY_BYTES:
            warnings.append(
                f"JENKINS_SIGNATURE_SECRET is short ({len(key)} bytes); "
                f"use at least {MIN_HMAC_KEY_BYTES} random bytes"
            )
    if settings.jwt_secret and len(settings.jwt_secret.strip().encode()) < MIN_JWT_KEY_BYTES:
        warnings.append(
            f"JENKINS_JWT_SECRET is shorter than {MIN_JWT_KEY_BYTES} bytes (RFC 7518 3.2); "
            "use a longer random secret"
        )
    return warnings


def sign_request(
    settings: Settings,
    body: bytes,
    delivery_id: str,
    *,
    url: str,
    modes: Optional[Sequence[str]] = None,
    now: Optional[float] = None,
    subject: Optional[str] = None,
) -> dict[str, str]:
    """All headers of one attempt: metadata plus one credential per configured mode (or only
    ``modes``). Call again for every attempt."""
    now_f = time.time() if now is None else now
    timestamp = int(now_f)
    wanted = settings.auth_modes if modes is None else list(modes)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": delivery_id,
        "webhook-timestamp": str(timestamp),
        "Idempotency-Key": delivery_id,
    }
    if "api-key" in wanted and settings.api_key:
        headers["X-Api-Key"] = settings.api_key.strip()
    if "jwt" in wanted and settings.jwt_secret:
        if subject is None:
            from ..jenkins_env import BuildContext

            subject = BuildContext.from_env().identity
        token = make_jwt(
            settings.jwt_secret,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience or url,
            subject=subject,
            webhook_id=delivery_id,
            body=body,
            now=now_f,
        )
        headers["Authorization"] = f"Bearer {token}"
    if "hmac" in wanted and settings.signature_secrets:
        headers["webhook-signature"] = signature_header(
            settings.signature_secrets, delivery_id, timestamp, body
        )
    return headers


# -- outbox binding: which endpoint and which credentials an entry belongs to ---------------
_FINGERPRINT_LABEL = b"ci-report/outbox/credential-fingerprint/v1"
_SEAL_LABEL = b"ci-report/outbox/entry-seal/v1"


def _credential_material(settings: Settings) -> bytes:
    """Every credential a request is signed with, labelled and sorted (never stored)."""
    values = []
    if settings.api_key:
        values.append("api-key=" + settings.api_key.strip())
    if settings.jwt_secret:
        values.append("jwt=" + settings.jwt_secret.strip())
    values.extend("hmac=" + s for s in settings.signature_secrets)
    return "\n".join(sorted(values)).encode("utf-8")


class EntryBinding:
    """Binds an outbox entry to its endpoint and to the credentials it was made with.

    ``fingerprint``: HMAC-SHA256 over the sorted credential values, keyed with a fixed label,
    as hex (it identifies the credentials, it reveals nothing usable). ``seal``: HMAC-SHA256
    keyed with a key derived from the credentials, over the entry's id, endpoint, kind, subject
    and body: whoever does not hold the credentials cannot make an entry they would sign."""

    def __init__(self, settings: Settings, endpoint: Optional[str]) -> None:
        material = _credential_material(settings)
        self.endpoint = endpoint
        self.fingerprint = hmac.new(_FINGERPRINT_LABEL, material, hashlib.sha256).hexdigest()
        self._seal_key = hmac.new(_SEAL_LABEL, material, hashlib.sha256).digest()

    def seal(
        self,
        *,
        delivery_id: str,
        endpoint: Optional[str],
        kind: str,
        subject: Optional[str],
        body: bytes,
    ) -> str:
        fields = [
            delivery_id,
            endpoint or "",
            kind,
            subject or "",
            hashlib.sha256(body).hexdigest(),
        ]
        message = "\n".join(fields).encode("utf-8")
        return hmac.new(self._seal_key, message, hashlib.sha256).hexdigest()

    def verify(
        self,
        seal: Optional[str],
        *,
        delivery_id: str,
        endpoint: Optional[str],
        kind: str,
        subject: Optional[str],
        body: bytes,
    ) -> bool:
        if not isinstance(seal, str):
            return False
        expected = self.seal(
            delivery_id=delivery_id, endpoint=endpoint, kind=kind, subject=subject, body=body
        )
        return hmac.compare_digest(expected, seal)
