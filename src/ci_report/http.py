"""The one HTTP layer: sessions, transport failures in people's words, bounded reads.

Every client of ci-report (the callback sender, the Jenkins client, the registry client, the
endpoint diagnosis) builds its session here and classifies what went wrong here, so that the same
failure reads the same everywhere and each client keeps only its own domain hints.

- :func:`make_session`: no retries behind our back (our loops decide), no redirects unless the
  caller asks (a redirect turns a POST into a GET and can carry credentials to another host), our
  User-Agent, a CA bundle when given; proxies, ``NO_PROXY`` and ``REQUESTS_CA_BUNDLE`` come from the
  environment as requests reads them, resolved once per URL.
- :func:`classify`: a transport exception -> :class:`TransportFailure` (kind, few words, whether the
  request may have reached the server), by exception *types* along the cause chain, never by
  matching message text.
- :func:`post_bytes`: ``session.post(url, data=body, ...)`` without requests' per-request
  session work that a bytes body on a plain session does not need (the flush's hot loop).
- :func:`read_bounded`: a streamed body read with a byte cap and an overall deadline.
- :func:`short` / :func:`excerpt`: one way to cut a message or a response body for a console line.

requests is imported inside the functions (through :func:`.requests_loader.load_requests`):
importing this module costs nothing.
"""

from __future__ import annotations

import errno
import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Union

from . import USER_AGENT
from .requests_loader import load_requests

if TYPE_CHECKING:
    import requests

# kinds of transport failure (stable words: tests and diagnose steps use them)
DNS = "dns"
REFUSED = "refused"
UNREACHABLE = "unreachable"
CONNECT_TIMEOUT = "connect-timeout"
READ_TIMEOUT = "read-timeout"
RESET = "reset"
CLOSED = "closed"
BROKEN = "broken"
TLS = "tls"
PROXY = "proxy"
TOO_LARGE = "too-large"
DEADLINE = "deadline"
INVALID_URL = "invalid-url"
OTHER = "other"

_REASONS = {
    DNS: "DNS lookup failed (unknown host name)",
    REFUSED: "connection refused (nothing listens at that host and port)",
    UNREACHABLE: "no route to the host (network unreachable)",
    CONNECT_TIMEOUT: "connect timeout (no answer from the host: firewall or wrong address?)",
    READ_TIMEOUT: "read timeout (the server accepted the connection but did not answer)",
    RESET: "connection reset by the server",
    CLOSED: "the server closed the connection without answering",
    BROKEN: "the connection broke while reading the answer",
    TLS: "TLS error",
    PROXY: "the proxy failed",
    TOO_LARGE: "the answer is larger than allowed",
    DEADLINE: "the answer did not arrive within the deadline",
    INVALID_URL: "the URL is not usable",
    OTHER: "connection error",
}


class ResponseTooLarge(OSError):
    """A body passed the byte cap of :func:`read_bounded`."""

    def __init__(self, limit: int, what: str = "the answer") -> None:
        super().__init__(f"{what} is larger than {fmt_limit(limit)}")
        self.limit = limit


class DeadlineExceeded(TimeoutError):
    """A body did not arrive within the deadline of :func:`read_bounded`."""


@dataclass(frozen=True)
class TransportFailure:
    """What went wrong below HTTP. ``sent`` is False only when the connection was never made
    (DNS, refused, unreachable, connect timeout): then the server cannot have seen the request."""

    kind: str
    reason: str
    sent: bool
    detail: str = ""

    @property
    def retryable(self) -> bool:
        return self.kind not in (TLS, INVALID_URL, TOO_LARGE)

    def __str__(self) -> str:
        return self.reason + (f": {self.detail}" if self.detail else "")


def fmt_limit(n: int) -> str:
    return f"{n / 1_000_000:.0f} MB" if n >= 1_000_000 else f"{n} bytes"


def short(text: Union[str, BaseException, None], limit: int = 200) -> str:
    """``text`` (or an exception's message) on one line, at most ``limit`` characters."""
    value = "" if text is None else str(text)
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def excerpt(response: Any, limit: int = 300) -> str:
    """The start of a response body for a console line; never raises, never reads a streamed
    body past what the caller already read."""
    try:
        if getattr(response, "_content_consumed", True) is False:
            return ""
        text = response.text
    except Exception:  # an undecodable body is never a reason to fail
        return ""
    return short(text, limit)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception it wraps (args, urllib3 ``reason``, cause, context)."""
    seen: set[int] = set()
    out: list[BaseException] = []
    stack: list[Any] = [exc]
    while stack and len(out) < 32:
        item = stack.pop(0)
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        out.append(item)
        stack.extend(a for a in getattr(item, "args", ()) if isinstance(a, BaseException))
        stack.extend([getattr(item, "reason", None), item.__cause__, item.__context__])
    return out


def url_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean the URL itself cannot be used (no scheme, an unknown scheme, a
    malformed host): a configuration error, never retried. ``except url_errors() as exc:``."""
    load_requests()
    import requests
    from urllib3 import exceptions as u3

    return (
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
        u3.LocationParseError,
    )


def classify(exc: BaseException) -> TransportFailure:
    """The transport failure behind ``exc`` (a requests/urllib3/socket/ssl exception)."""
    load_requests()
    import requests
    from urllib3 import exceptions as u3

    chain = _chain(exc)

    def has(*types: type) -> Optional[BaseException]:
        return next((e for e in chain if isinstance(e, types)), None)

    detail = short(exc, 160)
    if has(ResponseTooLarge):
        return TransportFailure(TOO_LARGE, _REASONS[TOO_LARGE], True, short(has(ResponseTooLarge)))
    if has(DeadlineExceeded):
        return TransportFailure(DEADLINE, _REASONS[DEADLINE], True)
    if has(*url_errors()):
        return TransportFailure(INVALID_URL, _REASONS[INVALID_URL], False, detail)
    proxy = has(requests.exceptions.ProxyError, u3.ProxyError)
    if proxy is not None:
        inner = classify_inner(chain, skip_proxy=True)
        words = inner.reason if inner.kind != OTHER else short(proxy, 120)
        return TransportFailure(PROXY, f"{_REASONS[PROXY]}: {words}", inner.sent)
    return classify_inner(chain, detail=detail)


def classify_inner(
    chain: list[BaseException], *, skip_proxy: bool = False, detail: str = ""
) -> TransportFailure:
    """The classification ladder below the proxy layer (see :func:`classify`)."""
    import requests
    from urllib3 import exceptions as u3

    def has(*types: type) -> Optional[BaseException]:
        return next((e for e in chain if isinstance(e, types)), None)

    def fail(kind: str, sent: bool, extra: str = "") -> TransportFailure:
        return TransportFailure(kind, _REASONS[kind], sent, extra)

    if has(u3.NameResolutionError, socket.gaierror):
        return fail(DNS, False)
    tls = has(ssl.SSLError, requests.exceptions.SSLError, u3.SSLError)
    if tls is not None:
        return fail(TLS, True, short(tls, 160))
    if has(ConnectionRefusedError):
        return fail(REFUSED, False)
    os_error = next(
        (
            e
            for e in chain
            if isinstance(e, OSError) and e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH)
        ),
        None,
    )
    if os_error is not None:
        return fail(UNREACHABLE, False)
    if has(requests.exceptions.ConnectTimeout, u3.ConnectTimeoutError):
        return fail(CONNECT_TIMEOUT, False)
    if has(requests.exceptions.ReadTimeout, u3.ReadTimeoutError, socket.timeout, TimeoutError):
        return fail(READ_TIMEOUT, True)
    if has(ConnectionResetError):
        return fail(RESET, True)
    if has(http.client.RemoteDisconnected, ConnectionAbortedError, BrokenPipeError):
        return fail(CLOSED, True)
    if has(
        requests.exceptions.ChunkedEncodingError,
        u3.ProtocolError,
        http.client.IncompleteRead,
        u3.IncompleteRead,
    ):
        return fail(BROKEN, True)
    if has(u3.NewConnectionError):
        return fail(OTHER, False, detail)
    return fail(OTHER, True, detail)


def make_session(
    *,
    ca_bundle: Optional[str] = None,
    user_agent: str = USER_AGENT,
    follow_redirects: bool = False,
) -> requests.Session:
    """A session that never retries behind our back and (by default) never follows redirects."""
    load_requests()
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    class _Session(requests.Session):
        # requests' get() and options() pass allow_redirects=True themselves: decide here
        def request(self, method: Any, url: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            kwargs.setdefault("allow_redirects", follow_redirects)
            return super().request(method, url, **kwargs)

        def get(self, url: Any, **kwargs: Any) -> Any:
            return self.request("GET", url, **kwargs)

        def options(self, url: Any, **kwargs: Any) -> Any:
            return self.request("OPTIONS", url, **kwargs)

    session = _Session()
    adapter = HTTPAdapter(max_retries=Retry(total=0, redirect=0, raise_on_redirect=False))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = user_agent
    if ca_bundle:
        session.verify = ca_bundle
    # requests re-reads the proxy variables, NO_PROXY and REQUESTS_CA_BUNDLE from os.environ for
    # every request (two full scans of the environment). A flush sends hundreds of requests to one
    # URL under an unchanged environment: resolve them once per URL.
    merge = session.merge_environment_settings
    resolved: dict[Any, Any] = {}

    def merge_once(url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        key = (url, repr(proxies), stream, repr(verify), repr(cert))
        if key not in resolved:
            resolved[key] = merge(url, proxies, stream, verify, cert)
        return {k: dict(v) if isinstance(v, dict) else v for k, v in resolved[key].items()}

    session.merge_environment_settings = merge_once  # type: ignore[method-assign]
    return session


def post_bytes(
    session: requests.Session,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: Any,
    verify: Any = True,
) -> requests.Response:
    """``session.post(url, data=body, headers=headers, timeout=timeout, verify=verify,
    allow_redirects=False)``: the same prepared request sent by the same ``session.send``
    (adapter, proxies, ``NO_PROXY``, CA bundle, TLS, hooks, cookies kept, requests' exception
    types), without the preparation work a bytes body on a plain session does not need per
    request: the cookie jar merges, the ``.netrc`` lookup, the setting merges (~0.1 of ~0.5 ms
    CPU per POST, which a flush pays once per entry).

    The ordinary ``session.post`` is used when any of that matters: a session holding cookies
    (an earlier answer set one), auth or params, a ``.netrc`` entry for the URL (looked up once
    per URL and session), a body that is not bytes."""
    import requests
    from requests.cookies import RequestsCookieJar
    from requests.utils import get_netrc_auth

    netrc_of: dict[str, Any] = session.__dict__.setdefault("_ci_report_netrc", {})
    if url not in netrc_of:
        netrc_of[url] = get_netrc_auth(url) if session.trust_env else None
    if (
        not isinstance(body, bytes)
        or netrc_of[url]
        or len(session.cookies)
        or session.auth is not None
        or session.params
    ):
        return session.post(
            url, data=body, headers=headers, timeout=timeout, verify=verify, allow_redirects=False
        )
    # what Session.prepare_request does for this request
    # (CaseInsensitiveDict's own store: lower-case name -> (name as last given, value))
    store = {name.lower(): (name, value) for name, value in session.headers.items()}
    store.update((name.lower(), (name, value)) for name, value in headers.items())
    # merge_setting: a None value removes a session header
    merged = {name: value for name, value in store.values() if value is not None}
    prep = requests.PreparedRequest()
    prep.prepare_method("POST")
    prep.prepare_url(url, None)
    prep.prepare_headers(merged)
    prep.prepare_cookies(RequestsCookieJar())  # the session's jar is empty
    prep.prepare_body(body, None)
    prep.prepare_auth(None, url)  # user:password@ in the URL, as requests does
    prep.prepare_hooks(session.hooks)
    settings = session.merge_environment_settings(str(prep.url), {}, None, verify, None)
    return session.send(prep, timeout=timeout, allow_redirects=False, **settings)


def read_bounded(
    response: requests.Response,
    max_bytes: int,
    *,
    deadline: Optional[float] = None,
    what: str = "the answer",
    chunk_size: int = 65_536,
) -> bytes:
    """Read a ``stream=True`` response's body: at most ``max_bytes`` (else
    :class:`ResponseTooLarge`), done by ``deadline`` (a ``time.monotonic()`` value; else
    :class:`DeadlineExceeded`). Each read returns as soon as some bytes arrive, so a server that
    drips a byte at a time is stopped by the deadline, within one read timeout. The response is
    closed on any failure."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        response.close()
        raise ResponseTooLarge(max_bytes, what)
    if getattr(response, "_content_consumed", False):
        data = response.content or b""
        if len(data) > max_bytes:
            raise ResponseTooLarge(max_bytes, what)
        return data
    raw = response.raw
    read1 = getattr(raw, "read1", None)
    parts: list[bytes] = []
    size = 0
    try:
        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise DeadlineExceeded(f"{what} did not arrive within the deadline")
            chunk = (
                read1(chunk_size, decode_content=True)
                if read1 is not None
                else raw.read(4096, decode_content=True)
            )
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise ResponseTooLarge(max_bytes, what)
            parts.append(chunk)
    except BaseException:
        response.close()
        raise
    data = b"".join(parts)
    # later readers (response.text/json) see the body we read
    response._content = data
    response._content_consumed = True  # type: ignore[attr-defined]
    return data
