"""Walk the callback path step by step and stop at the first broken step, with its fix.

Steps, in the order a request meets them:

``config``  callback URL, at least one auth mode, secrets well formed
``proxy``   a proxy from the environment (then DNS/TCP are checked for the proxy)
``dns``     the host resolves
``tcp``     a TCP connection opens
``tls``     the certificate chain verifies (``--ca-bundle``) and names the host
``route``   ``POST <callback URL>/test`` (``/api/jenkins/callback/test``) exists
``clock``   the receiver's ``Date`` header against our clock: signatures and JWTs are accepted
            only within +/-300 s, so skew is checked before the auth modes it would break
``auth <mode>``  one request per configured mode, signed with that mode alone: which one the
            platform rejects

Each step is a :class:`Step` (``ok``, ``warn``, ``FAIL`` or ``skip``); nothing is printed here.
"""

from __future__ import annotations

import email.utils
import os
import socket
import ssl
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..http import CLOSED, RESET, classify, excerpt, short
from ..wire import CALLBACK_PATH, SIGNATURE_TOLERANCE_S, TEST_PATH

if TYPE_CHECKING:
    import requests

    from ..config import Settings

TEST_SUFFIX = TEST_PATH[len(CALLBACK_PATH) :]
SKEW_LIMIT_S = SIGNATURE_TOLERANCE_S
SKEW_WARN_S = 60
TEST_SCHEMA = "ci-report/callback-test/v1"

_MODE_FIXES = {
    "api-key": "the platform does not accept this JENKINS_API_KEY: bind the key the platform "
    "has active for Jenkins (no trailing newline), or ask the platform team to add it",
    "jwt": "the platform does not accept the JWT: JENKINS_JWT_SECRET must equal the platform's "
    "JWT secret, and the platform must expect issuer {iss!r} and audience {aud!r} "
    "(CI_REPORT_JWT_ISSUER / CI_REPORT_JWT_AUDIENCE)",
    "hmac": "the platform does not accept the webhook-signature: JENKINS_SIGNATURE_SECRET must "
    "be the platform's signing secret for this endpoint (the same whsec_... value on both "
    "sides)",
}


@dataclass
class Step:
    name: str
    status: str  # ok | warn | FAIL | skip
    detail: str
    fix: Optional[str] = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"


@dataclass
class DiagnoseReport:
    url: Optional[str]
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(s.failed for s in self.steps)

    @property
    def failed_steps(self) -> list[Step]:
        return [s for s in self.steps if s.failed]

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_json(self) -> dict[str, Any]:
        failed = self.failed_steps
        return {
            "url": self.url,
            "ok": self.ok,
            "failedStep": failed[0].name if failed else None,
            "steps": [{k: v for k, v in asdict(s).items() if k != "data" or v} for s in self.steps],
        }


ALL_STEPS = ("config", "proxy", "dns", "tcp", "tls", "route", "clock")


class _Stop(Exception):
    pass


class Diagnosis:
    def __init__(
        self,
        settings: Settings,
        *,
        url: Optional[str] = None,
        on_step: Optional[Callable[[Step], None]] = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.url = url or settings.callback_url
        self.report = DiagnoseReport(url=self.url)
        self.on_step = on_step
        self.now = now
        self.host = ""
        self.port = 0
        self.scheme = ""
        self.proxy: Optional[str] = None
        self.route_response: Optional[requests.Response] = None
        self.route_time: Optional[float] = None
        self.session: Optional[requests.Session] = None

    # -- plumbing ------------------------------------------------------------------------
    def add(
        self, name: str, status: str, detail: str, fix: Optional[str] = None, **data: Any
    ) -> Step:
        step = Step(name, status, detail, fix, data)
        self.report.steps.append(step)
        if self.on_step:
            self.on_step(step)
        if step.failed:
            raise _Stop()
        return step

    def run(self) -> DiagnoseReport:
        planned = list(ALL_STEPS) + [f"auth {m}" for m in self.settings.auth_modes]
        try:
            self.check_config()
            self.check_proxy()
            self.check_dns()
            self.check_tcp()
            self.check_tls()
            self.check_route()
            self.check_clock()
            self.check_modes()
        except _Stop:
            done = {s.name for s in self.report.steps}
            for name in planned:
                if name not in done:
                    self.add(name, "skip", "not checked: an earlier step failed")
        finally:
            if self.session is not None:
                self.session.close()
        return self.report

    @property
    def test_url(self) -> str:
        assert self.url
        return self.url.rstrip("/") + TEST_SUFFIX

    @property
    def verify(self) -> Any:
        return self.ca_file() or True

    def ca_file(self) -> Optional[str]:
        return (
            self.settings.ca_bundle
            or os.environ.get("REQUESTS_CA_BUNDLE")
            or os.environ.get("CURL_CA_BUNDLE")
            or None
        )

    # -- steps ---------------------------------------------------------------------------
    def check_config(self) -> None:
        if not self.url:
            self.add(
                "config",
                "FAIL",
                "no callback URL configured",
                "set CI_REPORT_URL to the full callback URL, or API_CALLBACK_URL to the "
                f"platform base URL ({CALLBACK_PATH} is added), or pass --url",
            )
        parts = urlsplit(self.url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.add(
                "config",
                "FAIL",
                f"the callback URL {self.url!r} is not an http(s) URL with a host",
                f"use a full URL such as https://platform.example.com{CALLBACK_PATH}",
            )
        self.scheme, self.host = parts.scheme, parts.hostname or ""
        try:
            self.port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            self.add(
                "config", "FAIL", f"the port in {self.url!r} is not a number", "fix the URL's port"
            )
        modes = self.settings.auth_modes
        if not modes:
            self.add(
                "config",
                "FAIL",
                "no authentication configured (JENKINS_API_KEY, JENKINS_JWT_SECRET, "
                "JENKINS_SIGNATURE_SECRET are all unset)",
                "bind at least one of them with withCredentials; ask the platform team which "
                "modes it accepts",
            )
        from .auth import check_auth_settings

        try:
            warnings = check_auth_settings(self.settings)
        except ConfigError as exc:
            self.add("config", "FAIL", exc.message, exc.fix)
        notes = []
        if parts.path.rstrip("/") != CALLBACK_PATH:
            notes.append(f"the usual path is {CALLBACK_PATH}, this URL's is {parts.path or '/'}")
        if (
            parts.scheme == "http"
            and "api-key" in modes
            and self.host not in ("127.0.0.1", "localhost", "::1")
        ):
            notes.append("the API key would travel over plain http: use https")
        warnings = list(warnings) + notes
        detail = f"{self.url}; auth modes: {', '.join(modes)}"
        if warnings:
            self.add(
                "config",
                "warn",
                detail + "; " + "; ".join(warnings),
                "see the warning; the remaining steps still run",
            )
        else:
            self.add("config", "ok", detail)

    def check_proxy(self) -> None:
        from requests.utils import get_environ_proxies

        proxies = get_environ_proxies(self.url or "")
        proxy = proxies.get(self.scheme) or proxies.get("all")
        if not proxy:
            self.add("proxy", "ok", "none: direct connection (no *_PROXY variable applies)")
            return
        self.proxy = proxy
        parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.add(
            "proxy",
            "ok",
            f"{proxy} from the environment ({self.scheme.upper()}_PROXY); DNS and TCP are "
            "checked for the proxy; set NO_PROXY to bypass it",
            proxy=proxy,
        )

    def check_dns(self) -> None:
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            self.add(
                "dns",
                "FAIL",
                f"cannot resolve {self.host}: {exc.strerror}",
                f"check the host name in the URL; on the agent: getent hosts {self.host}",
            )
            return
        addresses = sorted({str(i[4][0]) for i in infos})
        self.add("dns", "ok", f"{self.host} -> {', '.join(addresses[:4])}")

    def check_tcp(self) -> None:
        timeout = self.settings.connect_timeout
        start = time.monotonic()
        target = f"{self.host}:{self.port}"
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout):
                pass
        except ConnectionRefusedError:
            self.add(
                "tcp",
                "FAIL",
                f"connection refused by {target}: nothing listens there"
                + (" (the proxy)" if self.proxy else ""),
                f"the proxy from {self.scheme.upper()}_PROXY is down or wrong: fix it, or "
                "add the platform host to NO_PROXY"
                if self.proxy
                else "check the port in the URL and that the platform service is running and "
                "reachable from this agent",
            )
        except (socket.timeout, TimeoutError):
            self.add(
                "tcp",
                "FAIL",
                f"no answer from {target} within {timeout:g} s",
                "a firewall or security group drops the packets: allow egress from the Jenkins "
                f"agents to {target}",
            )
        except OSError as exc:
            self.add(
                "tcp",
                "FAIL",
                f"cannot connect to {target}: {exc.strerror or exc}",
                "check the network route from this agent to the platform",
            )
        ms = (time.monotonic() - start) * 1000
        self.add("tcp", "ok", f"connected to {target} in {ms:.0f} ms")

    def check_tls(self) -> None:
        if self.scheme != "https":
            self.add("tls", "skip", "plain http: no TLS")
            return
        if self.proxy:
            self.add("tls", "skip", "through the proxy: the route step checks TLS end to end")
            return
        cafile = self.ca_file()
        try:
            context = ssl.create_default_context(cafile=cafile or _default_ca())
        except (OSError, ssl.SSLError) as exc:
            self.add(
                "tls",
                "FAIL",
                f"cannot load the CA bundle {cafile}: {exc}",
                "point --ca-bundle at a PEM file with the CA certificate(s)",
            )
        try:
            raw = socket.create_connection(
                (self.host, self.port), timeout=self.settings.connect_timeout
            )
            with raw, context.wrap_socket(raw, server_hostname=self.host) as tls:
                cert = tls.getpeercert() or {}
                version = tls.version()
        except ssl.SSLCertVerificationError as exc:
            reason = exc.verify_message or str(exc)
            if "hostname" in str(exc).lower() or "ip address mismatch" in reason.lower():
                fix = (
                    f"the certificate does not name {self.host}: use the host name it was "
                    "issued for, or have it reissued with that name"
                )
            else:
                fix = (
                    "the receiver's certificate is signed by a CA this agent does not trust: "
                    "pass --ca-bundle /path/to/ca.pem (or set CI_REPORT_CA_BUNDLE / "
                    "REQUESTS_CA_BUNDLE) with the CA that signed it"
                )
            used = f" (CA bundle: {cafile})" if cafile else " (system/certifi CA bundle)"
            self.add("tls", "FAIL", f"certificate verification failed: {reason}{used}", fix)
        except ssl.SSLError as exc:
            fix = "check that the port speaks HTTPS"
            if "wrong version number" in str(exc).lower() or "record layer" in str(exc).lower():
                fix = "the port answers plain HTTP: use an http:// URL, or the HTTPS port"
            self.add("tls", "FAIL", f"TLS handshake failed: {exc.reason or exc}", fix)
        except OSError as exc:
            self.add(
                "tls",
                "FAIL",
                f"connection failed during the TLS handshake: {exc}",
                "check the port and any TLS-inspecting middlebox",
            )
        subject = _name(cert.get("subject"))
        issuer = _name(cert.get("issuer"))
        expires = cert.get("notAfter")
        days = ""
        if isinstance(expires, str):
            left = (ssl.cert_time_to_seconds(expires) - time.time()) / 86400
            days = f", expires in {left:.0f} days"
            if left < 14:
                self.add(
                    "tls",
                    "warn",
                    f"{version}, certificate {subject} issued by {issuer}{days}",
                    "renew the receiver's certificate soon",
                )
                return
        self.add("tls", "ok", f"{version}, certificate {subject} issued by {issuer}{days}")

    def _session(self) -> requests.Session:
        if self.session is None:
            from .delivery import make_session

            self.session = make_session(self.settings)
        return self.session

    def _post(self, modes: list[str]) -> tuple[requests.Response, float]:
        from .auth import sign_request
        from .payload import canonical_body

        body = canonical_body(
            {"schema": TEST_SCHEMA, "test": True, "runId": None, "status": "success"}
        )
        delivery_id = "msg_" + uuid.uuid4().hex
        headers = sign_request(
            self.settings,
            body,
            delivery_id,
            url=self.test_url,
            modes=modes,
            subject="ci-report-diagnose",
        )
        sent = self.now()
        response = self._session().post(
            self.test_url,
            data=body,
            headers=headers,
            timeout=(self.settings.connect_timeout, self.settings.read_timeout),
            allow_redirects=False,
            verify=self.verify,
        )
        return response, (sent + self.now()) / 2

    def check_route(self) -> None:
        import requests

        path = urlsplit(self.test_url).path
        try:
            response, at = self._post(self.settings.auth_modes)
        except requests.exceptions.SSLError as exc:
            self.add(
                "route",
                "FAIL",
                f"TLS error: {short(exc)}",
                "pass --ca-bundle with the CA that signed the receiver's certificate",
            )
            return
        except requests.exceptions.ProxyError as exc:
            self.add(
                "route",
                "FAIL",
                f"the proxy refused or failed: {short(exc)}",
                "check the proxy, or set NO_PROXY for the platform host",
            )
            return
        except requests.exceptions.ReadTimeout:
            self.add(
                "route",
                "FAIL",
                f"POST {path}: the connection opened but no HTTP answer came within "
                f"{self.settings.read_timeout:g} s",
                "whatever listens on this port is not answering HTTP requests: a hung platform "
                "service, or a port that belongs to something else; check the URL's port and "
                "the platform's logs",
            )
            return
        except requests.exceptions.ConnectionError as exc:
            if classify(exc).kind in (CLOSED, RESET):
                detail = f"POST {path}: the server closed the connection without an HTTP answer"
                fix = (
                    "the port may speak HTTPS (use an https:// URL), or the platform drops the "
                    "request (check its logs and any load balancer in between)"
                    if self.scheme == "http"
                    else "check the platform's logs and any load balancer in between"
                )
            else:
                detail = f"POST {path} failed: {short(exc)}"
                fix = "see the steps above; retry with --debug"
            self.add("route", "FAIL", detail, fix)
            return
        except requests.exceptions.RequestException as exc:
            self.add(
                "route",
                "FAIL",
                f"POST {path} failed: {short(exc)}",
                "see the steps above; retry with --debug",
            )
            return
        self.route_response, self.route_time = response, at
        status = response.status_code
        line = f"POST {path} -> HTTP {status}"
        if 200 <= status < 300:
            self.add("route", "ok", f"{line} (all modes together accepted)")
        elif status in (401, 403):
            self.add("route", "ok", f"{line}: the route exists; credentials checked below")
        elif status == 404:
            self.add(
                "route",
                "FAIL",
                f"{line}: nothing answers at this path",
                f"the platform serves callbacks at {CALLBACK_PATH} (test route "
                f"{CALLBACK_PATH}/test): set API_CALLBACK_URL to the platform base URL "
                "(e.g. https://platform.example.com) or CI_REPORT_URL to "
                f"<base>{CALLBACK_PATH}",
            )
        elif 300 <= status < 400:
            location = response.headers.get("Location", "?")
            self.add(
                "route",
                "FAIL",
                f"{line} redirect to {location}",
                "redirects are not followed (they leak X-Api-Key and turn POST into GET): "
                "set the final URL (often https:// instead of http://)",
            )
        elif status == 405:
            self.add(
                "route",
                "FAIL",
                f"{line}: the URL does not take POST",
                f"check the URL: the callback path is {CALLBACK_PATH}",
            )
        elif status >= 500:
            self.add(
                "route",
                "FAIL",
                f"{line}: the platform failed ({excerpt(response, 160)})",
                "the platform side has an error: check its logs",
            )
        else:
            self.add(
                "route",
                "warn",
                f"{line} ({excerpt(response, 160)}): the route exists but refused the test body",
                "check the platform's logs for the reason",
            )

    def check_clock(self) -> None:
        response = self.route_response
        date = response.headers.get("Date") if response is not None else None
        if not date or self.route_time is None:
            self.add("clock", "skip", "the receiver sent no Date header: skew not measurable")
            return
        try:
            server = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError):
            self.add("clock", "skip", f"unreadable Date header {date!r}")
            return
        skew = self.route_time - server  # > 0: we are ahead
        side = "ahead of" if skew > 0 else "behind"
        text = f"this agent's clock is {abs(skew):.0f} s {side} the receiver's (Date: {date})"
        if abs(skew) > SKEW_LIMIT_S:
            self.add(
                "clock",
                "FAIL",
                f"{text}; the receiver accepts a callback's webhook-timestamp (and its "
                f"signature or JWT) only within ±{SKEW_LIMIT_S} s, whatever the auth mode",
                "synchronize the clocks with NTP (timedatectl set-ntp true / chrony) on the "
                "agent, and check the receiver's clock too",
                skewSeconds=round(skew),
            )
        elif abs(skew) > SKEW_WARN_S:
            self.add(
                "clock",
                "warn",
                f"{text}; the limit is ±{SKEW_LIMIT_S} s",
                "enable NTP before the drift grows",
                skewSeconds=round(skew),
            )
        else:
            self.add(
                "clock",
                "ok",
                f"skew {skew:+.0f} s (limit ±{SKEW_LIMIT_S} s)",
                skewSeconds=round(skew),
            )

    def check_modes(self) -> None:
        failed = False
        for mode in self.settings.auth_modes:
            step = self._check_mode(mode)
            failed = failed or step.failed
            self.report.steps.append(step)
            if self.on_step:
                self.on_step(step)
        if failed:
            raise _Stop()

    def _check_mode(self, mode: str) -> Step:
        import requests

        name = f"auth {mode}"
        try:
            response, _ = self._post([mode])
        except requests.exceptions.RequestException as exc:
            return Step(name, "FAIL", short(exc), "see the steps above; retry with --debug")
        status = response.status_code
        if 200 <= status < 300:
            return Step(name, "ok", f"accepted alone (HTTP {status})")
        if status in (401, 403):
            fix = _MODE_FIXES[mode].format(
                iss=self.settings.jwt_issuer, aud=self.settings.jwt_audience or self.test_url
            )
            if len(self.settings.auth_modes) > 1:
                fix += (
                    "; every callback carries all configured modes, so this one rejected "
                    "mode fails them all"
                )
            return Step(name, "FAIL", f"rejected: HTTP {status} ({excerpt(response, 160)})", fix)
        return Step(
            name, "FAIL", f"HTTP {status} ({excerpt(response, 160)})", "see the platform's logs"
        )


def _default_ca() -> Optional[str]:
    try:
        from requests.utils import DEFAULT_CA_BUNDLE_PATH

        return str(DEFAULT_CA_BUNDLE_PATH)
    except ImportError:  # pragma: no cover
        return None


def _name(parts: Any) -> str:
    if not parts:
        return "?"
    for rdn in parts:
        for key, value in rdn:
            if key == "commonName":
                return f"CN={value}"
    return "/".join(f"{k}={v}" for rdn in parts for k, v in rdn)


def diagnose(
    settings: Settings,
    *,
    url: Optional[str] = None,
    on_step: Optional[Callable[[Step], None]] = None,
) -> DiagnoseReport:
    """Check the callback path; ``on_step`` sees each step as soon as it is known."""
    return Diagnosis(settings, url=url, on_step=on_step).run()
