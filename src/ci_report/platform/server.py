"""The receiver's HTTP server: a route table, a management guard, and connections that cannot
stall it.

Stdlib only (``http.server``). What it guarantees, whatever the client does:

- **bounded time per connection**: the request head (request line + headers) must arrive within
  ``Limits.head_timeout_s`` of the connection becoming ready for a request (idle keep-alive
  included), and a body within ``body_timeout_s`` plus its size at ``min_body_rate`` bytes/s; a
  watchdog thread shuts down the socket of any connection past its deadline, so a client that
  sends one byte every few seconds (slowloris) is cut off just like a silent one. Every socket
  read and write also has an idle timeout (``idle_timeout_s``);
- **bounded connections**: at most ``max_connections`` at once; a new connection beyond that
  evicts the one that has waited longest for its request head (the likely slow client), and is
  refused (closed) only when every connection is busy with a real request. So ``/healthz``
  answers within a second even while hundreds of slow connections are open;
- **no body before authentication**: a handler sees ``Request.body`` only after the route's
  guard passed, read within the route's ``max_body``; anything larger is a 413 without reading
  it; ``Expect: 100-continue`` is answered only when the body is really wanted;
- **management routes** (``management=True``) need ``Authorization: Bearer <api token>`` (or
  HTTP Basic with the token as password, so a browser can log in); with no token configured they
  are served to loopback clients only, and only for a loopback ``Host`` (DNS rebinding). A
  state-changing management request from a browser must also be same-origin (``Origin`` /
  ``Referer`` / ``Sec-Fetch-Site``) or carry the server's CSRF token (header ``X-CSRF-Token`` or
  form field ``csrf_token``; ``Request.csrf_token`` is what a page embeds).

Routes: ``add_route(method, path, handler, management=...)``. A path matches itself and every
path below it (``/api/executions`` serves ``/api/executions/42``); ``/`` matches only ``/``; the
longest matching path wins; ``method`` ``"*"`` takes any method. A handler gets a
:class:`Request` and returns a :class:`Response`; what it raises becomes a 500 with a generic
body (the detail goes to the server's log).
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import ipaddress
import json
import secrets
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Mapping, Optional, Union, cast
from urllib.parse import parse_qs, urlsplit

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_MAX_BODY = 1024 * 1024  # management and page routes


@dataclass(frozen=True)
class Limits:
    max_connections: int = 256
    head_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    min_body_rate: float = 64 * 1024.0  # bytes/s a legitimate client manages at least
    idle_timeout_s: float = 5.0  # any single socket read or write
    max_headers: int = 64
    watchdog_interval_s: float = 0.1


@dataclass
class Request:
    method: str
    path: str  # without query string and trailing slash ("/" for the root)
    query: dict[str, list[str]]
    headers: Mapping[str, str]  # case-insensitive (an http.client.HTTPMessage)
    body: bytes
    client: str  # the peer's IP address
    csrf_token: str  # embed it in pages whose forms POST back to management routes
    scheme: str = "http"
    state: dict[str, Any] = field(default_factory=dict)  # what a route's authorize() found


@dataclass
class Response:
    status: int
    body: Union[bytes, dict[str, Any], list[Any]] = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if isinstance(self.body, (bytes, bytearray)):
            return bytes(self.body)
        return json.dumps(self.body).encode()


Handler = Callable[[Request], Response]


@dataclass
class Route:
    method: str
    path: str
    handler: Handler
    management: bool
    max_body: int = DEFAULT_MAX_BODY
    # a route that checks its own credentials before the body (the callback routes) reads the
    # body itself through Request.body only after that check; see Receiver routes
    authorize: Optional[Callable[[Request], Optional[Response]]] = None
    # told when the server refuses the body after authorize() (411, 413, 400)
    refused: Optional[Callable[[Request, Response], None]] = None


def normalize_path(raw: str) -> str:
    path = raw.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    return path or "/"


class Router:
    """The route table; safe to change while the server runs."""

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], Route] = {}
        self._lock = threading.Lock()

    def add(self, route: Route) -> None:
        path = normalize_path(route.path)
        route.path = path
        with self._lock:
            self._routes[(route.method.upper(), path)] = route

    def match(self, method: str, path: str) -> tuple[Optional[Route], list[str]]:
        """The route for (method, path), else None and the methods the path does take."""
        with self._lock:
            candidates = [r for r in self._routes.values() if _path_matches(r.path, path)]
        if not candidates:
            return None, []
        longest = max(len(r.path) for r in candidates)
        candidates = [r for r in candidates if len(r.path) == longest]
        by_method = {r.method: r for r in candidates}
        route = by_method.get(method) or by_method.get("*")
        if route is None and method == "HEAD":
            route = by_method.get("GET")
        return route, sorted(by_method)


def _path_matches(route_path: str, path: str) -> bool:
    if route_path == "/":
        return path == "/"
    return path == route_path or path.startswith(route_path + "/")


def is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def _host_is_loopback(host_header: str) -> bool:
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host in ("localhost", "localhost.") or host.endswith(".localhost") or is_loopback(host)


@dataclass
class _Conn:
    sock: socket.socket
    phase: str  # "head" (waiting for a request head), "body", "busy"
    since: float
    deadline: Optional[float]
    cut: bool = False


class GuardedHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server with the route table, limits and management guard above."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the listen backlog: a burst of connections is not dropped

    def __init__(
        self,
        address: tuple[str, int],
        router: Router,
        *,
        limits: Optional[Limits] = None,
        api_token: Optional[str] = None,
        on_log: Optional[Callable[[str], None]] = None,
        handler_class: Optional[type[BaseHTTPRequestHandler]] = None,
    ) -> None:
        if ":" in address[0]:  # an IPv6 literal such as ::1 or ::
            self.address_family = socket.AF_INET6
        super().__init__(address, handler_class or RoutedHandler)
        self.router = router
        self.limits = limits or Limits()
        self.api_token = (api_token or "").strip() or None
        self.csrf_token = secrets.token_urlsafe(24)
        self.on_log = on_log
        self.scheme = "http"
        self._conns: dict[int, _Conn] = {}
        self._conns_lock = threading.Lock()
        self._stopping = threading.Event()
        self.stats = {"evicted": 0, "refused": 0, "timed_out": 0}
        self._watchdog = threading.Thread(
            target=self._watch, name="ci-report-receiver-watchdog", daemon=True
        )
        self._watchdog.start()

    # -- connection bookkeeping -----------------------------------------------------------
    def log(self, line: str) -> None:
        if self.on_log:
            with contextlib.suppress(Exception):  # a log callback must never break a connection
                self.on_log(line)

    def process_request(self, request: Any, client_address: Any) -> None:
        now = time.monotonic()
        with self._conns_lock:
            live = [c for c in self._conns.values() if not c.cut]
            if len(live) >= self.limits.max_connections:
                waiting = [c for c in live if c.phase == "head"]
                if not waiting:
                    self.stats["refused"] += 1
                    self._refuse(request)
                    return
                victim = min(waiting, key=lambda c: c.since)
                self._cut(victim)
                self.stats["evicted"] += 1
            self._conns[id(request)] = _Conn(request, "head", now, now + self.limits.head_timeout_s)
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """socketserver calls this for what escaped a request. A signal turned into
        :class:`~ci_report.errors.Interrupted` while the main thread was starting a handler
        thread must stop the server (socketserver would swallow it, and the recorder raises only
        once: the server would never stop); anything else goes to the log, not to stderr."""
        from ..errors import Interrupted

        exc = sys.exc_info()[1]
        if isinstance(exc, Interrupted):
            self.shutdown_request(request)
            raise exc
        self.log(f"error while serving {client_address}:\n{traceback.format_exc()}")

    def _refuse(self, request: Any) -> None:
        try:
            request.setblocking(False)
            if not hasattr(request, "context"):  # plain TCP: say why before closing
                request.send(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                    b"Connection: close\r\nRetry-After: 1\r\n\r\n"
                )
        except OSError:
            pass
        self.shutdown_request(request)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.pop(id(request), None)
        super().shutdown_request(request)

    def set_phase(self, request: Any, phase: str, budget_s: Optional[float]) -> None:
        now = time.monotonic()
        with self._conns_lock:
            conn = self._conns.get(id(request))
            if conn is not None:
                conn.phase = phase
                conn.since = now
                conn.deadline = None if budget_s is None else now + budget_s

    def _cut(self, conn: _Conn) -> None:
        """Unblock whatever thread reads or writes this socket (it then closes it)."""
        conn.cut = True
        with contextlib.suppress(OSError):
            socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)

    def _watch(self) -> None:
        while not self._stopping.wait(self.limits.watchdog_interval_s):
            now = time.monotonic()
            with self._conns_lock:
                for conn in self._conns.values():
                    if not conn.cut and conn.deadline is not None and now > conn.deadline:
                        self.stats["timed_out"] += 1
                        self._cut(conn)

    def open_connections(self) -> int:
        with self._conns_lock:
            return sum(1 for c in self._conns.values() if not c.cut)

    def server_close(self) -> None:
        self._stopping.set()
        super().server_close()
        with self._conns_lock:
            for conn in list(self._conns.values()):
                self._cut(conn)


class RoutedHandler(BaseHTTPRequestHandler):
    server: GuardedHTTPServer
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes; with Nagle on, the body waits for the
    # client's delayed ACK (~40 ms) on every keep-alive request after the first
    disable_nagle_algorithm = True
    server_version = "ci-report-receiver"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.limits.idle_timeout_s)
        do_handshake = getattr(self.connection, "do_handshake", None)
        if do_handshake is not None:  # TLS: handshake here, under the deadline, not in accept()
            do_handshake()

    def handle(self) -> None:
        try:
            super().handle()
        except (OSError, ValueError):
            # a connection cut by the watchdog, reset by the peer, or a TLS failure
            self.close_connection = True

    def handle_one_request(self) -> None:
        self.server.set_phase(self.connection, "head", self.server.limits.head_timeout_s)
        self._expect_continue = False
        self._body_read = False
        super().handle_one_request()

    def handle_expect_100(self) -> bool:
        # answered in read_body(), only once the request is authorized
        self._expect_continue = True
        return True

    def log_message(self, format: str, *args: Any) -> None:
        self.server.log(format % args)

    # -- dispatch -------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        self.server.set_phase(self.connection, "busy", None)
        if len(self.headers) > self.server.limits.max_headers:
            self.send(Response(431, {"error": "too many headers"}))
            return
        path = normalize_path(self.path)
        route, allowed = self.server.router.match(self.command, path)
        if route is None:
            if allowed:
                self.send(
                    Response(
                        405, {"error": "method not allowed"}, headers={"Allow": ", ".join(allowed)}
                    )
                )
            else:
                self.send(Response(404, {"error": "not found"}))
            return
        request = Request(
            method=self.command,
            path=path,
            query=_query(self.path),
            headers=cast("Mapping[str, str]", self.headers),
            body=b"",
            client=str(self.client_address[0]),
            csrf_token=self.server.csrf_token,
            scheme=self.server.scheme,
        )
        if route.management:
            refused = self._guard_management(request)
            if refused is not None:
                self.send(refused)
                return
        if route.authorize is not None:
            refused = route.authorize(request)
            if refused is not None:
                self.send(refused)
                return
        if self.command not in SAFE_METHODS or self.headers.get("Content-Length"):
            body = self.read_body(route.max_body)
            if isinstance(body, Response):
                if route.refused is not None:
                    route.refused(request, body)
                self.send(body)
                return
            request.body = body
        if route.management and self.command not in SAFE_METHODS and not _csrf_ok(request):
            self.server.log(f"refused {self.command} {path}: cross-site request (CSRF check)")
            self.send(Response(403, {"error": "cross-site request refused"}))
            return
        try:
            response = route.handler(request)
        except Exception:
            self.server.log(f"handler for {self.command} {path} failed:\n{traceback.format_exc()}")
            response = Response(500, {"error": "internal error"})
        self.send(response)

    def _guard_management(self, request: Request) -> Optional[Response]:
        token = self.server.api_token
        if token:
            presented = _presented_token(request.headers)
            if presented is None or not hmac.compare_digest(
                presented.encode("utf-8", "replace"), token.encode("utf-8")
            ):
                self.server.log(
                    f"refused {request.method} {request.path} from {request.client}: "
                    + ("wrong API token" if presented else "no API token")
                )
                return Response(
                    401,
                    {"error": "unauthorized"},
                    headers={"WWW-Authenticate": 'Basic realm="ci-report receiver"'},
                )
            return None
        if not is_loopback(request.client) or not _host_is_loopback(
            request.headers.get("Host", "")
        ):
            self.server.log(
                f"refused {request.method} {request.path} from {request.client}: the management "
                "API is served to loopback clients only while no API token is set"
            )
            return Response(
                403,
                {
                    "error": "forbidden",
                    "fix": "set CI_REPORT_API_TOKEN on the receiver and send it as a Bearer token",
                },
            )
        return None

    def read_body(self, cap: int) -> Union[bytes, Response]:
        """The request body, at most ``cap`` bytes, read under the body deadline."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            return Response(411, {"error": "Content-Length required (no chunked bodies)"})
        text = self.headers.get("Content-Length")
        if text is None:
            if self.command in SAFE_METHODS:
                return b""
            self.close_connection = True
            return Response(411, {"error": "Content-Length required"})
        text = text.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 15:
            self.close_connection = True
            return Response(400, {"error": "malformed Content-Length"})
        length = int(text)
        if length > cap:
            self.close_connection = True
            return Response(413, {"error": "body too large", "maxBytes": cap})
        limits = self.server.limits
        self.server.set_phase(
            self.connection, "body", limits.body_timeout_s + length / limits.min_body_rate
        )
        if self._expect_continue:
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()
        body = self.rfile.read(length)
        self.server.set_phase(self.connection, "busy", None)
        if len(body) != length:
            self.close_connection = True
            raise ConnectionError("body shorter than Content-Length")
        self._body_read = True
        return body

    def send(self, response: Response) -> None:
        data = response.encoded()
        if not self._body_read and (
            self.headers.get("Content-Length", "0").strip() not in ("", "0")
            or self.headers.get("Transfer-Encoding")
        ):
            self.close_connection = True  # the unread body would be taken for the next request
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in response.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def _query(raw_path: str) -> dict[str, list[str]]:
    _, _, query = raw_path.partition("?")
    return parse_qs(query.split("#", 1)[0], keep_blank_values=True, max_num_fields=100)


def _presented_token(headers: Mapping[str, str]) -> Optional[str]:
    auth = (headers.get("Authorization") or "").strip()
    if len(auth) > 4096:
        return None
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def _csrf_ok(request: Request) -> bool:
    """A state-changing management request: same-origin, the CSRF token, or not a browser."""
    presented = request.headers.get("X-CSRF-Token")
    content_type = request.headers.get("Content-Type", "")
    if not presented and content_type.startswith("application/x-www-form-urlencoded"):
        try:
            form = parse_qs(request.body.decode("utf-8"), max_num_fields=100)
        except (UnicodeDecodeError, ValueError):
            form = {}
        presented = (form.get("csrf_token") or [""])[0]
    if presented and hmac.compare_digest(presented.encode(), request.csrf_token.encode()):
        return True
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.strip().lower() not in ("same-origin", "none"):
        return False
    own = f"{request.scheme}://{request.headers.get('Host', '')}".lower()
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin.strip().lower() == own
    referer = request.headers.get("Referer")
    if referer is not None:
        parts = urlsplit(referer.strip())
        return f"{parts.scheme}://{parts.netloc}".lower() == own
    # no Origin, no Referer, no Sec-Fetch-Site: not a browser (browsers send Origin on POST)
    return True
