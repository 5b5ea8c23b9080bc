"""A fault-injecting HTTP server on 127.0.0.1 for callback delivery tests.

Each incoming request takes the next behaviour from a script (then ``default``):

- ``ok``: forward the request (same body and headers) to the upstream receiver, relay its answer
- ``drop``: read the request, close the connection without answering
- ``reset``: read the request, close with SO_LINGER 0 (the client sees a TCP RST)
- ``500`` / ``503`` / any 3-digit status: answer with that status (no forwarding)
- ``429:N``: answer 429 with ``Retry-After: N``
- ``302``: answer 302 with ``Location`` pointing at the upstream receiver
- ``slow:S``: wait S seconds (longer than the client's read timeout), then answer 200 without
  forwarding (the client has given up: nothing was applied)
- ``apply-then-500``: forward to the receiver (so it is applied), then answer 500
- ``hold``: keep the request open (no answer) until :meth:`FaultServer.release` or stop
- ``hold-then-ok``: like ``hold``, then forward it to the receiver and relay the answer

Every request is recorded (arrival time on the server's monotonic clock, headers, body, the
behaviour used), and every accepted TCP connection is counted, so tests can assert "no network".
The server answers with ``Connection: close`` so each request gets its own connection.

Also here (not in conftest.py, whose module name clashes with tests/unit/conftest.py when the
whole suite runs): :class:`Cli`, which runs ``python -m ci_report`` in a clean environment, the
secrets the test receiver knows, and helpers that read the outbox and the receiver.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence
from urllib.parse import urlsplit

_HOLD_LIMIT_S = 60.0


@dataclass
class FaultRequest:
    index: int
    behaviour: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    arrived: float  # time.monotonic() when the full request had been read
    answered_status: Optional[int] = None

    @property
    def webhook_id(self) -> Optional[str]:
        return self.headers.get("webhook-id")


@dataclass
class _State:
    script: list[str]
    default: str
    requests: list[FaultRequest] = field(default_factory=list)
    connections: int = 0


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        fs = self.server.owner
        with fs._lock:
            fs._state.connections += 1
        sock: socket.socket = self.request
        sock.settimeout(30)
        try:
            parsed = _read_request(sock)
        except (OSError, ValueError):
            return
        if parsed is None:
            return
        method, path, headers, body = parsed
        with fs._lock:
            behaviour = fs._state.script.pop(0) if fs._state.script else fs._state.default
            record = FaultRequest(
                index=len(fs._state.requests),
                behaviour=behaviour,
                method=method,
                path=path,
                headers=headers,
                body=body,
                arrived=time.monotonic(),
            )
            fs._state.requests.append(record)
            fs._arrived.notify_all()
        with contextlib.suppress(OSError):
            self._act(fs, sock, record)

    def _act(self, fs: FaultServer, sock: socket.socket, rec: FaultRequest) -> None:
        b = rec.behaviour
        if b == "drop":
            sock.shutdown(socket.SHUT_RDWR)
            return
        if b == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return  # BaseRequestHandler closes the socket: RST
        if b in ("hold", "hold-then-ok"):
            deadline = time.monotonic() + _HOLD_LIMIT_S
            while not fs._released.is_set() and time.monotonic() < deadline:
                fs._released.wait(0.05)
            if b == "hold-then-ok":
                status, data, ctype = fs._forward(rec)
                with contextlib.suppress(OSError):
                    _respond(sock, status, data, rec, {"Content-Type": ctype})
                return
            with contextlib.suppress(OSError):
                _respond(sock, 200, b'{"held":true}', rec)
            return
        if b.startswith("slow"):
            delay = float(b.split(":", 1)[1]) if ":" in b else 3.0
            fs._released.wait(delay)
            _respond(sock, 200, b'{"slow":true}', rec)
            return
        if b.startswith("429"):
            after = b.split(":", 1)[1] if ":" in b else "1"
            _respond(sock, 429, b'{"error":"slow down"}', rec, {"Retry-After": after})
            return
        if b == "302":
            _respond(sock, 302, b"", rec, {"Location": fs.upstream or "http://127.0.0.1:9/"})
            return
        if b in ("ok", "apply-then-500"):
            status, data, ctype = fs._forward(rec)
            if b == "apply-then-500":
                status, data = 500, b'{"error":"applied, then failed to answer"}'
            _respond(sock, status, data, rec, {"Content-Type": ctype})
            return
        if b.isdigit():
            _respond(sock, int(b), b'{"error":"injected"}', rec)
            return
        raise ValueError(f"unknown behaviour {b!r}")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: FaultServer


class FaultServer:
    """``FaultServer(upstream_url, script=[...], default="ok")``; ``.url`` is the address to
    give the client (same path as the upstream)."""

    def __init__(
        self,
        upstream: Optional[str] = None,
        script: Sequence[str] = (),
        default: str = "ok",
        path: Optional[str] = None,
    ) -> None:
        self.upstream = upstream
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._released = threading.Event()
        self._state = _State(script=list(script), default=default)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        if path is None:
            path = urlsplit(upstream).path if upstream else "/api/jenkins/callback"
        self.path = path or "/"

    # -- addresses ---------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    # -- control -----------------------------------------------------------------------
    def set_default(self, behaviour: str) -> None:
        with self._lock:
            self._state.default = behaviour

    def push(self, *behaviours: str) -> None:
        with self._lock:
            self._state.script.extend(behaviours)

    def release(self) -> None:
        """Answer every held (and future ``hold``/``slow``) request at once."""
        self._released.set()

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what happened -----------------------------------------------------------------
    @property
    def requests(self) -> list[FaultRequest]:
        with self._lock:
            return list(self._state.requests)

    @property
    def connections(self) -> int:
        with self._lock:
            return self._state.connections

    def ids(self) -> Counter[str]:
        return Counter(r.webhook_id or "" for r in self.requests)

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> list[FaultRequest]:
        end = time.monotonic() + timeout
        with self._arrived:
            while len(self._state.requests) < n:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(self._state.requests)} request(s) arrived, expected {n}"
                    )
                self._arrived.wait(left)
            return list(self._state.requests)

    # -- forwarding --------------------------------------------------------------------
    def _forward(self, rec: FaultRequest) -> tuple[int, bytes, str]:
        if not self.upstream:
            return 200, b'{"accepted":true,"noUpstream":true}', "application/json"
        target = urlsplit(self.upstream)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        try:
            headers = {k: v for k, v in rec.headers.items() if k not in ("host", "connection")}
            conn.request(rec.method, target.path or rec.path, body=rec.body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, data, resp.getheader("Content-Type") or "application/json"
        finally:
            conn.close()


def _read_request(
    sock: socket.socket,
) -> Optional[tuple[str, str, dict[str, str], bytes]]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
        if len(buf) > 1 << 20:
            raise ValueError("header too large")
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    body = rest
    while len(body) < length:
        chunk = sock.recv(min(65536, length - len(body)))
        if not chunk:
            raise ValueError("body cut short")
        body += chunk
    return method, path, headers, body[:length]


_REASONS = {200: "OK", 302: "Found", 429: "Too Many Requests", 500: "Internal Server Error"}


def _respond(
    sock: socket.socket,
    status: int,
    body: bytes,
    rec: FaultRequest,
    extra: Optional[dict[str, str]] = None,
) -> None:
    rec.answered_status = status
    reason = _REASONS.get(status) or http.client.responses.get(status, "Status")
    headers = {"Content-Type": "application/json", **(extra or {})}
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    sock.sendall("\r\n".join(lines).encode("latin-1") + body)


@contextlib.contextmanager
def closed_port():
    """A 127.0.0.1 port that refuses connections: bound (so nobody else takes it), never
    listening."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    try:
        yield int(s.getsockname()[1])
    finally:
        s.close()


# -- the ci-report CLI and what it leaves behind ----------------------------------------

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
