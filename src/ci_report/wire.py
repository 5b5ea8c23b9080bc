"""Constants of the callback wire contract (docs/design.md), defined once.

The sender (``callback/``), the reference receiver (``platform/receiver.py``), the doctor
(``callback/diagnose.py``) and the stand-alone verifier (``verify.py``) all read them from here.
This module imports nothing, so ``verify.py`` stays importable without click, requests or jwt.
"""

from __future__ import annotations

__all__ = ["CALLBACK_PATH", "SIGNATURE_TOLERANCE_S", "TEST_PATH"]

# where a platform serves callbacks: API_CALLBACK_URL + CALLBACK_PATH
CALLBACK_PATH = "/api/jenkins/callback"
# the reachability check's route (ci-report diagnose, the receiver's test endpoint)
TEST_PATH = CALLBACK_PATH + "/test"
# how far a webhook-timestamp or a JWT's iat may be from the receiver's clock, in seconds
# (Standard Webhooks' reference libraries use the same five minutes)
SIGNATURE_TOLERANCE_S = 300
