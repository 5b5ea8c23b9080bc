"""Deliver one callback body: our own retry loop, because every attempt must be signed again.

Retried: connection errors, read timeouts, 408, 409, 425, 429, 500, 502, 503, 504 (honouring
``Retry-After`` within the deadline). Never retried: other 4xx, TLS errors, any 3xx (redirects are
not followed: they would leak ``X-Api-Key`` and turn the POST into a GET). Backoff starts at 1 s,
doubles to 60 s, with jitter in [d/2, d]. This module never writes the outbox: the caller decides.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..console import Console, get_console
from ..errors import ConfigError
from ..http import classify, excerpt, load_requests, post_bytes, short, url_errors
from ..wire import CALLBACK_PATH, SIGNATURE_TOLERANCE_S
from .auth import sign_request

if TYPE_CHECKING:
    import requests

    from ..config import Settings

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
BACKOFF_START_S = 1.0
BACKOFF_CAP_S = 60.0
CLOCK_SKEW_LIMIT_S = SIGNATURE_TOLERANCE_S
# backlog headers, outside the signed body (the receiver reads them for its metrics)
ATTEMPT_HEADER = "CI-Report-Attempt"
FIRST_ATTEMPT_HEADER = "CI-Report-First-Attempt"
BACKLOG_HEADER = "CI-Report-Outbox-Backlog"
_DUPLICATE = re.compile(r'"duplicate"\s*:\s*true')


@dataclass
class DeliveryResult:
    """``delivered`` (2xx), ``rejected`` (the receiver refused: 3xx/4xx) or ``queued``
    (not delivered for a reason that may pass: network, 5xx, deadline)."""

    outcome: str
    attempts: int = 0
    status_code: Optional[int] = None
    error: Optional[str] = None
    response_excerpt: Optional[str] = None
    elapsed_s: float = 0.0
    hints: list[str] = field(default_factory=list)  # fixes for a person
    notes: list[str] = field(default_factory=list)  # facts: why the loop stopped
    first_attempt_at: Optional[float] = None  # unix seconds of the delivery id's first attempt

    @property
    def duplicate(self) -> bool:
        """The receiver says it had this delivery id already (applied once)."""
        return bool(_DUPLICATE.search(self.response_excerpt or ""))

    @property
    def delivered(self) -> bool:
        return self.outcome == "delivered"


def backoff_delay(attempt: int, rng: Callable[[float, float], float] = random.uniform) -> float:
    """Sleep before attempt ``attempt + 1``: d = min(60, 2^(attempt-1)) s, jittered to [d/2, d]."""
    d = min(BACKOFF_CAP_S, BACKOFF_START_S * 2 ** (attempt - 1))
    return rng(d / 2, d)


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        import email.utils

        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, parsed.timestamp() - now)


def make_session(settings: Settings) -> requests.Session:
    """The callback session: :func:`ci_report.http.make_session` with the settings' CA bundle."""
    from ..http import make_session as http_session

    return http_session(ca_bundle=settings.ca_bundle)


def _skew_hint(response: requests.Response) -> Optional[str]:
    date = response.headers.get("Date")
    if not date:
        return None
    try:
        import email.utils

        server = email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    skew = time.time() - server
    if abs(skew) > CLOCK_SKEW_LIMIT_S - 60:
        side = "ahead of" if skew > 0 else "behind"
        return (
            f"this agent's clock is {abs(skew):.0f} s {side} the receiver's; signatures and "
            "JWTs are only accepted within 300 s: enable NTP on the agent"
        )
    return None


_STATUS_FIXES = {
    401: "the receiver did not accept the credentials: check that the secrets bound in "
    "Jenkins match the platform's (run 'ci-report diagnose' to test each mode)",
    403: "the credentials are valid but not allowed here: check the platform's permissions "
    "for this key",
    404: f"nothing answers at this path: the callback path is {CALLBACK_PATH} (set "
    "API_CALLBACK_URL to the platform base URL, or CI_REPORT_URL to the full URL)",
    405: "the URL does not accept POST: check CI_REPORT_URL / API_CALLBACK_URL",
    407: "the proxy from HTTP_PROXY/HTTPS_PROXY wants credentials: put them in the proxy "
    "URL (http://user:password@proxy:port) or add the platform's host to NO_PROXY",
    413: "the payload is too large for the receiver: lower --max-results",
    422: "the receiver refused this payload (a different body under the same delivery id "
    "means the results changed for the same build)",
}


def deliver(
    body: bytes,
    delivery_id: str,
    url: str,
    settings: Settings,
    *,
    console: Optional[Console] = None,
    session: Optional[requests.Session] = None,
    subject: Optional[str] = None,
    max_attempts: Optional[int] = None,
    deadline_s: Optional[float] = None,
    timeout_s: Optional[float] = None,
    sleep: Callable[[float], Any] = time.sleep,
    quiet: bool = False,
    earlier_attempts: int = 0,
    first_attempt_at: Optional[float] = None,
    backlog: Optional[int] = None,
) -> DeliveryResult:
    """POST ``body`` to ``url`` until it is delivered, refused, or attempts/deadline run out.
    ``timeout_s`` caps the connect and read timeouts (a flush budget).

    Besides the signed headers every POST carries, outside the signature, ``CI-Report-Attempt``
    (``earlier_attempts`` + this attempt: the count over the delivery id's life),
    ``CI-Report-First-Attempt`` (unix seconds of the delivery id's first attempt) and, when
    ``backlog`` is given, ``CI-Report-Outbox-Backlog`` (other entries waiting in the outbox)."""
    load_requests()
    import requests

    from ..jenkins_env import strip_credentials

    # userinfo is never sent implicitly (requests would turn it into Authorization: Basic and
    # replace the JWT): the caller decides about credentials, the URL carries none
    url = strip_credentials(url) or url

    console = console or get_console()
    own_session = session is None
    session = session or make_session(settings)
    max_attempts = max(1, settings.max_attempts if max_attempts is None else max_attempts)
    deadline_s = settings.deadline if deadline_s is None else deadline_s
    verify: Any = settings.ca_bundle if settings.ca_bundle else True
    timeout = (settings.connect_timeout, settings.read_timeout)
    if timeout_s is not None:
        timeout = (min(timeout[0], timeout_s), min(timeout[1], timeout_s))
    start = time.monotonic()
    result = DeliveryResult(outcome="queued")
    result.first_attempt_at = first_attempt_at
    try:
        for attempt in range(1, max_attempts + 1):
            result.attempts = attempt
            headers = sign_request(settings, body, delivery_id, url=url, subject=subject)
            if first_attempt_at is None:
                first_attempt_at = time.time()
            headers[ATTEMPT_HEADER] = str(max(0, earlier_attempts) + attempt)
            headers[FIRST_ATTEMPT_HEADER] = str(int(first_attempt_at))
            if backlog is not None:
                headers[BACKLOG_HEADER] = str(max(0, backlog))
            retry_after: Optional[float] = None
            try:
                response = post_bytes(session, url, body, headers, timeout=timeout, verify=verify)
            except requests.exceptions.SSLError as exc:
                result.outcome, result.status_code = "queued", None
                result.error = f"TLS error: {short(exc, 240)}"
                result.hints.append(
                    "the receiver's certificate is not trusted: pass --ca-bundle (or set "
                    "REQUESTS_CA_BUNDLE) with the CA that signed it; TLS errors are not retried"
                )
                break
            except url_errors() as exc:
                raise ConfigError(
                    "the callback URL is not usable",
                    cause=short(exc, 240),
                    fix="set CI_REPORT_URL to a full http(s):// URL",
                ) from None
            except requests.exceptions.InvalidHeader:
                raise ConfigError(
                    "a credential cannot be sent as an HTTP header",
                    cause="it contains a newline or another character not allowed in headers",
                    fix="re-create the Jenkins credential without trailing newlines",
                ) from None
            except requests.exceptions.ProxyError as exc:
                result.status_code = None
                proxy = _proxy_for(url)
                failure = classify(exc)
                words = failure.reason.split(": ", 1)[-1] if ": " in failure.reason else "failed"
                result.error = f"cannot reach the proxy {proxy or ''}: {words}"
                hint = (
                    "the proxy comes from HTTP_PROXY/HTTPS_PROXY on this agent: check it, or "
                    "add the platform's host to NO_PROXY if it is reachable directly"
                )
                if hint not in result.hints:
                    result.hints.append(hint)
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                result.status_code = None
                result.error = str(classify(exc))
            except requests.exceptions.ChunkedEncodingError as exc:
                result.status_code = None
                result.error = str(classify(exc))
            else:
                stop, retry_after = _judge_answer(result, response)
                if stop:
                    break
            delay = _next_delay(
                result, attempt, max_attempts, time.monotonic() - start, deadline_s, retry_after
            )
            if delay is None:
                break
            if not quiet:
                console.info(
                    f"attempt {attempt}/{max_attempts} failed ({result.error}); "
                    f"retrying in {delay:.1f} s"
                )
            sleep(delay)
    finally:
        result.elapsed_s = time.monotonic() - start
        result.first_attempt_at = first_attempt_at
        if own_session:
            session.close()
    return result


def _judge_answer(result: DeliveryResult, response: Any) -> tuple[bool, Optional[float]]:
    """Record the receiver's answer in ``result``: (stop, the Retry-After seconds it asked for).
    2xx delivered; 3xx and other non-retryable statuses are final; the rest are retried."""
    result.status_code = response.status_code
    result.response_excerpt = excerpt(response)
    status = response.status_code
    if 200 <= status < 300:
        result.outcome, result.error = "delivered", None
        return True, None
    if 300 <= status < 400:
        result.outcome = "rejected"
        location = response.headers.get("Location", "")
        result.error = f"HTTP {status} redirect to {location or '(no Location)'}"
        result.hints.append(
            "redirects are not followed (they would turn the POST into a GET and "
            "send the API key elsewhere): set the final URL, e.g. https:// "
            "instead of http://"
        )
        return True, None
    if status not in RETRY_STATUSES:
        result.outcome = "rejected" if status < 500 else "queued"
        result.error = f"HTTP {status}"
        if status in _STATUS_FIXES:
            result.hints.append(_STATUS_FIXES[status])
        if status == 401:
            skew = _skew_hint(response)
            if skew:
                result.hints.insert(0, skew)
        return True, None
    result.error = f"HTTP {status}"
    return False, parse_retry_after(response.headers.get("Retry-After"))


def _next_delay(
    result: DeliveryResult,
    attempt: int,
    max_attempts: int,
    elapsed: float,
    deadline_s: float,
    retry_after: Optional[float],
) -> Optional[float]:
    """After a retryable failure: how long to wait before the next attempt, or None (with the
    reason in ``result.notes``) when the attempts or the deadline are spent."""
    if attempt >= max_attempts:
        plural = "s" if attempt != 1 else ""
        result.notes.append(f"gave up after {attempt} attempt{plural} (--max-attempts)")
        return None
    delay = backoff_delay(attempt)
    if retry_after is not None:
        delay = max(delay, retry_after)
    if elapsed + delay > deadline_s:
        result.notes.append(
            f"stopped after {attempt} attempts: the next one would pass the "
            f"{deadline_s:.0f} s deadline (--deadline)"
        )
        return None
    return delay


def _proxy_for(url: str) -> Optional[str]:
    """The proxy requests takes from the environment for ``url`` (credentials stripped)."""
    from requests.utils import get_environ_proxies, select_proxy

    from ..jenkins_env import strip_credentials

    try:
        proxy = select_proxy(url, get_environ_proxies(url))
    except Exception:  # never a reason to fail a report
        return None
    return strip_credentials(proxy) if proxy else None
