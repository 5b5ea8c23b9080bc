"""An outbox that trusts no one, and an outbox that cannot be used (issue 9, findings 2, 3, 4, 12).

Real processes on 127.0.0.1: two platforms (receivers with different keys, each behind a
recording proxy), builds of two teams sharing one agent outbox, entries planted by a third
party, poison entries, a full tmpfs, an unwritable outbox, HOME unset with an unknown uid."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest
from fault_server import applied, outbox_entries

pytestmark = pytest.mark.integration

TEAM_B = {
    "JENKINS_API_KEY": "team-b-api-key-9c1d2e3f4a5b6c7d",
    "JENKINS_JWT_SECRET": "team-b-jwt-secret-00112233445566778899aabbccdd",
    "JENKINS_SIGNATURE_SECRET": "whsec_dGVhbS1iLWhtYWMta2V5LTMyLWJ5dGVzLWxvbmchIQ==",
}


@pytest.fixture
def receiver_b(tmp_path: Path) -> Iterator[Any]:
    from ci_report.platform.receiver import start_receiver

    handle = start_receiver(
        tmp_path / "receiver-b.db",
        api_keys=[TEAM_B["JENKINS_API_KEY"]],
        jwt_secrets=[TEAM_B["JENKINS_JWT_SECRET"]],
        signature_secrets=[TEAM_B["JENKINS_SIGNATURE_SECRET"]],
    )
    try:
        yield handle
    finally:
        handle.stop()


def _plant(outbox: Path, name: str, data: Any) -> Path:
    path = outbox / f"{name}.json"
    text = data if isinstance(data, str) else json.dumps(data)
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def test_two_teams_and_a_planted_entry_share_one_outbox(cli, receiver, receiver_b, fault_servers):
    """Finding 2: entries were resent to the URL stored in them, signed with the running
    build's credentials (team B's key reached team A's platform; a planted entry got the
    next build's X-Api-Key; a forged body was signed and accepted)."""
    from fault_server import API_KEY

    platform_a = fault_servers(receiver.url, default="503")  # team A's platform is down
    platform_b = fault_servers(receiver_b.url, default="ok")
    attacker = fault_servers(None, default="200")  # a third party's listener
    env_a = cli.env(CI_REPORT_URL=platform_a.url, BUILD_NUMBER="1", RUN_ID="101")
    env_b = cli.env(CI_REPORT_URL=platform_b.url, BUILD_NUMBER="2", RUN_ID="202", **TEAM_B)

    assert cli.run(["callback", "--strict"], env=env_a).returncode == 75
    (a_entry,) = outbox_entries(cli.outbox)
    a_body = a_entry["body"]
    # a third party (same OS user) plants entries: one for its own listener, one for team B's
    # platform with team A's fingerprint copied (it can read it) and a forged body
    forged_body = json.dumps({"runId": 202, "status": "success", "forged": True})
    for name, url, fingerprint in (
        ("msg_" + "e" * 32, attacker.url, None),
        ("msg_" + "f" * 32, platform_b.url, a_entry["credentialFingerprint"]),
        ("msg_" + "d" * 32, platform_a.url, a_entry["credentialFingerprint"]),
    ):
        forged = dict(a_entry, deliveryId=name, url=url, body=forged_body)
        forged["endpoint"] = url
        forged["credentialFingerprint"] = fingerprint
        forged["seal"] = "0" * 64
        _plant(cli.outbox, name, forged)

    # team B's build on the same agent: delivered; its auto-flush sends nothing of the others
    res_b = cli.run(["callback", "--strict"], env=env_b)
    assert res_b.returncode == 0, res_b
    assert attacker.requests == []
    assert len(platform_a.requests) == 3  # only team A's own three attempts, before B ran
    assert len(platform_b.requests) == 1  # B's own callback, nothing resent to B
    for r in platform_b.requests:
        assert r.headers.get("x-api-key") == TEAM_B["JENKINS_API_KEY"]
        assert b"forged" not in r.body
    assert applied(receiver_b)["202"]["applied_count"] == 1
    assert applied(receiver_b)["202"].get("status") != "forged"

    # team A's platform is back: team A's flush sends team A's entry (once, with A's key);
    # the entries with A's fingerprint but not A's seal are buried loudly, never sent
    platform_a.set_default("ok")
    flush_a = cli.run(["flush", "--strict"], env=env_a)
    assert flush_a.returncode == 75, flush_a  # delivered, but it buried forgeries
    assert "seal does not match" in flush_a.stderr, flush_a
    assert attacker.requests == []
    bodies_a = {r.body.decode() for r in platform_a.requests}
    assert bodies_a == {a_body}
    assert {r.headers.get("x-api-key") for r in platform_a.requests} == {API_KEY}
    assert all(b"forged" not in r.body for r in platform_b.requests)
    assert applied(receiver)["101"]["applied_count"] == 1
    # what is left: the third party's entry, never touched by A or B
    left = {e["deliveryId"] for e in outbox_entries(cli.outbox)}
    assert left == {"msg_" + "e" * 32}
    dead = sorted(p.name for p in (cli.outbox / "dead").iterdir())
    assert dead == [f"msg_{'d' * 32}.json.forged", f"msg_{'f' * 32}.json.forged"]


def test_world_writable_outbox_is_refused_and_the_workspace_keeps_the_callback(
    cli, receiver, fault_servers
):
    server = fault_servers(receiver.url, default="503")
    cli.outbox.mkdir()
    os.chmod(cli.outbox, 0o777)
    env = cli.env(CI_REPORT_URL=server.url, CI_REPORT_MAX_ATTEMPTS="1")
    res = cli.run(["callback", "--strict"], env=env)
    assert res.returncode == 75, res
    assert "writable by others" in res.stderr, res
    kept = cli.workspace / "ci-report" / "outbox"
    (entry,) = outbox_entries(kept)
    assert f"kept in the workspace instead, at {kept / entry['deliveryId']}.json" in res.stderr
    assert outbox_entries(cli.outbox) == []
    flush = cli.run(["flush", "--strict"], env=env)
    assert flush.returncode == 78 and "cannot be trusted" in flush.stderr, flush
    server.set_default("ok")
    again = cli.run(["flush", "--strict", "--outbox", str(kept)], env=env)
    assert again.returncode == 0, again
    assert applied(receiver)["64"]["applied_count"] == 1


def test_poison_entries_never_affect_this_builds_delivery(cli, receiver):
    """Finding 4: one deeply nested entry (RecursionError) made every later callback fail
    (exit 0); finding 12: a truncated entry went to dead/ silently, flush --strict exited 0."""
    cli.outbox.mkdir(mode=0o700)
    _plant(cli.outbox, "msg_" + "1" * 32, "[" * 200_000 + "]" * 200_000)
    _plant(cli.outbox, "msg_" + "2" * 32, '{"schema": "ci-report/outbox/v2", "deliveryId": "msg_')
    _plant(cli.outbox, "msg_" + "3" * 32, '{"deliveryId": "../../etc/passwd", "body": "x"}')
    env = cli.env(CI_REPORT_URL=receiver.url)
    res = cli.run(["callback", "--strict"], env=env)
    assert res.returncode == 0, res
    assert "callback delivered" in res.stderr
    assert "Traceback" not in res.stderr
    assert res.stderr.count("cannot be used") == 3, res
    assert "nested too deeply" in res.stderr and "truncated" in res.stderr
    assert applied(receiver)["64"]["applied_count"] == 1
    assert len(list((cli.outbox / "dead").iterdir())) == 3

    _plant(cli.outbox, "msg_" + "4" * 32, "{")
    flush = cli.run(["flush", "--strict"], env=env)
    assert flush.returncode == 75, flush
    assert "moved to dead/" in flush.stderr and "NOT delivered" in flush.stderr


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "full"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.strip() or proc.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_outbox_keeps_the_callback_in_the_workspace(cli, receiver, small_tmpfs):
    outbox = small_tmpfs / "outbox"
    outbox.mkdir(mode=0o700)
    fd = os.open(small_tmpfs / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:  # fill it up
        while os.write(fd, b"x" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    env = cli.env(CI_REPORT_OUTBOX=str(outbox), CI_REPORT_URL="http://127.0.0.1:9/cb")
    env["CI_REPORT_MAX_ATTEMPTS"] = "1"
    res = cli.run(["callback", "--strict"], env=env)
    assert res.returncode == 75, res
    kept = cli.workspace / "ci-report" / "outbox"
    (entry,) = outbox_entries(kept)
    assert f"at {kept / entry['deliveryId']}.json" in res.stderr, res
    assert "No space left on device" in res.stderr
    assert cli.result()["outcome"] == "queued"
    flush = cli.run(
        ["flush", "--strict", "--outbox", str(kept), "--url", receiver.url],
        env=cli.env(CI_REPORT_URL="http://127.0.0.1:9/cb"),
    )
    assert flush.returncode == 0, flush
    assert applied(receiver)["64"]["applied_count"] == 1


UNKNOWN_UID = 54_321


@pytest.fixture
def foreign_uid_tree() -> Iterator[Path]:
    """A directory an unprivileged, passwd-less uid can use (pytest's tmp is root-only)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the CLI as an unknown uid")
    import pwd

    with pytest.raises(KeyError):
        pwd.getpwuid(UNKNOWN_UID)
    root = Path(tempfile.mkdtemp(prefix="ci-report-uid-"))
    os.chmod(root, 0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _demote() -> None:
    os.setgroups([])
    os.setgid(UNKNOWN_UID)
    os.setuid(UNKNOWN_UID)


def _interpreter_for_uid() -> tuple[list[str], dict[str, str]]:
    """A Python the unknown uid can run, with ci-report importable: this one, or (when it
    lives under a private home) the system Python of the same version with our site-packages
    on PYTHONPATH. Skips when there is none."""
    import site
    import sys

    from fault_server import REPO

    extra = {"PYTHONPATH": os.pathsep.join([str(REPO / "src"), *site.getsitepackages()])}
    candidates = [
        ([sys.executable], {}),
        ([f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"], extra),
    ]
    for argv, env in candidates:
        try:
            probe = subprocess.run(
                [*argv, "-c", "import ci_report.cli, click, requests, jwt"],
                env={**os.environ, **env},
                capture_output=True,
                timeout=30,
                preexec_fn=_demote,
                cwd="/",
            )
        except OSError:
            continue
        if probe.returncode == 0:
            return argv, env
    pytest.skip("no Python interpreter that an unprivileged uid can run with ci-report")


def _as_unknown_uid(cli, root: Path, args: list[str], **env: Any) -> Any:
    from fault_server import SAMPLE_REPORT

    python, python_env = _interpreter_for_uid()
    workspace = root / "ws"
    workspace.mkdir(exist_ok=True)
    report = workspace / "TEST-sample.xml"
    shutil.copy(SAMPLE_REPORT, report)
    for p in (workspace, report):
        os.chown(p, UNKNOWN_UID, UNKNOWN_UID)
    full_env = cli.env(WORKSPACE=str(workspace), CI_REPORT_JUNIT=str(report), **env)
    full_env.update(python_env)
    for name in ("HOME", "XDG_CACHE_HOME", "CI_REPORT_OUTBOX"):
        if env.get(name) is None:
            full_env.pop(name, None)

    proc = subprocess.run(
        [*python, "-m", "ci_report", *args],
        env=full_env,
        cwd=str(workspace),
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_demote,
    )
    return proc, workspace


def test_home_unset_and_unknown_uid_still_delivers(cli, receiver, foreign_uid_tree):
    """Finding 3: with HOME unset and a uid without a passwd entry nothing was sent."""
    proc, workspace = _as_unknown_uid(
        cli, foreign_uid_tree, ["callback", "--strict"], CI_REPORT_URL=receiver.url
    )
    assert proc.returncode == 0, proc.stderr
    assert "callback delivered" in proc.stderr
    assert applied(receiver)["64"]["applied_count"] == 1
    assert not (workspace / "~").exists()


def test_home_unset_and_receiver_down_keeps_it_in_the_workspace(cli, receiver, foreign_uid_tree):
    proc, workspace = _as_unknown_uid(
        cli,
        foreign_uid_tree,
        ["callback", "--strict"],
        CI_REPORT_URL="http://127.0.0.1:9/cb",
        CI_REPORT_MAX_ATTEMPTS="1",
    )
    assert proc.returncode == 75, proc.stderr
    kept = workspace / "ci-report" / "outbox"
    (entry,) = outbox_entries(kept)
    assert f"outbox: {kept / entry['deliveryId']}.json" in proc.stderr, proc.stderr


def test_unwritable_outbox_keeps_it_in_the_workspace(cli, receiver, foreign_uid_tree):
    """Finding 3: an outbox 0500 (or read-only) with the receiver down: the payload ended up
    nowhere, not even in the result file."""
    outbox = foreign_uid_tree / "outbox"
    outbox.mkdir()
    os.chown(outbox, UNKNOWN_UID, UNKNOWN_UID)
    os.chmod(outbox, 0o500)
    proc, workspace = _as_unknown_uid(
        cli,
        foreign_uid_tree,
        ["callback", "--strict"],
        CI_REPORT_URL="http://127.0.0.1:9/cb",
        CI_REPORT_MAX_ATTEMPTS="1",
        CI_REPORT_OUTBOX=str(outbox),
    )
    assert proc.returncode == 75, proc.stderr
    kept = workspace / "ci-report" / "outbox"
    (entry,) = outbox_entries(kept)
    assert f"kept in the workspace instead, at {kept / entry['deliveryId']}.json" in proc.stderr
    result = json.loads((workspace / "ci-report" / "callback.json").read_text())
    assert result["outcome"] == "queued" and result["deliveryId"] == entry["deliveryId"]
