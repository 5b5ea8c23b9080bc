"""The receiver under hostile clients, with real sockets on 127.0.0.1: slowloris, long headers,
huge bodies, malformed headers; the management guard, CSRF check and route table."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from typing import Any, Optional

import pytest

from ci_report.platform.receiver import (
    CALLBACK_PATH,
    Limits,
    ReceiverHandle,
    Request,
    Response,
    start_receiver,
)

pytestmark = pytest.mark.integration

API_KEY = "hardening-api-key-0123456789"
WHSEC = "whsec_" + base64.b64encode(b"h" * 32).decode()
TOKEN = "management-token-0123456789"


def _raw(port: int, data: bytes, *, read: bool = True, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes or one response
    (by Content-Length) has arrived."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if not read:
            return b""
        return _read_response(sock)


def _read_response(sock: socket.socket) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return buf
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head + b"\r\n\r\n" + rest


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def _body(response: bytes) -> Any:
    return json.loads(response.partition(b"\r\n\r\n")[2])


def _healthz_within(port: int, seconds: float = 1.0) -> float:
    started = time.monotonic()
    response = _raw(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", timeout=seconds)
    elapsed = time.monotonic() - started
    assert _status(response) == 200, response
    assert elapsed < seconds, f"/healthz took {elapsed:.2f} s"
    return elapsed


def _callback_head(port: int, headers: dict[str, str], length: int, path: str = CALLBACK_PATH):
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {length}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _fresh_headers(**extra: str) -> dict[str, str]:
    headers = {"webhook-id": "msg_hardening0001", "webhook-timestamp": str(int(time.time()))}
    headers.update(extra)
    return headers


class Recorder:
    def __init__(self) -> None:
        self.rejects: list[tuple[int, Optional[str], str, str]] = []
        self.logs: list[str] = []

    def reject(self, status: int, wid: Optional[str], path: str, reason: str) -> None:
        self.rejects.append((status, wid, path, reason))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def receiver(recorder: Recorder) -> Iterator[ReceiverHandle]:
    handle = start_receiver(
        api_keys=[API_KEY],
        signature_secrets=[WHSEC],
        jwt_secrets=["hardening-jwt-secret-0123456789abcdef"],
        limits=Limits(max_connections=48, head_timeout_s=1.5, body_timeout_s=1.5),
        on_reject=recorder.reject,
        on_log=recorder.logs.append,
    )
    try:
        yield handle
    finally:
        handle.stop()


def _port(handle: ReceiverHandle) -> int:
    return int(handle.server.server_address[1])


# ------------------------------------------------------------------ slow and big clients


def test_healthz_answers_under_slowloris() -> None:
    # a head deadline longer than the test: only eviction can make room
    receiver = start_receiver(api_keys=[API_KEY], limits=Limits(max_connections=48))
    port = _port(receiver)
    held = []
    try:
        # three times the connection cap, each with half a request head and nothing more
        for _ in range(3 * receiver.server.limits.max_connections):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"POST /api/jenkins/callback HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            held.append(sock)
        # and, at the same time, a huge body, a 5000-digit timestamp and a 70 KB header
        ts = str(int(time.time()))
        for data in (
            _callback_head(port, {"webhook-id": "msg_big", "webhook-timestamp": ts}, 10**10),
            _callback_head(port, {"webhook-id": "msg_ts", "webhook-timestamp": "9" * 5000}, 2),
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",
        ):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(data)
            held.append(sock)
        for _ in range(5):
            _healthz_within(port)
        assert receiver.server.open_connections() <= receiver.server.limits.max_connections
        assert receiver.server.stats["evicted"] > 0
    finally:
        for sock in held:
            sock.close()
        receiver.stop()


def test_a_client_dribbling_its_head_is_cut_at_the_deadline(receiver: ReceiverHandle) -> None:
    """One byte at a time keeps each read alive; only the overall head deadline stops it."""
    port = _port(receiver)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 10:
            try:
                sock.sendall(b"X")
                sock.settimeout(0.2)
                if sock.recv(1) == b"":
                    closed = True
                    break
            except socket.timeout:
                continue
            except OSError:
                closed = True
                break
        assert closed, "the server kept a dribbling connection open for 10 s"
    assert receiver.server.stats["timed_out"] >= 1


def test_long_headers_are_refused_and_healthz_still_answers(receiver: ReceiverHandle) -> None:
    port = _port(receiver)
    long_line = b"X-Long: " + b"a" * 70_000 + b"\r\n"
    response = _raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + long_line + b"\r\n")
    assert _status(response) in (400, 431)
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    response = _raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert _status(response) == 431
    _healthz_within(port)


def test_unauthenticated_huge_body_is_refused_before_reading(
    receiver: ReceiverHandle, recorder: Recorder
) -> None:
    port = _port(receiver)
    # 10 GB announced, nothing sent: the answer must come from the headers alone
    response = _raw(port, _callback_head(port, _fresh_headers(), 10 * 1024**3), timeout=2)
    assert _status(response) == 401
    assert _body(response) == {"error": "unauthorized"}
    assert recorder.rejects[-1][0] == 401


def test_authenticated_body_over_the_cap_is_413_without_reading(receiver: ReceiverHandle) -> None:
    port = _port(receiver)
    headers = _fresh_headers(**{"X-Api-Key": API_KEY})
    response = _raw(port, _callback_head(port, headers, 10 * 1024**3), timeout=2)
    assert _status(response) == 413


def test_slow_body_is_cut_at_its_deadline(receiver: ReceiverHandle) -> None:
    port = _port(receiver)
    headers = _fresh_headers(**{"X-Api-Key": API_KEY})
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(_callback_head(port, headers, 1000) + b"{")
        sock.settimeout(10)
        assert sock.recv(1024) == b""  # closed by the watchdog, not answered
    _healthz_within(port)


def test_expect_continue_is_not_answered_for_an_unauthenticated_client(
    receiver: ReceiverHandle,
) -> None:
    port = _port(receiver)
    head = _callback_head(port, {**_fresh_headers(), "Expect": "100-continue"}, 5)
    response = _raw(port, head, timeout=2)
    assert response.startswith(b"HTTP/1.1 401"), response[:40]


def test_unknown_path_is_404_without_reading_the_body(receiver: ReceiverHandle) -> None:
    port = _port(receiver)
    response = _raw(port, _callback_head(port, {}, 10 * 1024**3, path="/nope"), timeout=2)
    assert _status(response) == 404


# ------------------------------------------------------------------ malformed headers


@pytest.mark.parametrize(
    "headers",
    [
        {"webhook-timestamp": "9" * 5000},
        {"webhook-id": "m" * 65_000},
        {"webhook-signature": "v1," + "A" * 60_000},
        {"webhook-signature": " ".join(["v1,@@@"] * 3000)},
        {"X-Api-Key": "k" * 60_000},
        {"Authorization": "Bearer " + "e" * 60_000},
        {"webhook-timestamp": "-1"},
        {"webhook-id": "msg\x01bad"},
    ],
    ids=["5000-digit-ts", "65k-id", "60k-sig", "3000-sigs", "60k-key", "60k-jwt", "neg-ts", "ctl"],
)
def test_malformed_headers_are_a_generic_401_without_traceback(
    receiver: ReceiverHandle, recorder: Recorder, headers: dict[str, str]
) -> None:
    port = _port(receiver)
    sent = {**_fresh_headers(**{"X-Api-Key": API_KEY}), **headers}
    response = _raw(port, _callback_head(port, sent, 2) + b"{}")
    assert _status(response) == 401
    assert _body(response) == {"error": "unauthorized"}
    assert not any("Traceback" in line for line in recorder.logs)
    status, wid, _path, reason = recorder.rejects[-1]
    assert status == 401 and reason
    assert wid is None or len(wid) < 300  # the log line is bounded too
    _healthz_within(port)


def test_401_body_is_generic_and_the_reason_is_logged(
    receiver: ReceiverHandle, recorder: Recorder
) -> None:
    port = _port(receiver)
    stale = _fresh_headers(**{"X-Api-Key": API_KEY})
    stale["webhook-timestamp"] = str(int(time.time()) - 3600)
    response = _raw(port, _callback_head(port, stale, 2) + b"{}")
    assert _status(response) == 401
    assert _body(response) == {"error": "unauthorized"}  # no clock offset, no modes
    assert "tolerance" in recorder.rejects[-1][3]


# ------------------------------------------------------------------ --require


def _hmac_headers(body: bytes, webhook_id: str) -> dict[str, str]:
    from ci_report.callback.auth import hmac_key, hmac_signature

    ts = int(time.time())
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": hmac_signature(hmac_key(WHSEC), webhook_id, ts, body),
    }


def test_require_hmac_refuses_an_api_key_alone(recorder: Recorder) -> None:
    """Finding 9: with HMAC enabled, a right X-Api-Key and a tampered body used to be applied."""
    handle = start_receiver(
        api_keys=[API_KEY],
        signature_secrets=[WHSEC],
        require_modes=["hmac"],
        on_reject=recorder.reject,
    )
    try:
        port = _port(handle)
        body = b'{"runId": "r1", "status": "success"}'
        key_only = _fresh_headers(**{"X-Api-Key": API_KEY})
        response = _raw(port, _callback_head(port, key_only, len(body)) + body)
        assert _status(response) == 401
        assert "required credential not presented: hmac" in recorder.rejects[-1][3]
        # a signature for another body does not carry a tampered one either
        signed = {**_hmac_headers(b'{"status": "failed"}', "msg_req2"), "X-Api-Key": API_KEY}
        response = _raw(port, _callback_head(port, signed, len(body)) + body)
        assert _status(response) == 401
        good = {**_hmac_headers(body, "msg_req3"), "X-Api-Key": API_KEY}
        response = _raw(port, _callback_head(port, good, len(body)) + body)
        assert _status(response) == 200, response
        assert [e["run_id"] for e in handle.executions()] == ["r1"]
    finally:
        handle.stop()


def test_require_a_mode_that_is_not_configured_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="required but not configured: jwt"):
        start_receiver(api_keys=[API_KEY], require_modes=["jwt"])


# ------------------------------------------------------------------ management and routes


def _get(port: int, path: str, **headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return _raw(port, ("\r\n".join(lines) + "\r\n\r\n").encode())


def test_management_routes_need_the_token_when_one_is_set() -> None:
    handle = start_receiver(api_keys=[API_KEY], api_token=TOKEN)
    try:
        port = _port(handle)
        host = f"127.0.0.1:{port}"
        response = _get(port, "/api/executions", Host=host)
        assert _status(response) == 401 and b"WWW-Authenticate: Basic" in response
        assert _status(_get(port, "/api/executions", Host=host, Authorization="Bearer nope")) == 401
        ok = _get(port, "/api/executions", Host=host, Authorization=f"Bearer {TOKEN}")
        assert _status(ok) == 200 and _body(ok) == {"executions": []}
        basic = base64.b64encode(f"admin:{TOKEN}".encode()).decode()
        assert (
            _status(_get(port, "/api/executions", Host=host, Authorization=f"Basic {basic}")) == 200
        )
        # the callback routes and /healthz stay open
        assert _status(_get(port, "/healthz", Host=host)) == 200
    finally:
        handle.stop()


def test_without_a_token_only_loopback_names_are_served(receiver: ReceiverHandle) -> None:
    port = _port(receiver)
    assert _status(_get(receiver_port := port, "/api/executions", Host=f"127.0.0.1:{port}")) == 200
    assert _status(_get(receiver_port, "/api/executions", Host=f"localhost:{port}")) == 200
    # DNS rebinding: a page on evil.example resolved to 127.0.0.1 sends its own Host
    assert _status(_get(port, "/api/executions", Host=f"evil.example:{port}")) == 403


def _post(port: int, path: str, body: bytes = b"{}", **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return _raw(port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)


def test_state_changing_management_requests_pass_a_csrf_check(receiver: ReceiverHandle) -> None:
    seen: list[Request] = []

    def sync(request: Request) -> Response:
        seen.append(request)
        return Response(202, {"synced": request.path.rsplit("/", 1)[-1]})

    receiver.add_route("POST", "/api/runs", sync, management=True)
    port = _port(receiver)
    own = f"http://127.0.0.1:{port}"
    assert _status(_post(port, "/api/runs/r1/sync", Origin="https://evil.example")) == 403
    assert _status(_post(port, "/api/runs/r1/sync", Referer="https://evil.example/x")) == 403
    assert _status(_post(port, "/api/runs/r1/sync", Sec_Fetch_Site="cross-site")) == 403
    assert not seen
    assert _status(_post(port, "/api/runs/r1/sync", Origin=own)) == 202
    assert _status(_post(port, "/api/runs/r1/sync", Referer=own + "/runs/r1")) == 202
    # the page's form: a cross-origin Origin is fine with the embedded token
    form = f"csrf_token={receiver.csrf_token}".encode()
    response = _post(
        port,
        "/api/runs/r1/sync",
        form,
        Origin="null",
        Content_Type="application/x-www-form-urlencoded",
    )
    assert _status(response) == 202
    assert _status(_post(port, "/api/runs/r1/sync", X_CSRF_Token=receiver.csrf_token)) == 202
    # not a browser (no Origin, Referer or Sec-Fetch-Site): the token/loopback check is enough
    assert _status(_post(port, "/api/runs/r1/sync")) == 202
    assert [r.path for r in seen][-1] == "/api/runs/r1/sync"


def test_route_table_prefixes_methods_and_errors(receiver: ReceiverHandle) -> None:
    def echo(name: str):
        def handler(request: Request) -> Response:
            return Response(200, {"route": name, "path": request.path, "query": request.query})

        return handler

    def boom(request: Request) -> Response:
        raise RuntimeError("secret detail")

    receiver.add_route("GET", "/", echo("root"), management=False)
    receiver.add_route("GET", "/runs", echo("runs"), management=False)
    receiver.add_route("GET", "/runs/special", echo("special"), management=False)
    receiver.add_route("GET", "/boom", boom, management=False)
    port = _port(receiver)
    host = f"127.0.0.1:{port}"
    assert _body(_get(port, "/", Host=host))["route"] == "root"
    assert _body(_get(port, "/runs/r1?x=1&x=2", Host=host)) == {
        "route": "runs",
        "path": "/runs/r1",
        "query": {"x": ["1", "2"]},
    }
    assert _body(_get(port, "/runs/special/", Host=host))["route"] == "special"
    assert _status(_get(port, "/runsx", Host=host)) == 404  # a prefix is a whole segment
    assert _status(_get(port, "/elsewhere", Host=host)) == 404  # "/" is not a catch-all
    response = _post(port, "/runs/r1")
    assert _status(response) == 405 and b"Allow: GET" in response
    response = _get(port, "/boom", Host=host)
    assert _status(response) == 500 and b"secret detail" not in response


def test_a_signal_while_a_handler_thread_starts_stops_the_server(
    receiver: ReceiverHandle, recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: SIGTERM raised (as Interrupted) while the main thread started a handler
    thread was swallowed by socketserver, and the receiver never stopped (1 in ~6 SIGTERMs)."""
    from ci_report.errors import Interrupted

    sock = socket.socket()
    try:
        with pytest.raises(Interrupted):
            try:
                raise Interrupted(15)
            except Interrupted:
                receiver.server.handle_error(sock, ("127.0.0.1", 1))
        try:
            raise RuntimeError("handler bug")
        except RuntimeError:
            receiver.server.handle_error(sock, ("127.0.0.1", 1))  # logged, not raised
    finally:
        sock.close()
    assert any("handler bug" in line for line in recorder.logs)
    assert "handler bug" not in capsys.readouterr().err


def test_serves_an_ipv6_loopback_address() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        handle = start_receiver(api_keys=[API_KEY], host="::1")
    except OSError as exc:
        pytest.skip(f"::1 not available: {exc}")
    try:
        assert handle.base_url.startswith("http://[::1]:")
        port = _port(handle)
        with socket.create_connection(("::1", port), timeout=5) as sock:
            sock.sendall(b"GET /api/executions HTTP/1.1\r\nHost: [::1]\r\n\r\n")
            assert _read_response(sock).startswith(b"HTTP/1.1 200")  # loopback, no token
    finally:
        handle.stop()
