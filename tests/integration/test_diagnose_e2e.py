"""ci-report diagnose against real endpoints on 127.0.0.1: nothing listening, an unknown CA, a
wrong path, a receiver rejecting one mode, a receiver whose clock is 10 minutes off."""

from __future__ import annotations

import email.utils
import json
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from fault_server import API_KEY, AUTH_ENV, Cli

pytestmark = pytest.mark.integration
WRONG_WHSEC = "whsec_d3JvbmctaG1hYy1rZXktb2YtMzItYnl0ZXMhISEh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Endpoint(BaseHTTPRequestHandler):
    """POST anything -> ``status``; ``Date`` shifted by ``skew`` seconds."""

    status = 200
    skew = 0.0
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "date":
            value = email.utils.formatdate(time.time() + self.skew, usegmt=True)
        super().send_header(keyword, value)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = (
            b'{"error": "unauthorized", "reason": "timestamp outside tolerance"}'
            if (self.status == 401)
            else b'{"ok": true}'
        )
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _serve(handler: type, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    scheme = "https" if tls else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}/api/jenkins/callback"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A private CA and a server certificate for 127.0.0.1 it signed (openssl CLI)."""
    d = tmp_path_factory.mktemp("certs")

    def sh(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    sh(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=ci-report test CA",
    )
    sh(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    sh(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    )
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}


def _diagnose(cli: Cli, *args: str, **env: str | None) -> tuple[Any, dict[str, Any]]:
    res = cli.run(["diagnose", "--json", *args], env=cli.env(**env))
    return res, json.loads(res.stdout)


def _steps(report: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["status"] for s in report["steps"]}


def test_nothing_listening(cli: Cli) -> None:
    url = f"http://127.0.0.1:{_free_port()}/api/jenkins/callback"
    res, report = _diagnose(cli, "--url", url)
    assert res.returncode == 1, res
    steps = _steps(report)
    assert steps["config"] == "ok" and steps["dns"] == "ok" and steps["tcp"] == "FAIL"
    assert steps["route"] == "skip" and steps["auth hmac"] == "skip"
    assert report["failedStep"] == "tcp"
    assert "connection refused" in res.stderr and "fix:" in res.stderr


def test_tls_unknown_ca_then_ca_bundle(cli: Cli, certs: dict[str, Path]) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs["cert"], certs["key"])
    for url in _serve(_Endpoint, tls=context):
        res, report = _diagnose(cli, "--url", url)
        assert res.returncode == 1, res
        assert report["failedStep"] == "tls"
        tls = next(s for s in report["steps"] if s["name"] == "tls")
        assert "certificate verification failed" in tls["detail"]
        assert "--ca-bundle" in tls["fix"]
        res, report = _diagnose(cli, "--url", url, "--ca-bundle", str(certs["ca"]))
        assert res.returncode == 0, res
        assert all(s["status"] in ("ok", "warn", "skip") for s in report["steps"])
        assert "issued by CN=ci-report test CA" in res.stderr, res.stderr


def test_wrong_path_names_the_expected_one(cli: Cli, receiver: Any) -> None:
    res, report = _diagnose(cli, "--url", receiver.base_url + "/hooks/jenkins")
    assert res.returncode == 1, res
    route = next(s for s in report["steps"] if s["name"] == "route")
    assert route["status"] == "FAIL" and "404" in route["detail"]
    assert "/api/jenkins/callback" in route["fix"]


def test_receiver_rejecting_one_mode(cli: Cli, receiver: Any) -> None:
    res, report = _diagnose(
        cli,
        "--url",
        receiver.url,
        JENKINS_SIGNATURE_SECRET=WRONG_WHSEC,
    )
    assert res.returncode == 1, res
    steps = _steps(report)
    assert steps["route"] == "ok" and steps["clock"] == "ok"
    assert steps["auth api-key"] == "ok" and steps["auth jwt"] == "ok"
    assert steps["auth hmac"] == "FAIL"
    assert "JENKINS_SIGNATURE_SECRET" in res.stderr
    assert "d3JvbmctaG1hYy1rZXkt" not in res.stderr and API_KEY not in res.stderr


def test_all_good_against_the_receiver(cli: Cli, receiver: Any) -> None:
    res = cli.run(["diagnose", "--url", receiver.url])
    assert res.returncode == 0, res
    assert "every step passed" in res.stderr and res.stdout == ""


def test_clock_ten_minutes_off(cli: Cli) -> None:
    handler = type("Skewed", (_Endpoint,), {"status": 401, "skew": 600.0})
    for url in _serve(handler):
        res, report = _diagnose(cli, "--url", url, JENKINS_API_KEY=None, JENKINS_JWT_SECRET=None)
        assert res.returncode == 1, res
        clock = next(s for s in report["steps"] if s["name"] == "clock")
        assert clock["status"] == "FAIL"
        assert "behind the receiver" in clock["detail"] and "NTP" in clock["fix"]
        assert 590 <= -clock["data"]["skewSeconds"] <= 610
        assert _steps(report)["auth hmac"] == "skip"


def test_no_auth_configured(cli: Cli) -> None:
    env = {k: None for k in AUTH_ENV}
    res, report = _diagnose(cli, "--url", "http://127.0.0.1:9/api/jenkins/callback", **env)
    assert res.returncode == 1
    assert report["failedStep"] == "config" and "no authentication" in res.stderr


def test_json_never_shows_credentials_of_urls_or_proxies(cli: Cli) -> None:
    port = _free_port()
    url = f"http://user:url-pass-1234@127.0.0.1:{port}/api/jenkins/callback"
    res, report = _diagnose(cli, "--url", url)
    assert "url-pass-1234" not in res.stdout + res.stderr
    assert report["url"].startswith("http://user:****@127.0.0.1")
    res, report = _diagnose(
        cli,
        "--url",
        "http://platform.example.com/api/jenkins/callback",
        HTTP_PROXY=f"http://p:proxy-pass-5678@127.0.0.1:{port}",
        NO_PROXY=None,
        no_proxy=None,
    )
    assert "proxy-pass-5678" not in res.stdout + res.stderr
    assert report["failedStep"] == "tcp" and "NO_PROXY" in report["steps"][3]["fix"]


def test_http_url_on_an_https_port_says_so(cli: Cli, certs: dict[str, Path]) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs["cert"], certs["key"])
    server = _serve(_Endpoint, tls=context)
    url = next(server)
    try:
        res, report = _diagnose(cli, "--url", url.replace("https://", "http://"))
    finally:
        server.close()
    assert report["failedStep"] == "route", res
    route = report["steps"][5]
    assert "closed the connection without an HTTP answer" in route["detail"]
    assert "https://" in route["fix"]
