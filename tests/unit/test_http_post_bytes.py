"""``http.post_bytes`` sends what ``session.post`` sends: same request line, headers and body,
the environment's proxy, cookies an answer set, a ``.netrc`` entry; real sockets on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ci_report import http

SEEN: list[dict[str, Any]] = []


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        SEEN.append({"line": self.requestline, "headers": list(self.headers.items()), "body": body})
        answer = b'{"ok":true}'
        self.send_response(303 if self.path.endswith("/redirect") else 200)
        if self.path.endswith("/cookie"):
            self.send_header("Set-Cookie", "sticky=node-2; Path=/")
        if self.path.endswith("/redirect"):
            self.send_header("Location", "/elsewhere")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def _plain_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                 "all_proxy", "NO_PROXY", "no_proxy", "NETRC", "REQUESTS_CA_BUNDLE",
                 "CURL_CA_BUNDLE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc of the developer
    SEEN.clear()


HEADERS = {
    "Content-Type": "application/json",
    "webhook-id": "msg_1",
    "webhook-signature": "v1,c2ln",
    "CI-Report-Attempt": "2",
}
BODY = b'{"runId":7,"status":"passed"}'


def both(session: Any, url: str, headers: dict[str, str] = HEADERS) -> tuple[Any, Any]:
    """The request as session.post sends it, then as post_bytes sends it."""
    session.post(url, data=BODY, headers=headers, timeout=(5, 5), allow_redirects=False)
    http.post_bytes(session, url, BODY, headers, timeout=(5, 5))
    assert len(SEEN) == 2
    return SEEN[0], SEEN[1]


def test_same_request_line_headers_and_body_as_session_post(server: str) -> None:
    session = http.make_session()
    session.headers["X-Session-Wide"] = "yes"
    full, lean = both(session, server + "/api/jenkins/callback?x=1")
    assert lean == full
    assert lean["body"] == BODY
    assert ("Content-Length", str(len(BODY))) in lean["headers"]
    assert ("X-Session-Wide", "yes") in lean["headers"]


def test_a_none_header_removes_the_session_default_as_requests_does(server: str) -> None:
    session = http.make_session()
    full, lean = both(session, server + "/cb", {**HEADERS, "Accept": None})  # type: ignore[dict-item]
    assert lean == full
    assert "Accept" not in dict(lean["headers"])


def test_cookie_set_by_an_answer_is_sent_next_time(server: str) -> None:
    session = http.make_session()
    http.post_bytes(session, server + "/cookie", BODY, HEADERS, timeout=(5, 5))
    http.post_bytes(session, server + "/cb", BODY, HEADERS, timeout=(5, 5))
    assert ("Cookie", "sticky=node-2") in SEEN[1]["headers"]


def test_environment_proxy_is_used(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", server)  # the recorder acts as the proxy
    session = http.make_session()
    full, lean = both(session, "http://platform.invalid/api/jenkins/callback")
    assert lean == full
    assert lean["line"] == "POST http://platform.invalid/api/jenkins/callback HTTP/1.1"


def test_netrc_entry_is_applied_as_requests_does(server: str, tmp_path: Path) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login robot password s3cret\n")
    netrc.chmod(0o600)
    session = http.make_session()
    full, lean = both(session, server + "/cb")
    assert lean == full
    assert any(k == "Authorization" and v.startswith("Basic ") for k, v in lean["headers"])


def test_redirect_is_answered_not_followed(server: str) -> None:
    session = http.make_session()
    response = http.post_bytes(session, server + "/redirect", BODY, HEADERS, timeout=(5, 5))
    assert response.status_code == 303
    assert response.headers["Location"] == "/elsewhere"
    assert len(SEEN) == 1
    assert response.text == '{"ok":true}'


def test_a_header_overrides_the_session_default_whatever_its_case(server: str) -> None:
    session = http.make_session()
    full, lean = both(session, server + "/cb", {**HEADERS, "user-agent": "other/1.0"})
    assert lean == full
    assert [v for k, v in lean["headers"] if k.lower() == "user-agent"] == ["other/1.0"]
