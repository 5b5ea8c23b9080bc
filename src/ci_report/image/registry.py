"""A small OCI distribution (Registry HTTP API v2) client: enough to size a push.

- :func:`parse_reference` splits ``reg.example.com:5000/team/app:1.2@sha256:...`` the way Docker
  does (``docker.io`` and ``library/`` by default).
- :class:`RegistryClient` pings ``/v2/``, follows the ``WWW-Authenticate`` challenge (Basic, or
  Bearer through the token server with Basic credentials or anonymously), reads manifests of
  every common media type (an index or manifest list resolves to one platform, attestation
  entries are skipped) and checks whether blobs exist (HEAD).

Every failure is a :class:`RegistryError` with a ``kind`` (``auth``, ``denied``, ``not-found``,
``network``, ``tls``, ``rate-limited``, ``too-large``, ``deadline``, ``unknown``) and a message
without secrets.

Bounded: every body is streamed with a byte cap (a manifest at most ``MAX_MANIFEST_BYTES``, the
limit of distribution/distribution), a manifest with more than ``MAX_LAYERS`` layers or an index
with more than ``MAX_INDEX_ENTRIES`` entries is refused (each layer costs one HEAD later), and an
optional ``deadline`` (``time.monotonic()``) bounds all calls of one client together.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Optional, Union

from .. import USER_AGENT
from ..errors import CiReportError, InputError
from ..http import short

if TYPE_CHECKING:  # pragma: no cover
    import requests

    from .docker_config import Credentials

__all__ = [
    "ACCEPT_MANIFESTS",
    "Descriptor",
    "ImageRef",
    "Manifest",
    "RegistryClient",
    "RegistryError",
    "parse_reference",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_SCHEMA1_PLAIN = "application/vnd.docker.distribution.manifest.v1+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
IMAGE_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
# Without an OCI type distribution 2.8 answers 404 MANIFEST_UNKNOWN for OCI images.
ACCEPT_MANIFESTS = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
ERROR_KINDS = (
    "auth",
    "denied",
    "not-found",
    "network",
    "tls",
    "rate-limited",
    "too-large",
    "deadline",
    "unknown",
)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # distribution's own manifest limit
MAX_BODY_BYTES = 1024 * 1024  # token answers, error bodies, tag lists
MAX_LAYERS = 256  # overlayfs stacks at most 128 lower layers; a base with more is not real
MAX_INDEX_ENTRIES = 1024


class RegistryError(CiReportError):
    """A registry call failed. ``kind`` is one of :data:`ERROR_KINDS`."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: Optional[int] = None,
        code: Optional[str] = None,
        url: Optional[str] = None,
        cause: Optional[str] = None,
        fix: Optional[str] = None,
    ) -> None:
        super().__init__(message, cause=cause, fix=fix)
        self.kind = kind if kind in ERROR_KINDS else "unknown"
        self.status = status
        self.code = code  # registry error code, e.g. MANIFEST_UNKNOWN
        self.url = url


# -- references --------------------------------------------------------------------------

_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")


def _is_local(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.endswith("]") else host
    if host.startswith("["):
        name = host[1 : host.index("]")]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass
class ImageRef:
    registry: str  # as written, "docker.io" when none was given
    repository: str  # "library/alpine", "team/app"
    tag: Optional[str]  # "latest" when neither tag nor digest was given
    digest: Optional[str] = None
    explicit_registry: bool = False  # the reference named its registry
    explicit_tag: bool = False  # the reference named a tag or a digest
    insecure: bool = False  # plain HTTP (Kaniko --insecure / --insecure-registry)

    @property
    def host(self) -> str:
        """The host the API lives on (``registry-1.docker.io`` for Docker Hub)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def api_base(self) -> str:
        scheme = "http" if self.insecure or _is_local(self.host) else "https"
        return f"{scheme}://{self.host}"

    @property
    def reference(self) -> str:
        """What to ask ``/manifests/`` for: the digest if there is one, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(ref: str, *, insecure_registries: Iterable[str] = ()) -> ImageRef:
    """Parse an image reference like Docker's ``reference.ParseNormalizedNamed``."""
    text = ref.strip()
    if not text or any(c.isspace() for c in text):
        raise InputError(f"invalid image reference {ref!r}", fix="use registry/repository:tag")
    if "://" in text:
        raise InputError(
            f"invalid image reference {ref!r}: no scheme allowed",
            fix="write reg.example.com/team/app:tag without http(s)://",
        )
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST.match(digest):
            raise InputError(f"invalid digest in image reference {ref!r}")
    tag = None
    last = text.rsplit("/", 1)[-1]
    if ":" in last:
        text, tag = text.rsplit(":", 1)
        if not _TAG.match(tag):
            raise InputError(f"invalid tag {tag!r} in image reference {ref!r}")
    first, _, rest = text.partition("/")
    explicit_registry = bool(rest) and (
        "." in first or ":" in first or first == "localhost" or first.startswith("[")
    )
    if explicit_registry:
        registry, repository = first.lower(), rest
        if registry in ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"):
            registry = DOCKER_HUB
    else:
        registry, repository = DOCKER_HUB, text
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if not repository or not all(_PATH_COMPONENT.match(p) for p in repository.split("/")):
        hint = " (repository names must be lower case)" if repository != repository.lower() else ""
        raise InputError(f"invalid repository name in image reference {ref!r}{hint}")
    explicit_tag = tag is not None or digest is not None
    if tag is None and digest is None:
        tag = "latest"
    insecure = registry in {str(r).lower() for r in insecure_registries}
    return ImageRef(
        registry=registry,
        repository=repository,
        tag=tag,
        digest=digest,
        explicit_registry=explicit_registry,
        explicit_tag=explicit_tag,
        insecure=insecure,
    )


# -- manifests ---------------------------------------------------------------------------


@dataclass
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Optional[dict[str, Any]] = None
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> Descriptor:
        if not isinstance(data, dict):
            raise ValueError("descriptor is not an object")
        return cls(
            media_type=str(data.get("mediaType") or ""),
            digest=str(data.get("digest") or ""),
            size=int(data.get("size") or 0),
            platform=data.get("platform") if isinstance(data.get("platform"), dict) else None,
            annotations=dict(data.get("annotations") or {}),
        )

    @property
    def platform_text(self) -> str:
        p = self.platform or {}
        text = f"{p.get('os', '?')}/{p.get('architecture', '?')}"
        return text + (f"/{p['variant']}" if p.get("variant") else "")

    @property
    def is_attestation(self) -> bool:
        p = self.platform or {}
        return self.annotations.get("vnd.docker.reference.type") == "attestation-manifest" or (
            p.get("os") == "unknown" and p.get("architecture") == "unknown"
        )


@dataclass
class Manifest:
    media_type: str
    digest: Optional[str]  # Docker-Content-Digest of the image manifest
    config: Optional[Descriptor]
    layers: list[Descriptor]
    platform: Optional[str] = None  # chosen platform when resolved through an index
    index_digest: Optional[str] = None  # the index/list the image was picked from
    index_media_type: Optional[str] = None
    sizes_known: bool = True  # False for Docker schema 1 (no sizes in the manifest)
    skipped: list[str] = field(default_factory=list)  # index entries skipped (attestations)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def layers_bytes(self) -> int:
        return sum(d.size for d in self.layers)

    @property
    def total_bytes(self) -> int:
        """Compressed size: config + layers (what ``docker-library/repo-info`` calls the
        compressed transfer size, plus the config blob)."""
        return self.layers_bytes + (self.config.size if self.config else 0)


def _parse_platform(text: str) -> tuple[str, str, Optional[str]]:
    parts = text.split("/")
    if len(parts) < 2 or not all(parts[:2]):
        raise InputError(
            f"invalid platform {text!r}", fix="use os/arch[/variant], e.g. linux/amd64"
        )
    return parts[0], parts[1], parts[2] if len(parts) > 2 and parts[2] else None


def select_platform(entries: list[Descriptor], platform: str = "linux/amd64") -> Descriptor:
    """The index entry for ``platform`` (attestation entries never match)."""
    os_, arch, variant = _parse_platform(platform)
    candidates = []
    for d in entries:
        if d.is_attestation or (d.media_type in INDEX_TYPES and not d.platform):
            continue
        p = d.platform or {}
        if p.get("os") != os_ or p.get("architecture") != arch:
            continue
        if variant and p.get("variant") and p.get("variant") != variant:
            continue
        candidates.append(d)
    if not candidates:
        available = sorted({d.platform_text for d in entries if not d.is_attestation})
        raise RegistryError(
            "not-found",
            f"the image has no {platform} variant (available: {', '.join(available) or 'none'})",
            fix="build for a platform the base image offers, or pick another base image",
        )
    if variant:  # an exact variant beats an entry without one
        exact = [d for d in candidates if (d.platform or {}).get("variant") == variant]
        if exact:
            return exact[0]
    return candidates[0]


# -- the client --------------------------------------------------------------------------

_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="...",scope="..."`` -> ("bearer", {...})."""
    header = header.strip()
    scheme, _, rest = header.partition(" ")
    params = {
        m.group(1).lower(): (m.group(2) or m.group(3) or "")
        for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return scheme.lower(), params


def _registry_errors(response: requests.Response) -> tuple[Optional[str], str]:
    """The first registry error code and message from an error body."""
    try:
        data = response.json()
    except ValueError:
        text = (response.text or "").strip().splitlines()
        return None, (text[0][:200] if text else "")
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        return first.get("code"), str(first.get("message") or "")
    if isinstance(data, dict) and data.get("details"):  # token servers
        return None, str(data["details"])[:200]
    return None, ""


class RegistryClient:
    """Talks to one registry host. Not thread-safe; cheap to create."""

    def __init__(
        self,
        host: str,
        *,
        credentials: Optional[Credentials] = None,
        insecure: bool = False,
        timeout: Union[float, tuple[float, float]] = (5, 20),
        ca_bundle: Optional[str] = None,
        skip_tls_verify: bool = False,
        session: Optional[requests.Session] = None,
        user_agent: str = USER_AGENT,
        deadline: Optional[float] = None,
    ) -> None:
        host = host.strip().rstrip("/")
        if "://" in host:
            scheme, host = host.split("://", 1)
            insecure = insecure or scheme == "http"
        if host in ("docker.io", "index.docker.io"):
            host = DOCKER_HUB_API
        self.host = host
        self.insecure = insecure
        self.base = f"{'http' if insecure or _is_local(host) else 'https'}://{host}"
        self.credentials = credentials
        self.timeout = timeout
        self.verify: Union[bool, str] = False if skip_tls_verify else (ca_bundle or True)
        self.user_agent = user_agent
        self._session = session
        self._challenge: Optional[tuple[str, dict[str, str]]] = None
        self._tokens: dict[str, str] = {}  # scope -> bearer token
        self.deadline = deadline  # time.monotonic() by which every call must be done

    # -- plumbing ------------------------------------------------------------------------
    @property
    def session(self) -> requests.Session:
        if self._session is None:
            from ..http import make_session

            # registries redirect blob and manifest reads to their storage (S3, GCS)
            self._session = make_session(user_agent=self.user_agent, follow_redirects=True)
        return self._session

    def _deadline_error(self, url: str) -> RegistryError:
        return RegistryError(
            "deadline",
            f"the registry calls to {self.host} ran out of the time set for preflight and the "
            "estimate (deadline)",
            url=_strip_query(url),
            fix="the registry is slow or hangs; the timeout falls back to the defaults",
        )

    def _timeout(self, url: str) -> Union[float, tuple[float, float]]:
        """The per-request timeout, shortened to what is left of the deadline."""
        if self.deadline is None:
            return self.timeout
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self._deadline_error(url)
        if isinstance(self.timeout, tuple):
            return (min(self.timeout[0], left), min(self.timeout[1], left))
        return min(self.timeout, left)

    def _send(
        self, method: str, url: str, *, max_bytes: int = MAX_BODY_BYTES, **kwargs: Any
    ) -> requests.Response:
        """One request; its body (if any) read with ``max_bytes`` and the deadline."""
        resp = self._open(method, url, **kwargs)
        if method == "HEAD":
            resp.close()
            return resp
        from ..http import DeadlineExceeded, ResponseTooLarge, read_bounded

        try:
            read_bounded(resp, max_bytes, deadline=self.deadline, what=f"the answer of {self.host}")
        except ResponseTooLarge:
            raise RegistryError(
                "too-large",
                f"{self.host} sent more than {max_bytes // 1024} KiB for {_strip_query(url)}: "
                "not read",
                url=_strip_query(url),
            ) from None
        except DeadlineExceeded:
            raise RegistryError(
                "deadline",
                f"{self.host} was still sending {_strip_query(url)} when the time set for "
                "preflight and the estimate ran out",
                url=_strip_query(url),
            ) from None
        except Exception as exc:  # urllib3 read errors are not wrapped by requests here
            from .interrupt import check as interrupted

            interrupted()
            raise RegistryError(
                "network",
                f"the connection to {self.host} broke while reading {_strip_query(url)}",
                url=_strip_query(url),
                cause=short(str(exc)),
            ) from None
        return resp

    def _open(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        import requests

        kwargs["timeout"] = self._timeout(url)
        kwargs.setdefault("verify", self.verify)
        kwargs.setdefault("allow_redirects", True)
        kwargs["stream"] = True
        from .interrupt import check as interrupted

        interrupted()  # a SIGTERM during the estimate: no more registry calls
        try:
            return self.session.request(method, url, **kwargs)
        except requests.exceptions.SSLError as exc:
            interrupted()  # urllib3 wraps the signal's exception: it is not a TLS error
            text = str(exc)
            hint = None
            if "WRONG_VERSION_NUMBER" in text.upper() or "wrong version number" in text:
                hint = "the server speaks plain HTTP: mark the registry insecure"
            raise RegistryError(
                "tls",
                f"TLS handshake with {self.host} failed",
                url=_strip_query(url),
                cause=short(text),
                fix=hint
                or "give the registry's CA (--registry-certificate / ca_bundle) "
                "or, for a test registry only, skip TLS verification",
            ) from None
        except requests.exceptions.RequestException as exc:
            interrupted()
            if self.deadline is not None and time.monotonic() >= self.deadline - 0.05:
                raise self._deadline_error(url) from None
            if isinstance(exc, requests.exceptions.Timeout):
                raise RegistryError(
                    "network",
                    f"{self.host} did not answer in time",
                    url=_strip_query(url),
                    cause=short(str(exc)),
                    fix="check the network path (proxy, firewall) from the build agent",
                ) from None
            raise RegistryError(
                "network",
                f"cannot connect to {urllib.parse.urlsplit(url).netloc}",
                url=_strip_query(url),
                cause=short(str(exc)),
                fix="check the registry host name, port and that it is reachable from the agent",
            ) from None

    def _auth_header(self, scope: Optional[str]) -> Optional[str]:
        if self._challenge is None:
            return None
        scheme, _params = self._challenge
        if scheme == "basic":
            if self.credentials is not None and self.credentials.has_basic:
                return self.credentials.basic_header()
            return None
        if scheme == "bearer":
            token = self._tokens.get(scope or "")
            return f"Bearer {token}" if token else None
        return None

    def _request(
        self,
        method: str,
        path: str,
        *,
        scope: Optional[str] = None,
        headers: Optional[dict[str, str]] = None,
        max_bytes: int = MAX_BODY_BYTES,
    ) -> requests.Response:
        url = self.base + path
        hdrs = dict(headers or {})
        auth = self._auth_header(scope)
        if auth:
            hdrs["Authorization"] = auth
        resp = self._send(method, url, headers=hdrs, max_bytes=max_bytes)
        if resp.status_code == 401 and not auth:
            header = resp.headers.get("WWW-Authenticate", "")
            if header:
                self._challenge = parse_challenge(header)
                scheme, params = self._challenge
                if scheme == "bearer":
                    self._fetch_token(params, params.get("scope") or scope)
                    if params.get("scope") and params.get("scope") != scope:
                        self._tokens[scope or ""] = self._tokens[params["scope"]]
                auth = self._auth_header(scope)
                if auth:
                    hdrs["Authorization"] = auth
                    resp = self._send(method, url, headers=hdrs, max_bytes=max_bytes)
        return resp

    def _fetch_token(self, params: dict[str, str], scope: Optional[str]) -> str:
        realm = params.get("realm")
        if not realm:
            raise RegistryError(
                "auth", f"{self.host} asked for a Bearer token but named no realm (token server)"
            )
        creds = self.credentials
        if creds is not None and creds.registry_token:
            self._tokens[scope or ""] = creds.registry_token
            return creds.registry_token
        query: dict[str, str] = {}
        if params.get("service"):
            query["service"] = params["service"]
        if scope:
            query["scope"] = scope
        headers = {}
        if creds is not None and creds.identity_token:
            form = dict(query, grant_type="refresh_token", refresh_token=creds.identity_token)
            form["client_id"] = "ci-report"
            resp = self._send("POST", realm, data=form)
        else:
            if creds is not None and creds.has_basic:
                headers["Authorization"] = creds.basic_header()
                query["account"] = creds.username or ""
            resp = self._send("GET", realm, params=query, headers=headers)
        who = f"as {creds.username!r}" if creds is not None and creds.username else "anonymously"
        if resp.status_code in (401, 403):
            raise RegistryError(
                "auth" if resp.status_code == 401 else "denied",
                f"token server {urllib.parse.urlsplit(realm).netloc} refused {who} "
                f"(HTTP {resp.status_code}) for {scope or 'the registry'}",
                status=resp.status_code,
                url=realm,
                cause=_registry_errors(resp)[1] or None,
                fix="check the credentials for this registry in the Docker config.json",
            )
        if resp.status_code == 429:
            raise self._rate_limited(resp, realm)
        if resp.status_code >= 400:
            raise RegistryError(
                "unknown",
                f"token server answered HTTP {resp.status_code}",
                status=resp.status_code,
                url=realm,
            )
        try:
            data = resp.json()
            token = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not token or not isinstance(token, str):
            raise RegistryError(
                "auth", f"token server {urllib.parse.urlsplit(realm).netloc} sent no token"
            )
        self._tokens[scope or ""] = token
        return token

    def _rate_limited(self, resp: requests.Response, url: str) -> RegistryError:
        retry = resp.headers.get("Retry-After")
        remaining = resp.headers.get("RateLimit-Remaining") or resp.headers.get(
            "ratelimit-remaining"
        )
        extra = []
        if retry:
            extra.append(f"Retry-After {retry}")
        if remaining:
            extra.append(f"RateLimit-Remaining {remaining}")
        return RegistryError(
            "rate-limited",
            f"{self.host} rate-limited the request (HTTP 429)"
            + (f": {', '.join(extra)}" if extra else ""),
            status=429,
            url=_strip_query(url),
            fix="log in (authenticated pulls have higher limits) or use a pull-through mirror",
        )

    def _check(self, resp: requests.Response, what: str) -> requests.Response:
        status = resp.status_code
        if status < 400:
            return resp
        code, message = _registry_errors(resp) if resp.request.method != "HEAD" else (None, "")
        detail = f" [{code}]" if code else ""
        detail += f" {message}" if message else ""
        url = _strip_query(resp.url)
        if status == 429:
            raise self._rate_limited(resp, url)
        if status == 401:
            who = (
                "without credentials" if self.credentials is None else "with the given credentials"
            )
            kind, message = "auth", f"{self.host} refused {what} {who} (HTTP 401){detail}"
            fix: Optional[str] = "add credentials for this registry to the Docker config.json"
        elif status == 403:
            kind, message = "denied", f"{self.host} denied {what} (HTTP 403){detail}"
            fix = "the account lacks permission on this repository"
        elif status == 404:
            kind, message = "not-found", f"{what} not found on {self.host} (HTTP 404){detail}"
            fix = "check the repository name and tag"
        else:
            kind, message = "unknown", f"{self.host} answered HTTP {status} for {what}{detail}"
            fix = None
        raise RegistryError(kind, message, status=status, code=code, url=url, fix=fix)

    # -- API -----------------------------------------------------------------------------
    def ping(self) -> dict[str, Any]:
        """``GET /v2/``. Returns {"status", "auth" ("none"|"basic"|"bearer"), "realm",
        "service"}; only network/TLS trouble raises (401 is the normal challenge)."""
        resp = self._send("GET", self.base + "/v2/")
        info: dict[str, Any] = {"status": resp.status_code, "auth": "none"}
        if resp.status_code == 401:
            header = resp.headers.get("WWW-Authenticate", "")
            if header:
                self._challenge = parse_challenge(header)
                info["auth"] = self._challenge[0]
                info.update({k: v for k, v in self._challenge[1].items() if k != "scope"})
        elif resp.status_code == 404:
            raise RegistryError(
                "not-found",
                f"{self.host} does not serve the registry API (/v2/ is 404)",
                status=404,
                url=self.base + "/v2/",
            )
        elif resp.status_code >= 400:
            self._check(resp, "the API ping")
        return info

    def manifest(
        self, repo: str, ref: str, *, platform: str = "linux/amd64", resolve_index: bool = True
    ) -> Manifest:
        """The image manifest of ``repo:ref`` (a tag or digest); an index resolves to
        ``platform`` unless ``resolve_index`` is False."""
        scope = f"repository:{repo}:pull"
        data, media_type, digest = self._get_manifest(repo, ref, scope)
        if media_type in INDEX_TYPES or (not media_type and "manifests" in data):
            listed = data.get("manifests") or []
            if isinstance(listed, list) and len(listed) > MAX_INDEX_ENTRIES:
                raise RegistryError(
                    "too-large",
                    f"the index of {repo}:{ref} lists {len(listed)} manifests, more than "
                    f"{MAX_INDEX_ENTRIES}: not sized",
                )
            try:
                entries = [Descriptor.from_json(d) for d in listed]
            except (TypeError, ValueError) as exc:
                raise RegistryError("unknown", f"malformed index for {repo}:{ref}: {exc}") from None
            if not resolve_index:
                return Manifest(
                    media_type=media_type or OCI_INDEX,
                    digest=digest,
                    config=None,
                    layers=[],
                    raw=data,
                    index_digest=digest,
                    index_media_type=media_type,
                )
            chosen = select_platform(entries, platform)
            inner, inner_type, inner_digest = self._get_manifest(repo, chosen.digest, scope)
            m = self._image_manifest(inner, inner_type, inner_digest or chosen.digest, repo, ref)
            m.platform = chosen.platform_text
            m.index_digest = digest
            m.index_media_type = media_type or OCI_INDEX
            m.skipped = [
                f"{d.digest[:19]} ({d.platform_text})" for d in entries if d.is_attestation
            ]
            return m
        return self._image_manifest(data, media_type, digest, repo, ref)

    def _get_manifest(self, repo: str, ref: str, scope: str) -> tuple[dict, str, Optional[str]]:
        resp = self._request(
            "GET",
            f"/v2/{repo}/manifests/{ref}",
            scope=scope,
            headers={"Accept": ACCEPT_MANIFESTS},
            max_bytes=MAX_MANIFEST_BYTES,
        )
        self._check(resp, f"manifest {repo}:{ref}" if ":" not in ref else f"manifest {repo}@{ref}")
        try:
            data = json.loads(resp.content)
        except ValueError:
            raise RegistryError(
                "unknown", f"{self.host} sent a manifest for {repo}:{ref} that is not JSON"
            ) from None
        if not isinstance(data, dict):
            raise RegistryError("unknown", f"manifest for {repo}:{ref} is not a JSON object")
        ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
        media_type = ctype if ctype.startswith("application/vnd.") else ""
        media_type = media_type or str(data.get("mediaType") or "")
        return data, media_type, resp.headers.get("Docker-Content-Digest")

    def _image_manifest(
        self, data: dict, media_type: str, digest: Optional[str], repo: str, ref: str
    ) -> Manifest:
        if media_type in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_PLAIN) or (
            not media_type and "fsLayers" in data
        ):
            layers = [
                Descriptor(media_type="", digest=str(f.get("blobSum")), size=0)
                for f in reversed(data.get("fsLayers") or [])
                if isinstance(f, dict)
            ]
            return Manifest(
                media_type=media_type or DOCKER_SCHEMA1,
                digest=digest,
                config=None,
                layers=layers,
                sizes_known=False,
                raw=data,
            )
        if media_type and media_type not in IMAGE_TYPES:
            raise RegistryError(
                "unknown", f"unsupported manifest media type {media_type!r} for {repo}:{ref}"
            )
        listed = data.get("layers") or []
        if isinstance(listed, list) and len(listed) > MAX_LAYERS:
            raise RegistryError(
                "too-large",
                f"{repo}:{ref} has {len(listed)} layers, more than {MAX_LAYERS}: not sized (each "
                "layer would cost one request to the destination)",
            )
        try:
            config = Descriptor.from_json(data["config"]) if data.get("config") else None
            layers = [Descriptor.from_json(d) for d in listed]
        except (TypeError, ValueError) as exc:
            raise RegistryError("unknown", f"malformed manifest for {repo}:{ref}: {exc}") from None
        return Manifest(
            media_type=media_type or OCI_MANIFEST,
            digest=digest,
            config=config,
            layers=layers,
            raw=data,
        )

    def blob_exists(self, repo: str, digest: str) -> bool:
        """``HEAD /v2/<repo>/blobs/<digest>``: True on 200, False on 404 (also when the
        repository does not exist yet)."""
        resp = self._request("HEAD", f"/v2/{repo}/blobs/{digest}", scope=f"repository:{repo}:pull")
        if resp.status_code == 404:
            return False
        self._check(resp, f"blob {digest[:19]} in {repo}")
        return True


def _strip_query(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
