"""Standard Webhooks signing shared by the network floors (stdlib only)."""

import base64
import hashlib
import hmac


def hmac_key(secret: str) -> bytes:
    secret = secret.strip()
    if secret.startswith("whsec_"):
        encoded = secret[len("whsec_") :]
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    return secret.encode("utf-8")


def headers(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict:
    to_sign = f"{msg_id}.{timestamp}.".encode("ascii") + body
    signature = base64.b64encode(hmac.new(key, to_sign, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "User-Agent": "ci-report-floor/1",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + signature,
        "Idempotency-Key": msg_id,
    }
