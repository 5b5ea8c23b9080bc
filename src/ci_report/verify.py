"""Receiver-side verification of ci-report callbacks, for platform teams.

Pure Python plus PyJWT. Verify the raw body *before* parsing it (re-serialized JSON does not match
the signature). Policy: every credential the request presents and the platform has enabled must
pass; at least one must be present; credential kinds the platform has not configured are ignored.

    verifier = CallbackVerifier(signature_secrets=["whsec_..."], api_keys=["..."])
    verified = verifier.verify(raw_body, request.headers)   # raises CallbackVerificationError
    payload = verified.payload

A server that must not read bodies of unauthenticated clients splits the two halves:
``pending = verifier.verify_headers(headers)`` checks everything the headers carry (shape and size
of every header, timestamp window, API key, JWT signature and claims, required modes) before the
body is read; ``verifier.verify_body(pending, body)`` then finishes the body-bound checks (the HMAC
signature, the JWT ``body_sha256``). Every malformed header raises CallbackVerificationError,
never anything else.

``require=["hmac"]`` (or ``"jwt"``) makes that credential mandatory. Without it, an API key alone
is accepted: an API key is a bearer secret and gives no integrity (whoever holds it can send any
body, and the unsigned ``webhook-id`` lets a captured body be applied again under a new id).
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

from .wire import SIGNATURE_TOLERANCE_S

DEFAULT_TOLERANCE_S = SIGNATURE_TOLERANCE_S
MODES = ("api-key", "jwt", "hmac")
# bounds on what a header may hold: nothing unbounded is parsed, compared or logged
MAX_ID_CHARS = 256
MAX_TIMESTAMP_DIGITS = 12
MAX_API_KEY_CHARS = 4096
MAX_JWT_CHARS = 8192
MAX_SIGNATURE_CHARS = 4096
MAX_SIGNATURE_ENTRIES = 16
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
class PendingVerification:
    """What :meth:`CallbackVerifier.verify_headers` established; finish with ``verify_body``."""

    webhook_id: str
    timestamp: int
    modes: list[str]
    signatures: list[bytes] = field(default_factory=list, repr=False)
    jwt_body_sha256: Optional[str] = field(default=None, repr=False)


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
        try:
            return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a whsec_ signature secret is not valid base64") from None
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
        require: Sequence[str] = (),
    ) -> None:
        self._hmac_keys = [_hmac_key(s) for s in signature_secrets if s and s.strip()]
        self._jwt_secrets = [s.strip().encode() for s in jwt_secrets if s and s.strip()]
        self._api_keys = [k.strip().encode() for k in api_keys if k and k.strip()]
        if not (self._hmac_keys or self._jwt_secrets or self._api_keys):
            raise ValueError("configure at least one of signature_secrets, jwt_secrets, api_keys")
        unknown = [m for m in require if m not in MODES]
        if unknown:
            raise ValueError(f"unknown mode(s) to require: {', '.join(unknown)}")
        missing = [m for m in require if m not in self.enabled_modes]
        if missing:
            raise ValueError(
                f"mode(s) required but not configured: {', '.join(missing)} "
                "(a required mode needs its secret)"
            )
        self.require = list(dict.fromkeys(require))
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
        return self.verify_body(self.verify_headers(headers, now=now), body)

    def verify_headers(
        self, headers: Mapping[str, str], *, now: Optional[float] = None
    ) -> PendingVerification:
        """Everything that can be checked before the body is read. Raises
        CallbackVerificationError (and nothing else) for any missing or malformed header."""
        h = {str(k).lower(): str(v) for k, v in headers.items()}
        now = time.time() if now is None else now
        webhook_id = h.get("webhook-id", "").strip()
        if (
            not webhook_id
            or len(webhook_id) > MAX_ID_CHARS
            or "." in webhook_id
            or not webhook_id.isprintable()
        ):
            raise CallbackVerificationError("missing or malformed webhook-id header")
        ts_text = h.get("webhook-timestamp", "").strip()
        if not (ts_text.isascii() and ts_text.isdigit()) or len(ts_text) > MAX_TIMESTAMP_DIGITS:
            raise CallbackVerificationError("missing or non-integer webhook-timestamp header")
        timestamp = int(ts_text)
        if abs(now - timestamp) > self.tolerance_s:
            raise CallbackVerificationError(
                f"webhook-timestamp is {now - timestamp:+.0f} s from this server's clock "
                f"(tolerance {self.tolerance_s} s): check NTP on both sides"
            )
        pending = PendingVerification(webhook_id=webhook_id, timestamp=timestamp, modes=[])
        if self._api_keys and "x-api-key" in h:
            presented = h["x-api-key"].strip()
            if len(presented) > MAX_API_KEY_CHARS or not any(
                hmac.compare_digest(presented.encode("utf-8", "replace"), k) for k in self._api_keys
            ):
                raise CallbackVerificationError("X-Api-Key does not match", mode="api-key")
            pending.modes.append("api-key")
        auth = h.get("authorization", "")
        if self._jwt_secrets and auth[:7].lower() == "bearer ":
            token = auth[7:].strip()
            if len(token) > MAX_JWT_CHARS:
                raise CallbackVerificationError("JWT is too long", mode="jwt")
            pending.jwt_body_sha256 = self._verify_jwt(token, webhook_id)
            pending.modes.append("jwt")
        if self._hmac_keys and "webhook-signature" in h:
            pending.signatures = _parse_signatures(h["webhook-signature"])
            pending.modes.append("hmac")
        if not pending.modes:
            raise CallbackVerificationError(
                "no accepted credential presented (enabled: " + ", ".join(self.enabled_modes) + ")"
            )
        missing = [m for m in self.require if m not in pending.modes]
        if missing:
            raise CallbackVerificationError(
                f"required credential not presented: {', '.join(missing)} "
                f"(presented: {', '.join(pending.modes)})",
                mode=missing[0],
            )
        return pending

    def verify_body(self, pending: PendingVerification, body: bytes) -> Verified:
        """The body-bound checks: the HMAC signature and the JWT ``body_sha256`` claim."""
        if "jwt" in pending.modes and not hmac.compare_digest(
            str(pending.jwt_body_sha256), _b64url_sha256(body)
        ):
            raise CallbackVerificationError("JWT body_sha256 does not match", mode="jwt")
        if "hmac" in pending.modes:
            self._verify_signature(pending.signatures, pending.webhook_id, pending.timestamp, body)
        return Verified(
            webhook_id=pending.webhook_id,
            timestamp=pending.timestamp,
            modes=list(pending.modes),
            body=body,
        )

    def _verify_signature(
        self, presented: Sequence[bytes], webhook_id: str, timestamp: int, body: bytes
    ) -> None:
        to_sign = f"{webhook_id}.{timestamp}.".encode() + body
        expected = [hmac.new(k, to_sign, hashlib.sha256).digest() for k in self._hmac_keys]
        for signature in presented:
            if any(hmac.compare_digest(signature, e) for e in expected):
                return
        raise CallbackVerificationError("no matching webhook-signature", mode="hmac")

    def _verify_jwt(self, token: str, webhook_id: str) -> str:
        """Signature and claims of the JWT; returns its ``body_sha256`` claim."""
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
                raise CallbackVerificationError(
                    f"JWT rejected: {_short(str(exc))}", mode="jwt"
                ) from None
            except (ValueError, TypeError, OverflowError):  # odd claim types PyJWT lets through
                raise CallbackVerificationError(
                    "JWT rejected: malformed claims", mode="jwt"
                ) from None
            if claims["webhook_id"] != webhook_id:
                raise CallbackVerificationError("JWT webhook_id does not match", mode="jwt")
            try:
                lifetime = int(claims["exp"]) - int(claims["iat"])
            except (ValueError, TypeError, OverflowError):
                raise CallbackVerificationError(
                    "JWT rejected: malformed claims", mode="jwt"
                ) from None
            if lifetime > MAX_JWT_LIFETIME_S:
                raise CallbackVerificationError("JWT lifetime is too long", mode="jwt")
            return str(claims["body_sha256"])
        raise CallbackVerificationError(f"JWT signature invalid ({last})", mode="jwt")


def _parse_signatures(header: str) -> list[bytes]:
    """The ``v1,<base64>`` entries of a ``webhook-signature`` header (others are skipped)."""
    if len(header) > MAX_SIGNATURE_CHARS:
        raise CallbackVerificationError("webhook-signature header is too long", mode="hmac")
    signatures = []
    for entry in header.split()[:MAX_SIGNATURE_ENTRIES]:
        version, _, value = entry.partition(",")
        if version != "v1" or not value:
            continue
        try:
            signatures.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not signatures:
        raise CallbackVerificationError("no well-formed v1 webhook-signature", mode="hmac")
    return signatures


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
