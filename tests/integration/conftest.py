"""Shared fixtures for integration tests: real processes on 127.0.0.1 only."""

from __future__ import annotations

import base64
import json
import os
import socketserver
import ssl
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import pytest
from fault_server import FaultServer

REPO = Path(__file__).resolve().parents[2]
CALLBACK_DATA = REPO / "tests" / "data" / "callback"
SAMPLE_REPORT = CALLBACK_DATA / "TEST-sample.xml"
# what SAMPLE_REPORT holds
SAMPLE_COUNTS = {"passed": 2, "failed": 2, "skipped": 1, "total": 5}

# receiver-side secrets (the client gets the same values unless a test says otherwise)
API_KEY = "it-api-key-6f1d0c3a9b7e4d21a8c5"
JWT_SECRET = "it-jwt-secret-0123456789abcdef0123456789abcdef"
WHSEC = "whsec_" + base64.b64encode(b"integration-hmac-key-32-bytes!!!").decode()
AUTH_ENV = {
    "JENKINS_API_KEY": API_KEY,
    "JENKINS_JWT_SECRET": JWT_SECRET,
    "JENKINS_SIGNATURE_SECRET": WHSEC,
}

# delivery knobs small enough for a fast suite
FAST_ENV = {
    "CI_REPORT_MAX_ATTEMPTS": "3",
    "CI_REPORT_DEADLINE": "20",
    "CI_REPORT_READ_TIMEOUT": "1",
    "CI_REPORT_CONNECT_TIMEOUT": "1",
    "CI_REPORT_FLUSH_BUDGET": "3",
}

_DROPPED_ENV_PREFIXES = ("CI_REPORT_", "JENKINS_", "API_CALLBACK_", "GIT_")
_DROPPED_ENV = {
    "RUN_ID",
    "BUILD_NUMBER",
    "BUILD_URL",
    "BUILD_TAG",
    "JOB_NAME",
    "NODE_NAME",
    "WORKSPACE",
    "CHANGE_ID",
    "BRANCH_NAME",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NO_COLOR",
}


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str
    args: Sequence[str]

    def __str__(self) -> str:
        return (
            f"ci-report {' '.join(self.args)} -> {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


class Cli:
    """Runs ``python -m ci_report`` with a clean environment rooted in ``tmp``."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.workspace = tmp / "ws"
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.outbox = tmp / "outbox"
        self.result_file = self.workspace / "ci-report" / "callback.json"
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(_DROPPED_ENV_PREFIXES)
            and k not in _DROPPED_ENV
            and "proxy" not in k.lower()
        }
        base.update(
            {
                "NO_PROXY": "*",
                "no_proxy": "*",
                "XDG_CACHE_HOME": str(tmp / "cache"),
                "WORKSPACE": str(self.workspace),
                "CI_REPORT_OUTBOX": str(self.outbox),
                "CI_REPORT_JUNIT": str(SAMPLE_REPORT),
                "JOB_NAME": "team/ci-report-it",
                "BUILD_NUMBER": "1",
                "JENKINS_URL": "http://jenkins.example.invalid/",
                "RUN_ID": "64",
                "PYTHONUNBUFFERED": "1",
                **FAST_ENV,
            }
        )
        self.base_env = base

    def env(self, *, auth: bool = True, **overrides: Optional[str]) -> dict[str, str]:
        env = dict(self.base_env)
        if auth:
            env.update(AUTH_ENV)
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def argv(self, args: Sequence[str]) -> list[str]:
        return [sys.executable, "-m", "ci_report", *args]

    def run(
        self,
        args: Sequence[str],
        env: Optional[dict[str, str]] = None,
        timeout: float = 60,
    ) -> CliResult:
        proc = subprocess.run(
            self.argv(args),
            env=self.env() if env is None else env,
            cwd=str(self.workspace),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr, list(args))

    def popen(self, args: Sequence[str], env: Optional[dict[str, str]] = None) -> Any:
        return subprocess.Popen(
            self.argv(args),
            env=self.env() if env is None else env,
            cwd=str(self.workspace),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    # -- what the command left behind ------------------------------------------------
    def outbox_entries(self, outbox: Optional[Path] = None) -> list[dict[str, Any]]:
        return outbox_entries(outbox or self.outbox)

    def result(self, path: Optional[Path] = None) -> dict[str, Any]:
        return json.loads((path or self.result_file).read_text(encoding="utf-8"))


def outbox_entries(outbox: Path) -> list[dict[str, Any]]:
    """Pending entries (``msg_*.json`` at the top level, not claimed, not dead)."""
    if not outbox.is_dir():
        return []
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(outbox.glob("msg_*.json"))]


def outbox_leftovers(outbox: Path) -> list[str]:
    """Every file in the outbox tree (claims, temp files, dead entries included)."""
    if not outbox.exists():
        return []
    return sorted(str(p.relative_to(outbox)) for p in outbox.rglob("*") if p.is_file())


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Any]:
    from ci_report.receiver import start_receiver

    handle = start_receiver(
        tmp_path / "receiver.db",
        api_keys=[API_KEY],
        jwt_secrets=[JWT_SECRET],
        signature_secrets=[WHSEC],
        background=False,
    )
    # our own thread with a short poll interval: stop() returns at once
    thread = threading.Thread(
        target=handle.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield handle
    finally:
        handle.stop()
        thread.join(timeout=5)


@pytest.fixture
def fault_servers() -> Iterator[Any]:
    """Factory: ``fault_servers(upstream, script=[...], default="ok")``; all stopped at the end."""
    started: list[FaultServer] = []

    def make(
        upstream: Optional[str] = None, script: Sequence[str] = (), default: str = "ok"
    ) -> FaultServer:
        server = FaultServer(upstream, script=script, default=default)
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()


def applied(receiver: Any) -> dict[str, dict[str, Any]]:
    """Executions by ``run_id`` (or key)."""
    return {str(e["run_id"] or e["key"]): e for e in receiver.executions()}


def receiver_requests_by_id(receiver: Any, status: Optional[int] = None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in receiver.requests():
        if status is not None and r["status"] != status:
            continue
        counts[r["webhook_id"]] = counts.get(r["webhook_id"], 0) + 1
    return counts


@dataclass
class TlsServer:
    url: str
    cert: Path
    answered: list[bytes]


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TlsServer]:
    """An https server on 127.0.0.1 with a self-signed certificate made by the openssl CLI;
    it answers 204 to whoever completes the handshake (and records the request head)."""
    key, cert = tmp_path / "tls-key.pem", tmp_path / "tls-cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec"),
            *("-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    answered: list[bytes] = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            try:
                with ctx.wrap_socket(self.request, server_side=True) as tls:
                    answered.append(tls.recv(65536))
                    tls.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            except OSError:  # ssl.SSLError included: the client refused the certificate
                pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield TlsServer(
            f"https://127.0.0.1:{server.server_address[1]}/api/jenkins/callback", cert, answered
        )
    finally:
        server.shutdown()
        server.server_close()
