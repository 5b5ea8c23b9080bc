"""End to end: the real CLI against the project's receiver, in each auth mode and all together."""

from __future__ import annotations

import pytest
from fault_server import (
    API_KEY,
    AUTH_ENV,
    JWT_SECRET,
    SAMPLE_COUNTS,
    WHSEC,
    applied,
    receiver_requests_by_id,
)
from standardwebhooks.webhooks import Webhook

from ci_report.verify import CallbackVerifier

pytestmark = pytest.mark.integration

MODES = {
    "api-key": {"JENKINS_API_KEY": API_KEY},
    "jwt": {"JENKINS_JWT_SECRET": JWT_SECRET},
    "hmac": {"JENKINS_SIGNATURE_SECRET": WHSEC},
    "all": AUTH_ENV,
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_delivered_verified_and_deduped(mode, cli, receiver, fault_servers):
    # an "ok" fault server in front of the receiver captures the raw request as sent
    tap = fault_servers(receiver.url, default="ok")
    env = cli.env(auth=False, CI_REPORT_URL=tap.url, RUN_ID="7001", **MODES[mode])
    first = cli.run(["callback", "--strict", "--build-result", "UNSTABLE"], env=env)
    assert first.returncode == 0, first
    assert "callback delivered" in first.stderr, first
    assert first.stdout == ""

    (execution,) = receiver.executions()
    assert execution["run_id"] == "7001"
    assert execution["status"] == "failed"
    assert (execution["passed"], execution["failed"], execution["skipped"], execution["total"]) == (
        SAMPLE_COUNTS["passed"],
        SAMPLE_COUNTS["failed"],
        SAMPLE_COUNTS["skipped"],
        SAMPLE_COUNTS["total"],
    )
    assert execution["payload"]["build"]["result"] == "UNSTABLE"
    assert execution["payload"]["build"]["buildNumber"] == 1
    expected_modes = ["api-key", "jwt", "hmac"] if mode == "all" else [mode]
    assert execution["modes"].split(",") == expected_modes
    assert execution["applied_count"] == 1

    result = cli.result()
    assert result["outcome"] == "delivered"
    assert result["attempts"] == 1
    assert result["deliveryId"] == execution["webhook_id"]
    assert cli.outbox_entries() == []

    (request,) = tap.requests
    headers = request.headers
    assert headers["webhook-id"] == headers["idempotency-key"] == result["deliveryId"]
    assert headers["user-agent"].startswith("ci-report/")
    verifier = CallbackVerifier(
        api_keys=[API_KEY], jwt_secrets=[JWT_SECRET], signature_secrets=[WHSEC]
    )
    verified = verifier.verify(request.body, headers)
    assert verified.modes == expected_modes
    assert verified.payload["totalCases"] == SAMPLE_COUNTS["total"]
    if "webhook-signature" in headers:
        # the official Standard Webhooks library accepts our signature
        official = Webhook(WHSEC).verify(request.body, headers)
        assert official["runId"] == 7001

    # a second run of the same build: same delivery id, applied once
    second = cli.run(["callback", "--strict", "--build-result", "UNSTABLE"], env=env)
    assert second.returncode == 0, second
    assert [r.webhook_id for r in tap.requests] == [result["deliveryId"]] * 2
    (execution,) = receiver.executions()
    assert execution["applied_count"] == 1
    assert receiver_requests_by_id(receiver, status=200) == {result["deliveryId"]: 2}
    assert applied(receiver)["7001"]["applied_count"] == 1


def test_rotated_whsec_secrets_verify_with_official_library(cli, receiver, fault_servers):
    old = "whsec_" + "b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZC1zZWNyZXQ="
    tap = fault_servers(receiver.url)
    env = cli.env(auth=False, CI_REPORT_URL=tap.url, JENKINS_SIGNATURE_SECRET=f"{old} {WHSEC}")
    res = cli.run(["callback", "--strict"], env=env)
    assert res.returncode == 0, res
    (request,) = tap.requests
    assert len(request.headers["webhook-signature"].split()) == 2
    for secret in (old, WHSEC):
        Webhook(secret).verify(request.body, request.headers)
    assert receiver.executions()[0]["applied_count"] == 1
