"""Delivery through what sits between an agent and the platform: an https receiver whose
certificate comes from a private CA (made with the openssl CLI), and an HTTP proxy taken from the
environment (HTTP_PROXY / NO_PROXY), as on a corporate Jenkins agent."""

from __future__ import annotations

import http.client
import socketserver
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest
from fault_server import API_KEY, JWT_SECRET, WHSEC, Cli, applied

pytestmark = pytest.mark.integration


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture
def private_ca(tmp_path: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it."""
    d = tmp_path / "pki"
    d.mkdir()
    ca_key, ca_cert = d / "ca-key.pem", d / "ca.pem"
    _openssl(
        *("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
        *("-nodes", "-days", "1", "-keyout", str(ca_key), "-out", str(ca_cert)),
        *("-subj", "/CN=ci-report test CA", "-addext", "basicConstraints=critical,CA:TRUE"),
        *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
    )
    key, csr, cert = d / "server-key.pem", d / "server.csr", d / "server.pem"
    _openssl(
        *("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
        *("-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1"),
    )
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _openssl(
        *("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key)),
        *("-CAcreateserial", "-days", "1", "-out", str(cert), "-extfile", str(ext)),
    )
    return {"ca": ca_cert, "cert": cert, "key": key}


@pytest.fixture
def https_receiver(tmp_path: Path, private_ca: dict[str, Path]) -> Iterator[Any]:
    """The reference receiver with its listening socket wrapped in TLS."""
    from ci_report.platform.receiver import start_receiver

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(private_ca["cert"]), str(private_ca["key"]))
    handle = start_receiver(
        tmp_path / "receiver.db",
        api_keys=[API_KEY],
        jwt_secrets=[JWT_SECRET],
        signature_secrets=[WHSEC],
        ssl_context=ctx,
    )
    try:
        yield handle
    finally:
        handle.stop()


class _ProxyHandler(socketserver.StreamRequestHandler):
    """A CONNECT-less forward proxy: ``POST http://host:port/path HTTP/1.1`` -> upstream."""

    def handle(self) -> None:
        request_line = self.rfile.readline().decode("latin-1").strip()
        method, target, _ = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            line = self.rfile.readline().decode("latin-1")
            if line in ("\r\n", "\n", ""):
                break
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
        body = self.rfile.read(int(headers.get("Content-Length", "0")))
        self.server.seen.append((request_line, headers))  # type: ignore[attr-defined]
        parts = urlsplit(target)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        forwarded = {
            k: v for k, v in headers.items() if k.lower() not in ("proxy-connection", "connection")
        }
        conn.request(method, parts.path, body=body, headers=forwarded)
        resp = conn.getresponse()
        data = resp.read()
        self.wfile.write(
            f"HTTP/1.1 {resp.status} {resp.reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
            + data
        )
        conn.close()


@pytest.fixture
def http_proxy() -> Iterator[Any]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _ProxyHandler)
    server.daemon_threads = True
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _https_url(handle: Any) -> str:
    return f"https://127.0.0.1:{handle.server.server_address[1]}/api/jenkins/callback"


def test_https_receiver_with_private_ca(cli: Cli, https_receiver, private_ca, tmp_path):
    url = _https_url(https_receiver)
    env = cli.env(CI_REPORT_URL=url)

    untrusted = cli.run(["callback", "--strict"], env=env)
    assert untrusted.returncode == 75, untrusted
    first = untrusted.stderr.splitlines()[0]
    assert first.startswith("[ci-report] callback NOT delivered"), untrusted
    assert "TLS error" in untrusted.stderr and "--ca-bundle" in untrusted.stderr
    assert "attempt 1/" not in untrusted.stderr  # TLS errors are not retried
    assert applied(https_receiver) == {}

    by_flag = cli.run(["callback", "--strict", "--ca-bundle", str(private_ca["ca"])], env=env)
    assert by_flag.returncode == 0, by_flag
    assert by_flag.stderr.startswith("[ci-report] callback delivered"), by_flag
    assert len(applied(https_receiver)) == 1
    assert cli.outbox_entries() == []  # the earlier queued copy of this callback is gone

    env2 = dict(env, BUILD_NUMBER="2", RUN_ID="65", REQUESTS_CA_BUNDLE=str(private_ca["ca"]))
    by_env = cli.run(["callback", "--strict"], env=env2)
    assert by_env.returncode == 0, by_env
    env3 = dict(env, BUILD_NUMBER="3", RUN_ID="66", CI_REPORT_CA_BUNDLE=str(private_ca["ca"]))
    by_own_env = cli.run(["callback", "--strict"], env=env3)
    assert by_own_env.returncode == 0, by_own_env
    assert len(applied(https_receiver)) == 3


def test_proxy_from_environment_applies(cli: Cli, receiver, http_proxy):
    proxy = f"http://127.0.0.1:{http_proxy.server_address[1]}"
    env = cli.env(
        CI_REPORT_URL=receiver.url,
        HTTP_PROXY=proxy,
        http_proxy=proxy,
        HTTPS_PROXY=proxy,
        https_proxy=proxy,
        NO_PROXY=None,
        no_proxy=None,
    )
    res = cli.run(["callback", "--strict"], env=env)
    assert res.returncode == 0, res
    assert len(http_proxy.seen) == 1, "the proxy from the environment was not used"
    request_line, headers = http_proxy.seen[0]
    assert request_line.startswith(f"POST {receiver.url} ")
    assert headers.get("X-Api-Key") == API_KEY  # forwarded as sent
    assert len(applied(receiver)) == 1

    # NO_PROXY naming the host: straight to the receiver
    bypass = dict(env, BUILD_NUMBER="2", RUN_ID="65", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    res2 = cli.run(["callback", "--strict"], env=bypass)
    assert res2.returncode == 0, res2
    assert len(http_proxy.seen) == 1
    assert len(applied(receiver)) == 2


def test_proxy_down_is_named_as_the_cause(cli: Cli, receiver):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    proxy = f"http://127.0.0.1:{dead}"
    env = cli.env(
        CI_REPORT_URL=receiver.url,
        HTTP_PROXY=proxy,
        http_proxy=proxy,
        NO_PROXY=None,
        no_proxy=None,
        CI_REPORT_MAX_ATTEMPTS="1",
    )
    res = cli.run(["callback", "--strict"], env=env)
    assert res.returncode == 75, res
    assert "proxy" in res.stderr.lower(), res
    assert proxy in res.stderr, res  # which proxy, so the agent's HTTP_PROXY can be checked
