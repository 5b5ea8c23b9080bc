"""Delivery against a fault-injecting server: every fault, recovered or queued, then flushed.

All scenarios start at once (module fixture) so the retry back-offs overlap; each test then
waits for its own processes and checks them. Every scenario has its own run id, fault server,
workspace and outbox; they share one receiver.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest
from fault_server import (
    API_KEY,
    FAST_ENV,
    Cli,
    CliResult,
    FaultServer,
    applied,
    closed_port,
    receiver_requests_by_id,
)

pytestmark = pytest.mark.integration

MAX_ATTEMPTS = int(FAST_ENV["CI_REPORT_MAX_ATTEMPTS"])
RETRY_AFTER_S = 2
SLOW_S = 3  # longer than CI_REPORT_READ_TIMEOUT (1 s)

# behaviour -> what one such answer looks like in the fault server's script
FAULTS = {
    "drop": "drop",
    "reset": "reset",
    "500": "500",
    "503": "503",
    "429": f"429:{RETRY_AFTER_S}",
    "slow": f"slow:{SLOW_S}",
    "apply-then-500": "apply-then-500",
}
_run_ids = itertools.count(8100)


@dataclass
class Scenario:
    name: str
    cli: Cli
    run_id: str
    server: Optional[FaultServer]
    proc: Any
    env: dict[str, str]
    _result: Optional[CliResult] = field(default=None)

    def wait(self) -> CliResult:
        if self._result is None:
            out, err = self.proc.communicate(timeout=90)
            self._result = CliResult(self.proc.returncode, out, err, self.proc.args[3:])
        return self._result


def _start(tmp: Path, name: str, url: str, server: Optional[FaultServer], **env: str) -> Scenario:
    cli = Cli(tmp / name)
    run_id = str(next(_run_ids))
    full_env = cli.env(CI_REPORT_URL=url, RUN_ID=run_id, **env)
    proc = cli.popen(["callback", "--strict"], env=full_env)
    return Scenario(name, cli, run_id, server, proc, full_env)


@pytest.fixture(scope="module")
def module_receiver(tmp_path_factory: pytest.TempPathFactory):

    from fault_server import JWT_SECRET, WHSEC

    from ci_report.platform.receiver import start_receiver

    handle = start_receiver(
        tmp_path_factory.mktemp("recv") / "receiver.db",
        api_keys=[API_KEY],
        jwt_secrets=[JWT_SECRET],
        signature_secrets=[WHSEC],
    )
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def scenarios(module_receiver, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("faults")
    servers: list[FaultServer] = []
    started: dict[str, Scenario] = {}

    def server(script=(), default="ok") -> FaultServer:
        s = FaultServer(module_receiver.url, script=script, default=default)
        servers.append(s)
        return s

    for fault, behaviour in FAULTS.items():
        s = server([behaviour], default="ok")
        started[f"{fault}/recovers"] = _start(tmp, f"{fault}-recovers", s.url, s)
        s = server(default=behaviour)
        started[f"{fault}/persists"] = _start(tmp, f"{fault}-persists", s.url, s)
    with closed_port() as port:
        url = f"http://127.0.0.1:{port}/api/jenkins/callback"
        started["refused/persists"] = _start(tmp, "refused", url, None)
        # 4xx: the receiver refuses a wrong API key (the only credential sent)
        started["401"] = _start(
            tmp,
            "unauthorized",
            module_receiver.url,
            None,
            JENKINS_API_KEY="wrong-key-0000000000000000",
            JENKINS_JWT_SECRET="",
            JENKINS_SIGNATURE_SECRET="",
        )
        s = server(default="302")
        started["302"] = _start(tmp, "redirect", s.url, s)
        try:
            yield started
        finally:
            for sc in started.values():
                if sc.proc.poll() is None:
                    sc.proc.kill()
                sc.proc.communicate()
            for s in servers:
                s.stop()


def _flush_to(sc: Scenario, receiver: Any, *extra: str, **env: str) -> CliResult:
    flush_env = dict(sc.env, **env)
    return sc.cli.run(["flush", "--strict", "--url", receiver.url, *extra], env=flush_env)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_once_then_delivered_on_retry(fault, scenarios, module_receiver):
    sc = scenarios[f"{fault}/recovers"]
    res = sc.wait()
    assert res.returncode == 0, res
    assert "callback delivered" in res.stderr, res
    result = sc.cli.result()
    assert result["outcome"] == "delivered"
    assert result["attempts"] == 2
    requests = sc.server.requests
    assert [r.behaviour for r in requests] == [FAULTS[fault], "ok"]
    assert {r.webhook_id for r in requests} == {result["deliveryId"]}
    # the timestamp is fresh per attempt, and the request signed again
    assert requests[0].headers["webhook-timestamp"] <= requests[1].headers["webhook-timestamp"]
    if fault == "429":
        gap = requests[1].arrived - requests[0].arrived
        assert gap >= RETRY_AFTER_S, f"Retry-After {RETRY_AFTER_S} s not honoured: {gap:.2f} s"
    assert sc.cli.outbox_entries() == []
    execution = applied(module_receiver)[sc.run_id]
    assert execution["applied_count"] == 1
    expected_200s = 2 if fault == "apply-then-500" else 1  # the retry is deduped
    assert receiver_requests_by_id(module_receiver)[result["deliveryId"]] == expected_200s


@pytest.mark.parametrize("fault", [*sorted(FAULTS), "refused"])
def test_fault_persists_queued_then_flushed_once(fault, scenarios, module_receiver):
    sc = scenarios[f"{fault}/persists"]
    res = sc.wait()
    assert res.returncode == 75, res
    assert "NOT delivered, kept in the outbox" in res.stderr, res
    result = sc.cli.result()
    assert result["outcome"] == "queued"
    assert result["attempts"] == MAX_ATTEMPTS
    delivery_id = result["deliveryId"]
    if sc.server is not None:
        requests = sc.server.requests
        assert len(requests) == MAX_ATTEMPTS
        assert {r.webhook_id for r in requests} == {delivery_id}
        if fault == "429":
            gaps = [b.arrived - a.arrived for a, b in zip(requests, requests[1:])]
            assert min(gaps) >= RETRY_AFTER_S, gaps
    (entry,) = sc.cli.outbox_entries()
    assert entry["deliveryId"] == delivery_id
    assert entry["attempts"] == MAX_ATTEMPTS
    assert entry["rejected"] is False
    assert entry["lastError"]

    if fault == "apply-then-500":
        # applied by the first attempt already; the retries were deduped by the receiver
        assert applied(module_receiver)[sc.run_id]["applied_count"] == 1
    else:
        assert sc.run_id not in applied(module_receiver)

    flushed = _flush_to(sc, module_receiver)
    assert flushed.returncode == 0, flushed
    assert "1 delivered, 0 remaining" in flushed.stderr, flushed
    assert sc.cli.outbox_entries() == []
    assert applied(module_receiver)[sc.run_id]["applied_count"] == 1
    # a second flush has nothing to do
    again = _flush_to(sc, module_receiver)
    assert again.returncode == 0, again
    assert "outbox is empty" in again.stderr
    assert applied(module_receiver)[sc.run_id]["applied_count"] == 1


def test_401_rejected_not_retried_kept_then_flushed_with_fixed_key(scenarios, module_receiver):
    sc = scenarios["401"]
    res = sc.wait()
    assert res.returncode == 65, res
    assert "REJECTED" in res.stderr, res
    result = sc.cli.result()
    assert result["outcome"] == "rejected"
    assert result["attempts"] == 1
    assert result["statusCode"] == 401
    delivery_id = result["deliveryId"]
    assert receiver_requests_by_id(module_receiver).get(delivery_id) == 1  # not retried
    (entry,) = sc.cli.outbox_entries()
    assert entry["deliveryId"] == delivery_id
    assert entry["rejected"] is True
    assert entry["lastStatus"] == 401
    assert sc.run_id not in applied(module_receiver)

    # still wrong: flush keeps it (75 with --strict)
    still = _flush_to(sc, module_receiver)
    assert still.returncode == 75, still
    assert len(sc.cli.outbox_entries()) == 1
    # fixed configuration: the entry was made with the wrong key, so a plain flush leaves it
    # alone (never signs what other credentials made); flush --adopt, the operator's explicit
    # choice, re-binds it and delivers it once. The entry's endpoint is the one configured.
    fixed_env = dict(JENKINS_API_KEY=API_KEY, CI_REPORT_URL=sc.env["CI_REPORT_URL"])
    plain = sc.cli.run(["flush", "--strict"], env=dict(sc.env, **fixed_env))
    assert "left alone" in plain.stderr, plain
    assert len(sc.cli.outbox_entries()) == 1
    fixed = sc.cli.run(["flush", "--strict", "--adopt"], env=dict(sc.env, **fixed_env))
    assert fixed.returncode == 0, fixed
    assert sc.cli.outbox_entries() == []
    assert applied(module_receiver)[sc.run_id]["applied_count"] == 1


def test_302_not_followed(scenarios, module_receiver):
    sc = scenarios["302"]
    res = sc.wait()
    assert res.returncode == 65, res
    assert "redirect" in res.stderr
    result = sc.cli.result()
    assert result["outcome"] == "rejected"
    assert result["attempts"] == 1
    assert result["statusCode"] == 302
    assert len(sc.server.requests) == 1
    # the Location (the receiver itself) was never asked
    assert result["deliveryId"] not in receiver_requests_by_id(module_receiver)
    (entry,) = sc.cli.outbox_entries()
    assert entry["rejected"] is True


def test_tls_error_not_retried_and_ca_bundle_honoured(cli, tls_server):
    env = cli.env(CI_REPORT_URL=tls_server.url)
    untrusted = cli.run(["callback", "--strict"], env=env)
    assert untrusted.returncode == 75, untrusted
    assert "TLS error" in untrusted.stderr
    assert "--ca-bundle" in untrusted.stderr  # the fix is named
    result = cli.result()
    assert (result["outcome"], result["attempts"]) == ("queued", 1)  # not retried
    assert tls_server.answered == []
    assert len(cli.outbox_entries()) == 1

    trusted = cli.run(["callback", "--strict", "--ca-bundle", str(tls_server.cert)], env=env)
    assert trusted.returncode == 0, trusted
    assert cli.result()["outcome"] == "delivered"
    assert len(tls_server.answered) >= 1
    assert tls_server.answered[-1].startswith(b"POST /api/jenkins/callback ")
