"""A small Jenkins remote API client: jobs in folders, trigger, queue items, builds, artifacts.

Rules (Jenkins' remote API, as documented in docs/platform.md):

- Basic auth with a user and an API token. An API token needs no CSRF crumb; a crumb is fetched
  only after a ``403 No valid crumb`` and the request retried once, on the same session (the
  crumb is bound to the session cookie).
- Redirects are never followed: ``buildWithParameters`` answers 201 or 303 with a ``Location``
  that has no content of its own; only the queue id is read from it.
- ``a/b/c`` -> ``job/a/job/b/job/c/``, each segment percent-encoded; a full job URL is used as is.
- Connection errors and 5xx raise :class:`JenkinsUnavailable` (pollers back off and go on);
  other HTTP errors raise :class:`JenkinsHTTPError` with a hint.
- Every answer is streamed and read with a byte cap (``max_response_bytes``, 32 MB by default;
  an artifact may have its own) and an overall deadline per request (``request_deadline``, 60 s
  by default, from the start of the request to the last byte of its answer), so a huge answer
  costs at most the cap and a server that drips its answer is cut off: a larger answer is a
  :class:`JenkinsHTTPError`, a late one a :class:`JenkinsUnavailable`. The deadline covers the
  status line and headers too: a watchdog shuts the socket down when it passes.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Sequence, Union
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from .. import USER_AGENT
from ..errors import EXIT_LOST, EXIT_USAGE, CiReportError, ConfigError
from ..http import (
    DeadlineExceeded,
    ResponseTooLarge,
    classify,
    fmt_limit,
    read_bounded,
    short,
    url_errors,
)

if TYPE_CHECKING:
    import requests

    from ..config import Settings

MAX_RESPONSE_BYTES = 32_000_000
REQUEST_DEADLINE_S = 60.0

QUEUE_TREE = (
    "_class,id,why,blocked,buildable,stuck,cancelled,inQueueSince,params,"
    "executable[number,url],task[name,url]"
)
BUILD_TREE = (
    "number,url,building,inProgress,result,duration,estimatedDuration,timestamp,queueId,"
    "fullDisplayName,builtOn"
)
_QUEUE_ID = re.compile(r"/queue/item/(\d+)/?$")


class JenkinsError(CiReportError):
    """A Jenkins request failed for a reason a person must fix (exit 2)."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, status: Optional[int] = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.status = status


class JenkinsHTTPError(JenkinsError):
    """Jenkins answered with an HTTP error that retrying will not fix."""


class JenkinsUnavailable(JenkinsError):
    """Jenkins could not be reached or answered 5xx: may pass (restart, network).

    ``maybe_sent`` is False only when the request surely never reached Jenkins (the connection
    was not established), which is the one case where re-sending a POST is always safe.
    """

    exit_code = EXIT_LOST

    def __init__(self, message: str, *, maybe_sent: bool = True, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.maybe_sent = maybe_sent


@dataclass
class TriggerResponse:
    queue_id: int
    merged: bool
    endpoint: str
    status: int


def split_userinfo(url: str) -> tuple[str, Optional[str], Optional[str]]:
    """``http://user:token@host/x`` -> (``http://host/x``, user, token); credentials never stay
    in a URL that could be printed."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, sep, token = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return clean, unquote(user) or None, (unquote(token) if sep else None) or None


def _without_login(url: str) -> str:
    """``url`` as it may be shown: without ``user:token@`` (whatever else is wrong with it)."""
    try:
        return split_userinfo(url)[0]
    except ValueError:
        head, sep, rest = url.partition("://")
        netloc = rest.split("/", 1)[0]
        return head + sep + netloc.rpartition("@")[2] + rest[len(netloc) :]


def job_path_url(base_url: str, job: str) -> str:
    """The job's URL (ending in ``/``): ``a/b/c`` -> ``<base>/job/a/job/b/job/c/``.

    A full ``http(s)://`` URL is used verbatim (without any ``user:token@``: the client's own
    credentials are sent). A path already written as ``job/a/job/b`` is accepted too. Segments
    are percent-encoded, so a multibranch branch stored as ``feature%2Ffoo`` becomes
    ``feature%252Ffoo`` as Jenkins expects.
    """
    job = job.strip()
    if job.startswith(("http://", "https://")):
        job = split_userinfo(job)[0]
        return job if job.endswith("/") else job + "/"
    segments = [s for s in job.strip("/").split("/") if s]
    if not segments:
        raise ConfigError("empty job name", fix="pass the job's full name, e.g. team/app/main")
    if segments[0] == "job" and len(segments) % 2 == 0 and all(s == "job" for s in segments[0::2]):
        segments = segments[1::2]
    base = base_url.rstrip("/") + "/"
    return base + "".join(f"job/{quote(seg, safe='')}/" for seg in segments)


def job_full_name(job: str) -> str:
    """``job/a/job/b`` or a job URL -> ``a/b`` (the form Jenkins calls JOB_NAME)."""
    job = job.strip()
    if job.startswith(("http://", "https://")):
        path = urlsplit(job).path
        parts = [p for p in path.strip("/").split("/") if p]
        names = [parts[i + 1] for i, p in enumerate(parts[:-1]) if p == "job"]
        return "/".join(unquote(n) for n in names) or split_userinfo(job)[0]
    segments = [s for s in job.strip("/").split("/") if s]
    if segments and segments[0] == "job" and len(segments) % 2 == 0:
        segments = segments[1::2]
    return "/".join(segments)


def queue_id_from_location(location: Optional[str]) -> Optional[int]:
    """Only the id is read from ``Location`` (its host may be wrong behind a proxy)."""
    if not location:
        return None
    match = _QUEUE_ID.search(urlsplit(location).path)
    return int(match.group(1)) if match else None


_current = threading.local()  # the watchdog of the request this thread is making


class _Watchdog:
    """Shuts the request's socket down at the deadline: a server that drips its status line
    and headers a byte at a time never trips a read timeout, and the body deadline of
    read_bounded starts only once the headers are in."""

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._sock: Optional[socket.socket] = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: Optional[socket.socket]) -> None:
        with self._lock:
            self._sock = sock
            if self.fired and sock is not None:
                _shut(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            if self._sock is not None:
                _shut(self._sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _watch_connections(session: requests.Session) -> None:
    """Let the request's watchdog see each connection's socket when its answer is awaited
    (plain HTTPAdapters only: a test's mock adapter has no sockets to watch)."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class _Watched:
        sock: Optional[socket.socket]

        def getresponse(self, *args: Any, **kwargs: Any) -> Any:
            watchdog = getattr(_current, "watchdog", None)
            if watchdog is not None:
                watchdog.watch(self.sock)
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]

    class _HTTPConnection(_Watched, HTTPConnection):
        pass

    class _HTTPSConnection(_Watched, HTTPSConnection):
        pass

    class _HTTPPool(HTTPConnectionPool):
        ConnectionCls = _HTTPConnection

    class _HTTPSPool(HTTPSConnectionPool):
        ConnectionCls = _HTTPSConnection

    for adapter in session.adapters.values():
        if isinstance(adapter, HTTPAdapter):
            adapter.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def _looks_html(response: requests.Response) -> bool:
    content_type = response.headers.get("Content-Type", "").lower()
    head = response.text[:200].lstrip().lower()
    return "html" in content_type or head.startswith(("<!doctype html", "<html"))


def _body(response: requests.Response) -> Optional[str]:
    """What Jenkins said, short: an HTML page is named by its title, not dumped."""
    if _looks_html(response):
        match = _TITLE.search(response.text)
        title = short(match.group(1), 80) if match else ""
        return f"an HTML page titled {title!r}" if title else "an HTML page"
    return short(response.text) or None


_LOGIN_FIX = (
    "an HTML page where JSON was expected is usually a login page: JENKINS_URL must be the "
    "Jenkins URL itself (not an SSO or proxy login in front of it), and JENKINS_USER with "
    "JENKINS_TOKEN (an API token) must be accepted by it"
)


class JenkinsClient:
    """One ``requests.Session`` per client: basic auth, cookies kept (crumbs need them)."""

    def __init__(
        self,
        base_url: str,
        user: Optional[str] = None,
        token: Optional[str] = None,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        session: Optional[requests.Session] = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        request_deadline: float = REQUEST_DEADLINE_S,
    ) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                "no usable Jenkins URL",
                cause=f"JENKINS_URL is {_without_login(base_url)!r}"
                if base_url
                else "JENKINS_URL is not set",
                fix="set JENKINS_URL (e.g. https://jenkins.example.com/) or pass --jenkins-url",
            )
        try:
            base_url, url_user, url_token = split_userinfo(base_url.strip())
        except ValueError as exc:  # e.g. "Invalid IPv6 URL": not shown, it may hold a login
            raise ConfigError(
                "JENKINS_URL is not a usable URL",
                cause=str(exc),
                fix="set JENKINS_URL to e.g. https://jenkins.example.com/",
            ) from None
        try:
            parts = urlsplit(base_url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            raise ConfigError(
                f"JENKINS_URL {base_url!r} is not a usable URL",
                cause=str(exc),
                fix="set JENKINS_URL to e.g. https://jenkins.example.com/",
            ) from None
        if not parts.hostname:
            raise ConfigError(
                f"JENKINS_URL {base_url!r} has no host",
                fix="set JENKINS_URL to e.g. https://jenkins.example.com/",
            )
        self.base_url = base_url.rstrip("/") + "/"
        # ``https://user:token@host/`` works too: the credentials move to the session (explicit
        # ones win) and never stay in a URL that messages print.
        user = user or url_user
        token = token or url_token
        self.user = user
        self.timeout = (connect_timeout, read_timeout)
        self.max_response_bytes = max_response_bytes
        self.request_deadline = request_deadline
        self.session = session or self._make_session()
        _watch_connections(self.session)
        if user and token:
            self.session.auth = (user, token)
        self.session.headers["User-Agent"] = USER_AGENT
        self._crumb: Optional[tuple[str, str]] = None

    @classmethod
    def from_settings(cls, settings: Settings, **kw: Any) -> JenkinsClient:
        return cls(settings.jenkins_url or "", settings.jenkins_user, settings.jenkins_token, **kw)

    @staticmethod
    def _make_session() -> requests.Session:
        from ..http import make_session

        return make_session()

    def close(self) -> None:
        self.session.close()

    # -- URLs ----------------------------------------------------------------------------
    def job_url(self, job: str) -> str:
        return job_path_url(self.base_url, job)

    def build_url(self, job: str, number: int) -> str:
        return f"{self.job_url(job)}{int(number)}/"

    def queue_item_url(self, queue_id: int) -> str:
        return f"{self.base_url}queue/item/{int(queue_id)}/"

    # -- transport -----------------------------------------------------------------------
    def request(
        self,
        method: str,
        url: str,
        *,
        params: Optional[Mapping[str, Any]] = None,
        data: Union[Mapping[str, Any], Sequence[tuple[str, str]], None] = None,
        timeout: Optional[tuple[float, float]] = None,
        ok: Iterable[int] = (),
        max_bytes: Optional[int] = None,
    ) -> requests.Response:
        """One request; a ``403 No valid crumb`` fetches the crumb and retries once.

        The body is read (at most ``max_bytes``, else the client's cap) before this returns.
        Raises :class:`JenkinsUnavailable` on connection errors, 5xx (unless listed in
        ``ok``) and answers past the deadline; :class:`JenkinsHTTPError` on answers past the
        cap. Any other status is returned to the caller.
        """

        def send() -> requests.Response:
            return self._send(
                method, url, params=params, data=data, timeout=timeout, max_bytes=max_bytes
            )

        response = send()
        if (
            response.status_code == 403
            and method.upper() != "GET"
            and "no valid crumb" in response.text.lower()
        ):
            self._fetch_crumb()
            response = send()
        if response.status_code >= 500 and response.status_code not in set(ok):
            raise JenkinsUnavailable(
                f"Jenkins answered HTTP {response.status_code} for {self._shown(url)}",
                status=response.status_code,
                cause=_body(response),
            )
        return response

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Optional[Mapping[str, Any]],
        data: Any,
        timeout: Optional[tuple[float, float]],
        max_bytes: Optional[int] = None,
    ) -> requests.Response:
        import requests

        headers = {}
        if self._crumb:
            headers[self._crumb[0]] = self._crumb[1]
        limit = self.max_response_bytes if max_bytes is None else max_bytes
        timeout = timeout or self.timeout
        deadline = time.monotonic() + self.request_deadline
        watchdog = _Watchdog(self.request_deadline)
        _current.watchdog = watchdog
        try:
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=headers,
                    timeout=timeout,
                    allow_redirects=False,
                    stream=True,
                )
                read_bounded(response, limit, deadline=deadline, what="Jenkins' answer")
                if watchdog.fired:  # a body without a length "ends" where the cut was
                    response.close()
                    raise DeadlineExceeded("cut at the deadline")
                return response
            except Exception:
                if watchdog.fired:  # the watchdog cut the connection: say so, not "reset"
                    raise DeadlineExceeded("cut at the deadline") from None
                raise
            finally:
                watchdog.cancel()
                _current.watchdog = None
        except ResponseTooLarge:
            raise JenkinsHTTPError(
                f"Jenkins' answer for {self._shown(url)} is larger than {fmt_limit(limit)}: "
                "not read",
                fix="a build's archived ci-report/callback.json or a JSON answer this large is "
                "not one ci-report wrote; check the job",
            ) from None
        except DeadlineExceeded:
            raise JenkinsUnavailable(
                f"Jenkins' answer for {self._shown(url)} did not arrive within "
                f"{self.request_deadline:g} s: cut off",
                cause="the server sends its answer too slowly",
                maybe_sent=True,
            ) from None
        except requests.exceptions.SSLError as exc:
            raise JenkinsHTTPError(
                f"TLS error talking to Jenkins at {self._shown(url)}",
                cause=short(exc),
                fix="set REQUESTS_CA_BUNDLE to the CA bundle that signed Jenkins' certificate",
            ) from None
        except url_errors() as exc:
            raise ConfigError(
                f"unusable Jenkins URL {self._shown(url)}", cause=short(exc)
            ) from None
        except requests.exceptions.ProxyError as exc:
            proxy = self._proxy_for(url)
            failure = classify(exc)
            raise JenkinsUnavailable(
                f"cannot reach Jenkins at {self.base_url} through the proxy {proxy}",
                cause=failure.reason,
                fix="check the proxy (HTTP_PROXY/HTTPS_PROXY), or add the Jenkins host to NO_PROXY",
                maybe_sent=failure.sent,
            ) from None
        except requests.exceptions.ConnectTimeout:
            raise JenkinsUnavailable(
                f"cannot connect to Jenkins at {self.base_url}",
                cause=f"no answer within {self.timeout[0]:g} s (a firewall drops the packets?)",
                maybe_sent=False,
            ) from None
        except requests.exceptions.ReadTimeout:
            raise JenkinsUnavailable(
                f"Jenkins did not answer within {self.timeout[1]:g} s ({self._shown(url)})",
                maybe_sent=True,
            ) from None
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            failure = classify(exc)
            what = (
                "the connection to Jenkins broke" if failure.sent else "cannot connect to Jenkins"
            )
            raise JenkinsUnavailable(
                f"{what} at {self.base_url}",
                cause=failure.reason,
                maybe_sent=failure.sent,
            ) from None

    def _proxy_for(self, url: str) -> str:
        from requests.utils import get_environ_proxies

        proxies = get_environ_proxies(url)
        proxy = proxies.get(urlsplit(url).scheme) or proxies.get("all") or "?"
        return split_userinfo(proxy)[0] if "://" in proxy else proxy

    def _fetch_crumb(self) -> None:
        response = self._send(
            "GET", self.base_url + "crumbIssuer/api/json", params=None, data=None, timeout=None
        )
        if response.status_code == 404:
            return  # CSRF protection is off: the 403 has another reason
        self._check(response, "crumbIssuer/api/json")
        data = response.json()
        self._crumb = (data.get("crumbRequestField") or "Jenkins-Crumb", data["crumb"])

    def _shown(self, url: str) -> str:
        return url.split("?", 1)[0]

    def _check(self, response: requests.Response, what: str, job: Optional[str] = None) -> None:
        status = response.status_code
        if status < 300:
            return
        who = self.user or "anonymous"
        hints = {
            401: (
                f"Jenkins refused the credentials of {who!r}: check JENKINS_USER and "
                "JENKINS_TOKEN (an API token from the user's Configure page)"
                if self.user
                else "Jenkins wants credentials: set JENKINS_USER and JENKINS_TOKEN (an API "
                "token from the user's Configure page)"
            ),
            403: f"{who} lacks the permission for this (Job/Build, Job/Read or Job/Cancel)",
            404: (
                f"no job {job!r} visible to {who}: check the full name (folders a/b/c) "
                "and the user's Job/Read permission"
                if job
                else f"not found (or not visible to {who})"
            ),
            405: "Jenkins wants POST here (a job token trigger is not supported)",
            409: f"job {job!r} is disabled or not buildable",
        }
        fix: Optional[str]
        if 300 <= status < 400:
            fix = (
                f"Jenkins redirected to {response.headers.get('Location', '?')}: "
                "set JENKINS_URL to its final URL (e.g. https://)"
            )
        else:
            fix = hints.get(status)
            if status == 403 and not self.user:
                fix = (
                    "Jenkins does not let anonymous users do this: set JENKINS_USER and "
                    "JENKINS_TOKEN (an API token from the user's Configure page)"
                )
        raise JenkinsHTTPError(
            f"Jenkins answered HTTP {status} for {what}",
            status=status,
            cause=_body(response),
            fix=fix,
        )

    def get_json(
        self, url: str, *, tree: Optional[str] = None, what: str = "", job: Optional[str] = None
    ) -> Optional[dict[str, Any]]:
        """GET ``url + api/json``; None on 404; other errors raise."""
        params = {"tree": tree} if tree else None
        response = self.request("GET", url + "api/json", params=params)
        if response.status_code == 404:
            return None
        what = what or self._shown(url)
        self._check(response, what, job)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            # A 200 that is not a JSON object is not a passing hiccup (a restarting Jenkins
            # answers 503): a login page of an SSO proxy, or a URL that is not Jenkins.
            html = _looks_html(response)
            raise JenkinsHTTPError(
                f"Jenkins answered {'an HTML page' if html else 'something that is not JSON'} "
                f"for {what} (HTTP {response.status_code}, {self._shown(url)}api/json)",
                status=response.status_code,
                cause=_body(response),
                fix=_LOGIN_FIX
                if html
                else "check that JENKINS_URL is the Jenkins root URL (the page with 'api/json')",
            )
        return data

    # -- jobs ----------------------------------------------------------------------------
    def job_info(self, job: str) -> dict[str, Any]:
        """``_class``, ``buildable``, ``fullName``, ``url`` and parameter names of a job."""
        data = self.get_json(
            self.job_url(job),
            tree="_class,fullName,url,buildable,property[parameterDefinitions[name]]",
            what=f"job {job}",
            job=job,
        )
        if data is None:
            who = self.user or "anonymous"
            raise JenkinsHTTPError(
                f"job {job!r} not found",
                status=404,
                fix=f"check the full name (folders as a/b/c) and that {who} can see it "
                f"({self.job_url(job)})",
            )
        return data

    @staticmethod
    def parameter_names(job_info: Mapping[str, Any]) -> list[str]:
        names: list[str] = []
        for prop in job_info.get("property") or []:
            for definition in (prop or {}).get("parameterDefinitions") or []:
                name = (definition or {}).get("name")
                if name:
                    names.append(name)
        return names

    def trigger(
        self, job: str, params: Sequence[tuple[str, str]], *, parameterized: bool
    ) -> TriggerResponse:
        """POST ``buildWithParameters`` (or ``build``); read the queue id from ``Location``.

        201 -> a new queue item; 303 -> merged into an identical waiting item. A 400 "is not
        parameterized" (a multibranch job before its first build) is retried once on ``build``.
        """
        endpoint = "buildWithParameters" if parameterized else "build"
        url = self.job_url(job) + endpoint
        response = self.request("POST", url, data=list(params) if parameterized else None)
        if (
            response.status_code == 400
            and parameterized
            and "not parameterized" in response.text.lower()
        ):
            endpoint = "build"
            url = self.job_url(job) + endpoint
            response = self.request("POST", url)
        status = response.status_code
        if status in (201, 303):
            queue_id = queue_id_from_location(response.headers.get("Location"))
            if queue_id is None:
                raise JenkinsHTTPError(
                    f"Jenkins answered {status} without a queue item Location",
                    status=status,
                    cause=f"Location: {response.headers.get('Location')!r}",
                )
            return TriggerResponse(queue_id, status == 303, endpoint, status)
        if status == 302:
            raise JenkinsUnavailable(
                f"Jenkins refused to queue {job!r} (302 to the job page)",
                status=status,
                cause="a queue decision handler vetoed it, or Jenkins is shutting down",
                fix="check the controller's 'Prepare for shutdown' state and queue plugins",
            )
        self._check(response, f"{endpoint} of job {job}", job)
        raise JenkinsHTTPError(
            f"Jenkins answered HTTP {status} to POST {endpoint} of job {job}, not 201 with a "
            "queue item",
            status=status,
            cause=_body(response),
            fix=_LOGIN_FIX if _looks_html(response) else None,
        )

    # -- queue ---------------------------------------------------------------------------
    def queue_item(self, queue_id: int) -> Optional[dict[str, Any]]:
        """The queue item, or None once it is gone (5 min after leaving, or a restart)."""
        return self.get_json(
            self.queue_item_url(queue_id), tree=QUEUE_TREE, what=f"queue item #{queue_id}"
        )

    def queue_items(self) -> list[dict[str, Any]]:
        data = self.get_json(
            self.base_url + "queue/", tree="items[id,params,task[name,url]]", what="the queue"
        )
        return list((data or {}).get("items") or [])

    def cancel_queue_item(
        self, queue_id: int, *, timeout: Optional[tuple[float, float]] = None
    ) -> str:
        """``cancelled`` (204, or 404: already gone), ``left`` (500: it left the queue; stop
        the build instead) or ``forbidden`` (422: no Job/Cancel permission)."""
        response = self.request(
            "POST",
            self.base_url + "queue/cancelItem",
            params={"id": int(queue_id)},
            timeout=timeout,
            ok=(500,),
        )
        status = response.status_code
        if status in (200, 204, 302, 404):
            return "cancelled"
        if status == 500:
            return "left"
        if status == 422:
            return "forbidden"
        self._check(response, f"cancelling queue item #{queue_id}")
        return "cancelled"

    # -- builds --------------------------------------------------------------------------
    def build(self, job: str, number: int, *, tree: str = BUILD_TREE) -> Optional[dict[str, Any]]:
        return self.get_json(
            self.build_url(job, number), tree=tree, what=f"build {job} #{number}", job=job
        )

    def builds(self, job: str, tree: str, limit: int = 50) -> list[dict[str, Any]]:
        data = self.get_json(
            self.job_url(job), tree=f"builds[{tree}]{{0,{int(limit)}}}", what=f"job {job}", job=job
        )
        return list((data or {}).get("builds") or [])

    def find_build_by_queue_id(self, job: str, queue_id: int) -> Optional[dict[str, Any]]:
        for build in self.builds(job, "number,queueId,url", limit=50):
            if build.get("queueId") == queue_id:
                return build
        return None

    def find_by_parameter(self, job: str, name: str, value: str) -> Optional[dict[str, Any]]:
        """A queue item (``{"queueId": N}``) or build (``{"number": N, "queueId": M}``) whose
        parameter ``name`` has ``value``: how a trigger id finds its build after a lost answer."""
        line = f"{name}={value}"
        for item in self.queue_items():
            if line in (item.get("params") or "").split("\n"):
                return {"queueId": item.get("id")}
        builds = self.builds(job, "number,queueId,url,actions[parameters[name,value]]", limit=20)
        for build in builds:
            for action in build.get("actions") or []:
                for param in (action or {}).get("parameters") or []:
                    if param.get("name") == name and str(param.get("value")) == value:
                        return {
                            "queueId": build.get("queueId"),
                            "number": build.get("number"),
                            "url": build.get("url"),
                        }
        return None

    def stop_build(
        self, job: str, number: int, *, timeout: Optional[tuple[float, float]] = None
    ) -> int:
        response = self.request("POST", self.build_url(job, number) + "stop", timeout=timeout)
        return response.status_code

    def test_report(self, job: str, number: int) -> Optional[dict[str, Any]]:
        """Jenkins' own JUnit results (``testReport/api/json``), None when it has none."""
        return self.get_json(
            self.build_url(job, number) + "testReport/",
            tree="failCount,passCount,skipCount,totalCount,duration,empty,"
            "suites[name,duration,cases[className,name,status,duration,errorDetails,skipped]],"
            "childReports[child[url],result[failCount,passCount,skipCount,"
            "suites[name,cases[className,name,status,duration,errorDetails,skipped]]]]",
            what=f"test report of {job} #{number}",
        )

    def artifact(
        self, job: str, number: int, path: str, *, max_bytes: Optional[int] = None
    ) -> Optional[bytes]:
        """The archived file's bytes (at most ``max_bytes``), None when the build has none."""
        url = self.build_url(job, number) + "artifact/" + quote(path.lstrip("/"))
        response = self.request("GET", url, max_bytes=max_bytes)
        if response.status_code == 404:
            return None
        self._check(response, f"artifact {path} of {job} #{number}", job)
        return response.content
