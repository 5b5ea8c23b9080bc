"""Receiver-side verification of ci-report callbacks, for platform teams.

Pure Python plus PyJWT. Verify the raw body *before* parsing it (re-serialized JSON does not match
the signature). Policy: every credential the request presents and the platform has enabled must
pass; at least one must be present; credential kinds the platform has not configured are ignored.

    verifier = CallbackVerifier(signature_secrets=["whsec_..."], api_keys=["..."])
    verified = verifier.verify(raw_body, request.headers)   # raises CallbackVerificationError
    payload = verified.payload
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

DEFAULT_TOLERANCE_S = 300
DEFAULT_JWT_LEEWAY_S = 60
MAX_JWT_LIFETIME_S = 600


class CallbackVerificationError(Exception):
    """The request is not authentic. ``reason`` is for your logs; answer clients with a
    generic 401."""

    def __init__(self, reason: str, *, mode: Optional[str] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.mode = mode


@dataclass
class Verified:
    webhook_id: str
    timestamp: int
    modes: list[str]
    body: bytes
    _payload: Any = field(default=None, repr=False)

    @property
    def payload(self) -> Any:
        if self._payload is None:
            self._payload = json.loads(self.body.decode("utf-8"))
        return self._payload


def _hmac_key(secret: str) -> bytes:
    secret = secret.strip()
    if secret.startswith("whsec_"):
        encoded = secret[len("whsec_") :]
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    return secret.encode("utf-8")


def _b64url_sha256(body: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode()


class CallbackVerifier:
    def __init__(
        self,
        *,
        signature_secrets: Sequence[str] = (),
        jwt_secrets: Sequence[str] = (),
        api_keys: Sequence[str] = (),
        jwt_audience: Optional[str] = None,
        jwt_issuer: Optional[str] = "ci-report",
        tolerance_s: int = DEFAULT_TOLERANCE_S,
        jwt_leeway_s: int = DEFAULT_JWT_LEEWAY_S,
    ) -> None:
        self._hmac_keys = [_hmac_key(s) for s in signature_secrets if s and s.strip()]
        self._jwt_secrets = [s.strip().encode() for s in jwt_secrets if s and s.strip()]
        self._api_keys = [k.strip().encode() for k in api_keys if k and k.strip()]
        if not (self._hmac_keys or self._jwt_secrets or self._api_keys):
            raise ValueError("configure at least one of signature_secrets, jwt_secrets, api_keys")
        self.jwt_audience = jwt_audience
        self.jwt_issuer = jwt_issuer
        self.tolerance_s = tolerance_s
        self.jwt_leeway_s = jwt_leeway_s

    @property
    def enabled_modes(self) -> list[str]:
        modes = []
        if self._api_keys:
            modes.append("api-key")
        if self._jwt_secrets:
            modes.append("jwt")
        if self._hmac_keys:
            modes.append("hmac")
        return modes

    def verify(
        self, body: bytes, headers: Mapping[str, str], *, now: Optional[float] = None
    ) -> Verified:
        """Check every presented, enabled credential; return what was verified."""
        h = {str(k).lower(): str(v) for k, v in headers.items()}
        now = time.time() if now is None else now
        webhook_id = h.get("webhook-id", "").strip()
        if not webhook_id or "." in webhook_id:
            raise CallbackVerificationError("missing or malformed webhook-id header")
        ts_text = h.get("webhook-timestamp", "").strip()
        if not (ts_text.isascii() and ts_text.isdigit()):
            raise CallbackVerificationError("missing or non-integer webhook-timestamp header")
        timestamp = int(ts_text)
        if abs(now - timestamp) > self.tolerance_s:
            raise CallbackVerificationError(
                f"webhook-timestamp is {now - timestamp:+.0f} s from this server's clock "
                f"(tolerance {self.tolerance_s} s): check NTP on both sides"
            )
        passed: list[str] = []
        if self._api_keys and "x-api-key" in h:
            presented = h["x-api-key"].strip().encode()
            if not any(hmac.compare_digest(presented, k) for k in self._api_keys):
                raise CallbackVerificationError("X-Api-Key does not match", mode="api-key")
            passed.append("api-key")
        auth = h.get("authorization", "")
        if self._jwt_secrets and auth.lower().startswith("bearer "):
            self._verify_jwt(auth[7:].strip(), body, webhook_id)
            passed.append("jwt")
        if self._hmac_keys and "webhook-signature" in h:
            self._verify_signature(h["webhook-signature"], webhook_id, timestamp, body)
            passed.append("hmac")
        if not passed:
            raise CallbackVerificationError(
                "no accepted credential presented (enabled: " + ", ".join(self.enabled_modes) + ")"
            )
        return Verified(webhook_id=webhook_id, timestamp=timestamp, modes=passed, body=body)

    def _verify_signature(self, header: str, webhook_id: str, timestamp: int, body: bytes) -> None:
        to_sign = f"{webhook_id}.{timestamp}.".encode() + body
        expected = [hmac.new(k, to_sign, hashlib.sha256).digest() for k in self._hmac_keys]
        for entry in header.split():
            version, _, value = entry.partition(",")
            if version != "v1" or not value:
                continue
            try:
                presented = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                continue
            if any(hmac.compare_digest(presented, e) for e in expected):
                return
        raise CallbackVerificationError("no matching webhook-signature", mode="hmac")

    def _verify_jwt(self, token: str, body: bytes, webhook_id: str) -> None:
        import jwt

        last: Optional[Exception] = None
        for secret in self._jwt_secrets:
            try:
                claims = jwt.decode(
                    token,
                    secret,
                    algorithms=["HS256"],
                    audience=self.jwt_audience,
                    issuer=self.jwt_issuer,
                    leeway=self.jwt_leeway_s,
                    options={
                        "require": ["iat", "exp", "jti", "webhook_id", "body_sha256"],
                        "verify_aud": self.jwt_audience is not None,
                    },
                )
            except jwt.InvalidSignatureError as exc:
                last = exc
                continue
            except jwt.PyJWTError as exc:
                raise CallbackVerificationError(f"JWT rejected: {exc}", mode="jwt") from None
            if not hmac.compare_digest(str(claims["body_sha256"]), _b64url_sha256(body)):
                raise CallbackVerificationError("JWT body_sha256 does not match", mode="jwt")
            if claims["webhook_id"] != webhook_id:
                raise CallbackVerificationError("JWT webhook_id does not match", mode="jwt")
            if int(claims["exp"]) - int(claims["iat"]) > MAX_JWT_LIFETIME_S:
                raise CallbackVerificationError("JWT lifetime is too long", mode="jwt")
            return
        raise CallbackVerificationError(f"JWT signature invalid ({last})", mode="jwt")
