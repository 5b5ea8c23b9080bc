"""The one HTTP layer: failures classified by type, bounded reads, sessions that do not redirect.

Real sockets on 127.0.0.1 only (no DNS: a resolver failure is built from its exception type)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from ci_report import http


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        # the client stopped reading: that is what the bounded reads do
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._answer()

    def _answer(self) -> None:
        if self.path == "/big":
            body = b"x" * 300_000
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/big-undeclared":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(30):
                self.wfile.write(b"y" * 10_000)
        elif self.path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                self.wfile.write(b"z")
                self.wfile.flush()
                time.sleep(0.05)
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/small")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"small")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_refused_is_classified_by_type_and_not_sent() -> None:
    with pytest.raises(requests.exceptions.ConnectionError) as info:
        http.make_session().get(f"http://127.0.0.1:{_closed_port()}/", timeout=2)
    failure = http.classify(info.value)
    assert failure.kind == http.REFUSED and failure.sent is False
    assert "connection refused" in str(failure)


def test_message_text_alone_does_not_decide() -> None:
    """'Connection refused' in a message without the exception type is not a refusal."""
    failure = http.classify(requests.exceptions.ConnectionError("Connection refused"))
    assert failure.kind == http.OTHER


def test_dns_failure_from_its_exception_type() -> None:
    exc = requests.exceptions.ConnectionError(socket.gaierror(-2, "Name or service not known"))
    assert http.classify(exc).kind == http.DNS


def test_read_timeout_when_the_server_never_answers() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        # with retries off, requests reports it as a ConnectionError: the type inside decides
        with pytest.raises(requests.exceptions.RequestException) as info:
            http.make_session().get(
                f"http://127.0.0.1:{listener.getsockname()[1]}/", timeout=(1, 0.3)
            )
        failure = http.classify(info.value)
        assert failure.kind == http.READ_TIMEOUT and failure.sent is True
    finally:
        listener.close()


def test_tls_to_a_plain_http_port(server: str) -> None:
    with pytest.raises(requests.exceptions.SSLError) as info:
        http.make_session().get(server.replace("http://", "https://") + "/", timeout=2)
    failure = http.classify(info.value)
    assert failure.kind == http.TLS and not failure.retryable


def test_proxy_failure_names_the_inner_cause() -> None:
    exc = requests.exceptions.ProxyError("Unable to connect to proxy", ConnectionRefusedError())
    failure = http.classify(exc)
    assert failure.kind == http.PROXY
    assert "connection refused" in failure.reason and failure.sent is False


def test_sessions_do_not_follow_redirects_unless_asked(server: str) -> None:
    assert http.make_session().get(server + "/redirect", timeout=2).status_code == 302
    followed = http.make_session(follow_redirects=True).get(server + "/redirect", timeout=2)
    assert followed.status_code == 200 and followed.text == "small"


def test_user_agent_is_ours(server: str) -> None:
    session = http.make_session()
    assert session.headers["User-Agent"].startswith("ci-report/")


def test_read_bounded_refuses_a_declared_large_body(server: str) -> None:
    response = http.make_session().get(server + "/big", stream=True, timeout=2)
    with pytest.raises(http.ResponseTooLarge):
        http.read_bounded(response, 100_000)


def test_read_bounded_stops_an_undeclared_large_body(server: str) -> None:
    response = http.make_session().get(server + "/big-undeclared", stream=True, timeout=2)
    with pytest.raises(http.ResponseTooLarge) as info:
        http.read_bounded(response, 100_000, what="the artifact")
    assert "the artifact" in str(info.value)
    assert http.classify(info.value).kind == http.TOO_LARGE


def test_read_bounded_stops_a_drip_at_the_deadline(server: str) -> None:
    response = http.make_session().get(server + "/drip", stream=True, timeout=(2, 5))
    start = time.monotonic()
    with pytest.raises(http.DeadlineExceeded):
        http.read_bounded(response, 1_000_000, deadline=time.monotonic() + 0.5)
    # bounded by the deadline plus one read, not by the 50 s the whole drip takes
    assert time.monotonic() - start < 10


def test_read_bounded_returns_the_body_and_keeps_it_for_text(server: str) -> None:
    response = http.make_session().get(server + "/small", stream=True, timeout=2)
    assert http.read_bounded(response, 100) == b"small"
    assert response.text == "small"


def test_short_and_excerpt() -> None:
    assert http.short("a\n  b\tc") == "a b c"
    assert http.short("x" * 500, 10) == "x" * 9 + "…"
    assert http.short(ValueError("boom")) == "boom"

    class Broken:
        @property
        def text(self) -> str:
            raise UnicodeDecodeError("utf-8", b"", 0, 1, "bad")

    assert http.excerpt(Broken()) == ""
