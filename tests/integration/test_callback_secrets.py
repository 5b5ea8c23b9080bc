"""A canary secret in all three auth modes never leaks, on any failure path, with --debug too.

Searched: stdout, stderr (that is where exception text ends up), every file in the outbox and
every file in the workspace (the result file). Searched for: the canary, its base64 forms, and
anything shaped like a credential we send (``Bearer eyJ…``, a JWT, a ``v1,`` signature).
"""

from __future__ import annotations

import base64
import re
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

import pytest
from fault_server import Cli, CliResult, FaultServer, closed_port

pytestmark = pytest.mark.integration

CANARY = "CANARY-7f3a9c1e-5b2d-4e8f-a6c0-d91b3e7f2a45"
_B = CANARY.encode()
FORBIDDEN_TEXT = {
    CANARY,
    "5b2d-4e8f-a6c0",  # a fragment: partial redaction still leaks
    base64.b64encode(_B).decode(),
    base64.b64encode(_B).decode().rstrip("="),
    base64.urlsafe_b64encode(_B).decode().rstrip("="),
    base64.b64encode(_B).decode()[:24],
}
FORBIDDEN_SHAPES = [
    re.compile(r"(?i)bearer\s+eyJ"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    re.compile(r"\bv1,[A-Za-z0-9+/]{16,}"),
    re.compile(r"whsec_[A-Za-z0-9+/]{8,}"),
]
SIGNATURE_SECRETS = {
    "whsec": "whsec_" + base64.b64encode(_B).decode(),
    "raw": CANARY,
}


def leaks(text: str) -> list[str]:
    found = [f"{s!r}" for s in FORBIDDEN_TEXT if s in text]
    found += [
        f"/{p.pattern}/: {m.group(0)[:40]!r}" for p in FORBIDDEN_SHAPES for m in p.finditer(text)
    ]
    return found


@dataclass
class Path_:
    name: str
    args: list[str]
    env: dict[str, Optional[str]]
    code: int
    says: str
    server: Optional[FaultServer] = None
    signal: Optional[int] = None
    result: Optional[CliResult] = None
    cli: Optional[Cli] = None
    extra: list[str] = field(default_factory=list)


def _run(path: Path_) -> Path_:
    assert path.cli is not None
    env = path.cli.env(**path.env)
    args = ["callback", "--strict", *path.args]
    if path.signal is None:
        path.result = path.cli.run(args, env=env, timeout=60)
        return path
    proc = path.cli.popen(args, env=env)
    try:
        assert path.server is not None
        path.server.wait_for_requests(1, timeout=20)
        proc.send_signal(path.signal)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    path.result = CliResult(proc.returncode, out, err, args)
    return path


@pytest.mark.parametrize("sig_form", sorted(SIGNATURE_SECRETS))
def test_canary_secret_never_leaks(sig_form, tmp_path, receiver, fault_servers, tls_server):
    tls_url = tls_server.url
    canary_env = {
        "JENKINS_API_KEY": CANARY,
        "JENKINS_JWT_SECRET": CANARY,
        "JENKINS_SIGNATURE_SECRET": SIGNATURE_SECRETS[sig_form],
        "CI_REPORT_MAX_ATTEMPTS": "2",
    }
    failing = fault_servers(receiver.url, default="500")
    redirect = fault_servers(receiver.url, default="302")
    with closed_port() as port:
        refused = f"http://127.0.0.1:{port}/api/jenkins/callback"
        # a file where the --output file's directory should be: writing it fails (internal
        # error; a result file that cannot be written is only a warning)
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("x")
        unwritable = ["--output", str(blocker / "callback.json")]
        paths = [
            Path_("refused", [], {"CI_REPORT_URL": refused}, 75, "connection refused"),
            Path_("500", [], {"CI_REPORT_URL": failing.url}, 75, "HTTP 500"),
            # the receiver knows other secrets: every mode fails -> 401
            Path_("401", [], {"CI_REPORT_URL": receiver.url}, 65, "HTTP 401"),
            Path_("302", [], {"CI_REPORT_URL": redirect.url}, 65, "redirect"),
            Path_("tls", [], {"CI_REPORT_URL": tls_url}, 75, "TLS error"),
            Path_(
                "bad-whsec",
                [],
                {"CI_REPORT_URL": receiver.url, "JENKINS_SIGNATURE_SECRET": "whsec_" + CANARY},
                78,
                "not valid base64",
            ),
            Path_(
                "newline-in-key",
                [],
                {"CI_REPORT_URL": receiver.url, "JENKINS_API_KEY": CANARY + "\nX-Injected: 1"},
                78,
                "cannot be sent as an HTTP header",
            ),
            Path_("no-url", [], {"CI_REPORT_URL": None}, 78, "no callback URL"),
            Path_("debug-500", ["--debug"], {"CI_REPORT_URL": failing.url}, 75, "HTTP 500"),
            Path_("debug-401", ["--debug"], {"CI_REPORT_URL": receiver.url}, 65, "HTTP 401"),
            Path_("debug-tls", ["--debug"], {"CI_REPORT_URL": tls_url}, 75, "TLS error"),
            Path_("debug-no-url", ["--debug"], {"CI_REPORT_URL": None}, 78, "no callback URL"),
            Path_("json-401", ["--log-format", "json"], {"CI_REPORT_URL": receiver.url}, 65, "401"),
            Path_(
                "json-refused", ["--log-format", "json"], {"CI_REPORT_URL": refused}, 75, "refused"
            ),
            Path_("internal", unwritable, {"CI_REPORT_URL": failing.url}, 70, "internal error"),
            Path_(
                "debug-internal",
                ["--debug", *unwritable],
                {"CI_REPORT_URL": failing.url},
                70,
                "Traceback",
            ),
            Path_(
                "json-debug-internal",
                ["--debug", "--log-format", "json", *unwritable],
                {"CI_REPORT_URL": receiver.url},
                70,
                "internal error",
            ),
        ]
        for sig, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
            hold = fault_servers(receiver.url, default="hold")
            paths.append(
                Path_(
                    f"{sig.name}-debug",
                    ["--debug"],
                    {"CI_REPORT_URL": hold.url, "CI_REPORT_READ_TIMEOUT": "30"},
                    code,
                    "interrupted",
                    server=hold,
                    signal=sig,
                )
            )
        for path in paths:
            path.cli = Cli(tmp_path / path.name)
            path.env = {**canary_env, **path.env}
        with ThreadPoolExecutor(max_workers=len(paths)) as pool:
            list(pool.map(_run, paths))

    # flush with --debug against the failing server and the wrong receiver: still quiet
    for name, url in (("500", failing.url), ("401", receiver.url)):
        src = next(p for p in paths if p.name == name)
        assert src.cli is not None
        flush = src.cli.run(
            ["flush", "--debug", "--strict", "--url", url], env=src.cli.env(**src.env)
        )
        paths.append(
            Path_(f"flush-{name}", [], src.env, 75, "remaining", result=flush, cli=src.cli)
        )

    # the detectors do see the credentials we really send (else this test proves nothing)
    sent = failing.requests[0].headers
    assert leaks(sent["x-api-key"]) and leaks(sent["authorization"])
    assert leaks(sent["webhook-signature"])

    problems = {}
    for path in paths:
        res = path.result
        assert res is not None and path.cli is not None
        if res.returncode != path.code or path.says not in res.stdout + res.stderr:
            problems[path.name] = f"expected exit {path.code} and {path.says!r}:\n{res}"
        found = [f"stdout {x}" for x in leaks(res.stdout)]
        found += [f"stderr {x}" for x in leaks(res.stderr)]
        for root in (path.cli.outbox, path.cli.workspace):
            for file in sorted(root.rglob("*")) if root.exists() else []:
                if file.is_file():
                    text = file.read_bytes().decode("utf-8", "replace")
                    found += [f"{file.relative_to(path.cli.tmp)} {x}" for x in leaks(text)]
        if found:
            problems[path.name] = f"LEAK {found}\n{res}"
    # the failure paths did keep the payload (a leak check on an empty outbox proves nothing)
    for name in ("refused", "500", "401", "tls", "no-url", "SIGTERM-debug"):
        cli = next(p.cli for p in paths if p.name == name)
        assert cli is not None and cli.outbox_entries(), f"{name}: nothing in the outbox"
    assert problems == {}, "\n\n".join(f"[{k}] {v}" for k, v in problems.items())


def test_debug_internal_error_traceback_is_redacted(cli, fault_servers):
    """--debug shows the traceback of an internal error; without it, none."""
    server = fault_servers(None, default="500")
    blocker = cli.tmp / "file"
    blocker.write_text("x")
    env = cli.env(CI_REPORT_URL=server.url, JENKINS_API_KEY=CANARY, CI_REPORT_MAX_ATTEMPTS="1")
    args = ["callback", "--strict", "--output", str(blocker / "callback.json")]
    quiet = cli.run(args, env=env)
    loud = cli.run(["--debug", *args], env=env)
    for res in (quiet, loud):
        assert res.returncode == 70, res
        assert "internal error in ci-report" in res.stderr, res
        assert leaks(res.stderr) == [], res
    assert "Traceback" not in quiet.stderr
    assert "Traceback" in loud.stderr
    # the payload survived the crash
    assert cli.outbox_entries()


def _userinfo_run(cli, fault_servers):
    server = fault_servers(None, default="503")
    url = f"http://ci:{CANARY}@127.0.0.1:{server.port}/api/jenkins/callback"
    return _userinfo_run_at(cli, server, url)


def _userinfo_run_at(cli, server, url):
    """Without JWT mode: user:password@ is dropped with a warning, never sent."""
    res = cli.run(
        ["callback", "--strict", "--debug"],
        env=cli.env(CI_REPORT_URL=url, CI_REPORT_MAX_ATTEMPTS="1", JENKINS_JWT_SECRET=None),
    )
    assert res.returncode == 75, res
    assert "authorization" not in server.requests[0].headers  # never sent implicitly
    assert "it is NOT sent" in res.stderr, res
    return res


def test_url_password_not_in_output_or_result_file(cli, fault_servers):
    """Regression: the result file (archived with the build) held CI_REPORT_URL verbatim,
    user:password@ included."""
    res = _userinfo_run(cli, fault_servers)
    assert leaks(res.stdout + res.stderr) == [], res
    text = cli.result_file.read_text()
    assert leaks(text) == []
    assert cli.result()["url"].startswith("http://127.0.0.1:")


def test_url_password_never_stored_nor_sent_by_flush(cli, fault_servers):
    """The outbox keeps the URL without user:password@, and a flush never sends it either."""
    server = fault_servers(None, default="503")
    url = f"http://ci:{CANARY}@127.0.0.1:{server.port}/api/jenkins/callback"
    _userinfo_run_at(cli, server, url)
    texts = [p.read_text() for p in cli.outbox.rglob("*.json")]
    assert texts
    assert [t for t in texts if leaks(t)] == []
    before = len(server.requests)
    env = cli.env(CI_REPORT_URL=url, CI_REPORT_MAX_ATTEMPTS="1", JENKINS_JWT_SECRET=None)
    res = cli.run(["flush"], env=env)
    assert len(server.requests) == before + 1, res
    assert "authorization" not in server.requests[-1].headers
    assert leaks(res.stdout + res.stderr) == []


def test_url_userinfo_with_jwt_is_a_configuration_error_and_keeps_the_payload(cli, fault_servers):
    """Finding 8: requests turned user:password@ into Authorization: Basic, replacing the JWT
    (a JWT-only platform answered 401). Now: a clear configuration error, nothing sent, the
    payload kept, the password nowhere."""
    server = fault_servers(None, default="200")
    url = f"http://ci:{CANARY}@127.0.0.1:{server.port}/api/jenkins/callback"
    res = cli.run(["callback", "--strict"], env=cli.env(CI_REPORT_URL=url))
    assert res.returncode == 78, res
    assert "user:password@ and JWT mode" in res.stderr, res
    assert server.requests == []
    assert cli.result()["outcome"] == "queued"
    (entry,) = cli.outbox_entries()
    assert entry["deliveryId"] == cli.result()["deliveryId"]
    files = [p.read_text() for p in cli.outbox.rglob("*.json")] + [cli.result_file.read_text()]
    assert [t for t in files if leaks(t)] == []
    assert leaks(res.stdout + res.stderr) == []


@pytest.mark.parametrize(
    "url",
    [
        f"ci:{CANARY}@127.0.0.1/api/jenkins/callback",  # no scheme
        f"http://ci:{CANARY}@[::1/api/jenkins/callback",  # malformed IPv6
        f"http://ci:{CANARY}@127.0.0.1:99999/cb",  # port out of range
    ],
    ids=["scheme-less", "bad-ipv6", "bad-port"],
)
def test_unparsable_url_redacted_everywhere_and_payload_kept(url, cli):
    """Finding 12: a scheme-less user:pass@host/x leaked the password into stderr, the outbox
    and the result file; a malformed IPv6 URL lost the payload."""
    res = cli.run(["callback", "--strict"], env=cli.env(CI_REPORT_URL=url))
    assert res.returncode == 78, res
    assert "Traceback" not in res.stderr
    assert "not usable" in res.stderr, res
    result = cli.result()
    assert result["outcome"] == "queued"
    (entry,) = cli.outbox_entries()
    assert entry["deliveryId"] == result["deliveryId"]
    files = [p.read_text() for p in cli.outbox.rglob("*.json")] + [cli.result_file.read_text()]
    assert [t for t in files if CANARY in t] == []
    assert CANARY not in res.stdout + res.stderr
