"""Shared fixtures for integration tests: real processes on 127.0.0.1 only."""

from __future__ import annotations

import socketserver
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import pytest
from fault_server import (  # re-exported: other integration tests import these from conftest
    API_KEY,
    AUTH_ENV,
    CALLBACK_DATA,
    FAST_ENV,
    JWT_SECRET,
    REPO,
    SAMPLE_COUNTS,
    SAMPLE_REPORT,
    WHSEC,
    Cli,
    CliResult,
    FaultServer,
    applied,
    outbox_entries,
    outbox_leftovers,
    receiver_requests_by_id,
)

__all__ = [
    "API_KEY",
    "AUTH_ENV",
    "CALLBACK_DATA",
    "FAST_ENV",
    "JWT_SECRET",
    "REPO",
    "SAMPLE_COUNTS",
    "SAMPLE_REPORT",
    "WHSEC",
    "Cli",
    "CliResult",
    "applied",
    "outbox_entries",
    "outbox_leftovers",
    "receiver_requests_by_id",
]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Any]:
    from ci_report.platform.receiver import start_receiver

    handle = start_receiver(
        tmp_path / "receiver.db",
        api_keys=[API_KEY],
        jwt_secrets=[JWT_SECRET],
        signature_secrets=[WHSEC],
    )
    try:
        yield handle
    finally:
        handle.stop()


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
