"""Reading Kaniko's log: phase markers, the pushed digest, and the error catalogue.

Kaniko logs through logrus in three formats (``--log-format``)::

    color  \\x1b[36mINFO\\x1b[0m[0012] Pushing image to reg/app:1   (or INFO[2026-11-23T18:14:26Z])
    text   time="2026-11-23T18:14:26Z" level=info msg="Pushing image to reg/app:1"
    json   {"level":"info","msg":"Pushing image to reg/app:1","time":"..."}

Its final error is a bare line (``error building image: ...``), RUN output is bare too.
:func:`parse_line` normalises all of them; :class:`LogState` follows a log line by line and
keeps what the diagnosis needs; :func:`match_catalogue` maps error lines to diagnosis codes.
The markers and messages are verbatim from Kaniko v1.24.0 (its pkg/executor, pkg/commands).
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Optional, Sequence

from .wrappers import Peeled, peel

__all__ = [
    "CATALOGUE",
    "PHASES",
    "CatalogueEntry",
    "LogLine",
    "LogState",
    "match_catalogue",
    "parse_line",
    "phase_of",
    "strip_ansi",
]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TEXT = re.compile(
    r'^time="(?P<time>[^"]*)"\s+level=(?P<level>\w+)\s+msg="(?P<msg>(?:[^"\\]|\\.)*)"'
)
_COLOR = re.compile(
    r"^(?P<level>INFO|WARN|ERRO|FATA|DEBU|TRAC|PANI)\[(?P<time>[^\]]*)\]\s?(?P<msg>.*)$"
)
_LEVELS = {
    "INFO": "info",
    "WARN": "warning",
    "ERRO": "error",
    "FATA": "fatal",
    "DEBU": "debug",
    "TRAC": "trace",
    "PANI": "panic",
}


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


@dataclass
class LogLine:
    raw: str  # the line as printed, ANSI removed, no trailing newline
    msg: str  # the message without the logrus prefix
    level: Optional[str]  # info/warning/error/fatal/debug/...; None for bare lines
    time: Optional[float] = None  # epoch seconds (text/json, or color with --log-timestamp)
    offset: Optional[float] = None  # seconds since Kaniko started (color without timestamps)


def _parse_time(text: str) -> Optional[float]:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def parse_line(line: str) -> LogLine:
    """One log line in any of Kaniko's formats -> :class:`LogLine`."""
    raw = strip_ansi(line.rstrip("\r\n")).rstrip()
    m = _TEXT.match(raw)
    if m:
        msg = m.group("msg").replace('\\"', '"').replace("\\\\", "\\")
        level = m.group("level").lower()
        level = "warning" if level == "warn" else level
        return LogLine(raw, msg, level, _parse_time(m.group("time")))
    m = _COLOR.match(raw)
    if m:
        stamp = m.group("time")
        when: Optional[float] = None
        offset: Optional[float] = None
        if stamp.isdigit():
            offset = float(stamp)
        else:
            when = _parse_time(stamp)
        return LogLine(raw, m.group("msg").strip(), _LEVELS[m.group("level")], when, offset)
    if raw.startswith("{") and raw.endswith("}"):
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if isinstance(data, dict) and "msg" in data:
            level = str(data.get("level", "info")).lower()
            level = "warning" if level == "warn" else level
            return LogLine(raw, str(data["msg"]), level, _parse_time(str(data.get("time", ""))))
    return LogLine(raw, raw.strip(), None)


# -- phases ------------------------------------------------------------------------------

# (phase, regex on the normalised message); order = order of a normal build.
_PHASE_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("resolve", re.compile(r"^Resolved base name (\S+) to (\S+)$")),
    (
        "manifest",
        re.compile(r"^(?:Retrieving image manifest (\S+)|Returning cached image manifest)$"),
    ),
    ("pull", re.compile(r"^Retrieving image (\S+) from (?:mapped )?registry (\S+)$")),
    (
        "stage",
        re.compile(
            r"^(?:Built cross stage deps: |Executing \d+ build triggers$|"
            r"Building stage '([^']*)' \[idx: '(\d+)', base-idx: '(-?\d+)'\]$)"
        ),
    ),
    (
        "unpack",
        re.compile(
            r"^(?:Unpacking rootfs as cmd (.+) requires it\."
            r"|Skipping unpacking as no commands require it\.)$"
        ),
    ),
    (
        "cache-lookup",
        re.compile(
            r"^(?:Checking for cached layer (\S+)\.\.\.$|Using caching version of cmd: |"
            r"No cached layer found for cmd |Cache entry expired: )"
        ),
    ),
    (
        "instruction",
        re.compile(
            r"^(?:(?:FROM|RUN|COPY|ADD|ENV|ARG|WORKDIR|USER|LABEL|EXPOSE|ENTRYPOINT|CMD|VOLUME|"
            r"HEALTHCHECK|SHELL|ONBUILD|STOPSIGNAL)\b|Cmd: |Args: |Running: \[)"
        ),
    ),
    (
        "snapshot",
        re.compile(
            r"^(?:Initializing snapshotter \.\.\.|Taking snapshot of full filesystem\.\.\.|"
            r"Taking snapshot of files\.\.\."
            r"|No files changed in this command, skipping snapshotting\.)$"
        ),
    ),
    ("cache-push", re.compile(r"^Pushing layer (\S+) to cache now$")),
    ("push", re.compile(r"^Pushing image to (\S+)$")),
    (
        "pushed",
        re.compile(r"^(?:Pushed (\S+@sha256:[0-9a-f]{64})|Pushed image to (\d+) destinations)$"),
    ),
    ("no-push", re.compile(r"^Skipping push to container registry due to --no-push flag$")),
]
PHASES = ("start", *(name for name, _ in _PHASE_RULES))
_PUSHED = re.compile(r"^Pushed (\S+)@(sha256:[0-9a-f]{64})$")
_RETRY = re.compile(r"^Retrying operation after (\S+) due to (.+)$")
_VERSION = re.compile(r"Kaniko version\s*:\s*(\S+)")


def phase_of(msg: str) -> Optional[str]:
    """The phase a normalised message marks, or None."""
    for name, regex in _PHASE_RULES:
        if regex.search(msg):
            return name
    return None


@dataclass
class PhaseMark:
    phase: str
    line: str
    at: Optional[float]  # seconds since the executor started, when known
    msg: str = ""  # the normalised message

    @property
    def target(self) -> Optional[str]:
        """The image named by ``Pushing image to X`` / ``Pushed X@...``."""
        words = self.msg.split()
        return words[-1] if words and self.phase in ("push", "pushed") else None


# coarse stages for people: the fine phases flip back and forth within a build
STAGES = {
    "resolve": "pull",
    "manifest": "pull",
    "pull": "pull",
    "stage": "build",
    "unpack": "build",
    "cache-lookup": "build",
    "instruction": "build",
    "snapshot": "build",
    "cache-push": "build",
    "push": "push",
    "pushed": "push",
    "no-push": "done",
}


@dataclass
class LogState:
    """What a log has shown so far. Feed lines with :meth:`feed` (``at`` = seconds since the
    executor started, when the caller knows it better than the log's own timestamps)."""

    start_epoch: Optional[float] = None  # for text/json timestamps -> offsets
    phase: str = "start"
    marks: list[PhaseMark] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)  # destination -> sha256:...
    retries: list[str] = field(default_factory=list)
    tail: deque = field(default_factory=lambda: deque(maxlen=400))
    version: Optional[str] = None

    def _offset(self, parsed: LogLine, at: Optional[float]) -> Optional[float]:
        if at is not None:
            return at
        if parsed.offset is not None:
            return parsed.offset
        if parsed.time is not None and self.start_epoch is not None:
            return max(0.0, parsed.time - self.start_epoch)
        return None

    def feed(self, line: str, at: Optional[float] = None) -> Optional[PhaseMark]:
        """Take one line; return a :class:`PhaseMark` when the phase changed."""
        parsed = parse_line(line)
        if not parsed.raw:
            return None
        self.tail.append(parsed.raw)
        msg = parsed.msg
        version = _VERSION.search(msg)
        if version:
            self.version = version.group(1)
        pushed = _PUSHED.match(msg)
        if pushed:
            self.digests[pushed.group(1)] = pushed.group(2)
        retry = _RETRY.match(msg)
        if retry:
            self.retries.append(parsed.raw)
        phase = phase_of(msg) if parsed.level in (None, "info") else None
        if phase is None:
            return None
        mark = PhaseMark(phase, parsed.raw, self._offset(parsed, at), msg)
        changed = phase != self.phase
        if changed or phase in ("push", "pushed"):
            self.marks.append(mark)
        self.phase = phase
        return mark if changed else None

    def feed_all(self, lines: Iterable[str]) -> LogState:
        for line in lines:
            self.feed(line)
        return self

    # -- derived -------------------------------------------------------------------------
    def first(self, phase: str) -> Optional[PhaseMark]:
        return next((m for m in self.marks if m.phase == phase), None)

    def last(self, phase: str) -> Optional[PhaseMark]:
        return next((m for m in reversed(self.marks) if m.phase == phase), None)

    @property
    def last_marker(self) -> Optional[str]:
        return self.marks[-1].line if self.marks else None

    @property
    def push_started_at(self) -> Optional[float]:
        mark = self.first("push")
        return mark.at if mark else None

    def build_seconds(self) -> Optional[float]:
        """From the first build step (after the base image was pulled and unpacked) to the
        first ``Pushing image to``: the build alone, without the pull (the timeout formula
        adds the pull separately)."""
        push = self.first("push")
        if push is None or push.at is None:
            return None
        unpack = self.last("unpack")
        steps = [
            m
            for m in self.marks
            if m.phase in ("cache-lookup", "instruction", "snapshot")
            and m.at is not None
            and (unpack is None or unpack.at is None or m.at >= unpack.at)
        ]
        if not steps:
            return None
        start = steps[0].at
        assert start is not None
        return max(0.0, push.at - start)

    def push_seconds(self) -> Optional[float]:
        """From the first ``Pushing image to`` to the last ``Pushed``, when both are timed."""
        start, end = self.first("push"), self.last("pushed")
        if start is None or end is None or start.at is None or end.at is None:
            return None
        return max(0.0, end.at - start.at)

    @property
    def digest(self) -> Optional[str]:
        return next(iter(self.digests.values()), None)


# -- the error catalogue -----------------------------------------------------------------


@dataclass(frozen=True)
class CatalogueEntry:
    id: str  # the row of the failure catalogue (P1, A1a, U1e, ...)
    code: str  # the diagnosis code
    regex: re.Pattern[str]
    summary: str
    fixes: tuple[str, ...]
    fatal: bool = True  # False: a warning that does not end the build by itself
    stages: Optional[tuple[str, ...]] = None  # only behind these wrappers (see wrappers.py)


def _e(
    id: str,
    code: str,
    pattern: str,
    summary: str,
    *fixes: str,
    fatal: bool = True,
    flags: int = 0,
    stages: Optional[tuple[str, ...]] = None,
) -> CatalogueEntry:
    regex = re.compile(pattern, flags)
    return CatalogueEntry(id, code, regex, summary, tuple(fixes), fatal, stages)


# Matched against the innermost cause (wrappers peeled, see wrappers.py), first match wins, in a
# fixed order: Kaniko's own conditions, TLS, plain HTTP, network and timeouts, registry error
# codes, auth, then build errors.
CATALOGUE: tuple[CatalogueEntry, ...] = (
    # first: a cache-push warning claims its line even when it quotes another error
    _e(
        "C1",
        "unknown",
        r"Error uploading layer to cache: (.+)",
        "pushing a layer to the cache repository failed (non-fatal)",
        "fix --cache-repo rights/limits, or disable --cache",
        fatal=False,
    ),
    _e(
        "P1",
        "dockerfile-missing",
        r"error resolving dockerfile path|please provide a valid path to a Dockerfile",
        "Kaniko cannot find the Dockerfile (as given, nor relative to --context)",
        "pass --dockerfile relative to the workspace or to --context, and check it is checked out",
    ),
    _e(
        "B9",
        "oom-killed",
        r"fatal error: runtime: out of memory",
        "the Kaniko process ran out of memory (Go runtime)",
        "--compressed-caching=false (keeps gzip layers out of memory)",
        "raise the kaniko container's resources.limits.memory",
        "--snapshot-mode=redo; avoid --reproducible on large images",
    ),
    _e(
        "B8",
        "snapshot-timeout",
        r"Timed out snapshotting FS in (\S+)",
        "taking a filesystem snapshot took longer than SNAPSHOT_TIMEOUT_DURATION (default 90m)",
        "--snapshot-mode=redo (mtime/size instead of hashing every file)",
        "--use-new-run, or fewer/smaller files in the image",
        "raise SNAPSHOT_TIMEOUT_DURATION in the executor's environment",
    ),
    _e(
        "B7",
        "disk-full",
        r"no space left on device",
        "the kaniko container ran out of disk (rootfs unpack, snapshots or stage tarballs)",
        "raise the pod's ephemeral-storage request/limit",
        "--kaniko-dir=<a large emptyDir>; a smaller base image; multi-stage builds",
    ),
    _e(
        "B6",
        "copy-source-missing",
        r"failed to get files used from context|copy failed: no source files specified"
        r"|failed to get fileinfo for",
        "a COPY/ADD source does not exist in the build context",
        "build the artifact before the image step, check --context, and check .dockerignore",
    ),
    _e(
        "F1",
        "filesystem-conflict",
        r"(?:mkdir|unlinkat|symlink|rename|open|lstat|stat|link|remove|chmod|chown|mknod) \S+: "
        r"(?:not a directory|file exists|too many levels of symbolic links"
        r"|device or resource busy)",
        "a file in the image conflicts with another one of a different type, or with a path "
        "mounted into the kaniko container",
        "a layer replaces a directory with a file or a link (or the reverse): find the path in "
        "the error line and change the Dockerfile or base image so the types agree",
        "'device or resource busy' is a path mounted into the container (/etc/resolv.conf, "
        "/etc/hosts, a volume): --ignore-path=<that path>",
    ),
    _e(
        "B4",
        "filesystem-conflict",
        r"error removing (\S+) to make way for new",
        "the base image conflicts with a path mounted into the kaniko container",
        "do not mount over paths that exist in the base image; use --ignore-path",
    ),
    # TLS, then plain HTTP on an HTTPS port
    _e(
        "T2",
        "registry-tls",
        r"x509: |tls: failed to verify certificate|certificate signed by unknown authority"
        r"|tls: handshake failure|remote error: tls",
        "the registry's TLS certificate is not trusted by Kaniko",
        "--registry-certificate=<host>=/path/ca.crt, or mount the CA at /kaniko/ssl/certs/",
        "last resort: --skip-tls-verify-registry=<host>",
    ),
    _e(
        "T1",
        "registry-tls",
        r"server gave HTTP response to HTTPS client",
        "the registry speaks plain HTTP but Kaniko used HTTPS",
        "--insecure-registry=<host:port> (covers push and pull)",
    ),
    # network and timeouts
    _e(
        "N1",
        "registry-network",
        r"\b50[234]\b (?:Bad Gateway|Service Unavailable|Gateway Time-?out)"
        r"|unsupported status code 50[234]|unexpected status code 50[234]|\bUNAVAILABLE\b"
        r"|<h1>50[234] ",
        "a proxy or load balancer in front of the registry answered 502/503/504 (the registry "
        "behind it is down, overloaded or too slow)",
        "retry later; --push-retry=3 and --image-download-retry=2 ride out short outages",
        "check the proxy's upstream timeout and the registry's health",
    ),
    _e(
        "B3",
        "registry-network",
        r"connection reset by peer|unexpected EOF|stream error|INTERNAL_ERROR|PROTOCOL_ERROR"
        r"|connection timed out|i/o timeout|use of closed network connection",
        "downloading the base image failed mid-transfer",
        "--image-fs-extract-retry=2 (and --image-download-retry=2)",
        "use a registry mirror close to the cluster (--registry-mirror / --registry-map)",
        stages=("pull",),
    ),
    _e(
        "U1f",
        "push-connection-dropped",
        r"use of closed network connection|GOAWAY|connection reset by peer|broken pipe"
        r"|unexpected EOF|BLOB_UPLOAD_INVALID|BLOB_UPLOAD_UNKNOWN|http2: server sent",
        "the connection to the registry was dropped mid-transfer (proxy idle/body timeout, "
        "HTTP/2 problems, upload session expired)",
        "--push-retry=3 (and --image-fs-extract-retry=2 for pulls)",
        "GODEBUG=http2client=0 in the executor's environment",
        "raise proxy/load-balancer timeouts above layer size / bandwidth",
    ),
    _e(
        "A1d",
        "registry-network",
        r"dial tcp \S+: (?:i/o timeout|connect: no route to host|connect: connection refused)"
        r"|no such host|TLS handshake timeout|i/o timeout|context deadline exceeded"
        r"|Client\.Timeout exceeded|network is unreachable|no route to host|connection refused"
        r"|connection timed out|proxyconnect tcp",
        "Kaniko could not reach the registry (DNS, network policy, proxy or a registry outage)",
        "check egress to the registry from the pod (NetworkPolicy, HTTPS_PROXY/NO_PROXY)",
        "--push-retry=3, --image-download-retry=2 for transient failures",
    ),
    # registry error codes
    _e(
        "U1g",
        "immutable-tag",
        r"The repository has enabled tag immutability|cannot be overwritten because the "
        r"repository is immutable|tag invalid: The image tag .* already exists"
        r"|MANIFEST_INVALID: manifest invalid; map\[description:HTTP 403 Forbidden\]",
        "the destination tag already exists and the registry refuses to overwrite it (an "
        "immutable repository; Artifactory answers MANIFEST_INVALID with 'HTTP 403 Forbidden', "
        "which looks like a permission problem but is not)",
        "push a unique tag (e.g. add the build number or commit)",
        "or allow overwrites for this repository (Artifactory: the deploying user needs "
        "'Delete/Overwrite'), or --push-ignore-immutable-tag-errors for re-runs of release builds",
    ),
    _e(
        "U1e",
        "request-too-large",
        r"\b413\b|Request Entity Too Large|Payload Too Large",
        "a proxy in front of the registry refused the layer upload as too large (HTTP 413)",
        "raise the proxy body limit for /v2/ (nginx client_max_body_size 0; Cloudflare: 100 MB "
        "cap, bypass it for the registry)",
        "make the largest layer smaller (layered JARs, multi-stage builds)",
    ),
    _e(
        "B2",
        "rate-limited",
        r"TOOMANYREQUESTS|toomanyrequests|You have reached your pull rate limit"
        r"|\b429 Too Many Requests",
        "the registry rate-limited the requests (Docker Hub pull limit, or a push limit)",
        "add docker.io credentials (key https://index.docker.io/v1/) to config.json",
        "or --registry-mirror=<mirror>, or copy the base image into your own registry",
        "fewer parallel pushes; retry later",
    ),
    _e(
        "U1h",
        "name-unknown",
        r"NAME_UNKNOWN|repository name not known to registry"
        r"|name unknown",
        "the destination repository does not exist and the registry does not create it on push",
        "create the repository first (ECR, some Harbor/Nexus setups), or fix the destination path",
    ),
    _e(
        "M1",
        "manifest-rejected",
        r"MANIFEST_INVALID: .*mediaType in manifest should be '([^']+)' not '([^']+)'",
        "the registry accepts only Docker manifests, and the image has an OCI manifest (an OCI "
        "base image keeps its media type)",
        "use a base image published with Docker media types, or let the registry accept OCI "
        "manifests (GitLab: upgrade; Nexus/Artifactory: enable OCI support)",
        "or convert the base image once (skopeo copy --format v2s2) into your own registry",
    ),
    _e(
        "M2",
        "manifest-rejected",
        r"MANIFEST_INVALID|\bUNSUPPORTED\b",
        "the registry refused the image manifest (its own validation, a size or policy limit, "
        "or a server-side failure it reports as an invalid manifest)",
        "read the registry's description in the error line; ECR 'UNSUPPORTED ... ImageManifest' "
        "means a manifest it cannot parse: check the media types and --reproducible",
        "retry when the description names a server problem (e.g. 'Circuit Breaker')",
    ),
    _e(
        "M3",
        "manifest-rejected",
        r"TAG_INVALID",
        "the registry refused the tag (the tag in the manifest PUT did not match, or is not a "
        "valid tag for it)",
        "use a plain tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}, and one registry per destination",
    ),
    _e(
        "M4",
        "manifest-rejected",
        r"MANIFEST_BLOB_UNKNOWN|BLOB_UNKNOWN",
        "the registry does not have a layer the manifest refers to (an upload that was lost, a "
        "parallel push or garbage collection, or a cross-repository mount it did not honour)",
        "retry the push (--push-retry=3); avoid parallel pushes of the same image",
        "with a cache or base in another repository of the same registry, push without "
        "cross-repository mounts or copy the base into the destination repository",
    ),
    _e(
        "B1",
        "base-image-not-found",
        r"MANIFEST_UNKNOWN|manifest unknown|manifest for .* not found",
        "the base image (or its linux/amd64 platform) does not exist, or a FROM names a stage "
        "that is not defined before it",
        "check the FROM image name, tag and platform (skopeo inspect / crane manifest)",
        "stage names must be defined before they are used in FROM",
    ),
    # auth
    _e(
        "A1c",
        "registry-auth",
        r"(?:GET|Get) \"?\S*token\S*\"?: unexpected status code 4\d\d|invalid repository name",
        "the registry's token endpoint refused the destination (often a name without registry "
        "host or namespace)",
        "fully qualify --destination as host/namespace/repo:tag",
        "check the credentials for that host in config.json",
    ),
    _e(
        "A1a",
        "registry-auth",
        r"UNAUTHORIZED|unauthorized: |authentication required|unexpected status code 401"
        r"|401 Unauthorized|invalid username/password",
        "the registry refused the credentials (none found, wrong host key, or expired)",
        "mount the docker config at /kaniko/.docker/config.json (DOCKER_CONFIG) with an "
        "'auths' entry for the destination host",
        "check the key matches the registry host exactly and that the login still works",
    ),
    _e(
        "A1b",
        "registry-denied",
        r"DENIED|denied: |requested access to the resource is denied|unexpected status code 403"
        r"|403 Forbidden",
        "authenticated, but not allowed to push to this repository (rights, namespace, quota)",
        "check the account's push rights on the repository and the namespace/organisation",
        "check registry policies (quota, immutability, project permissions)",
    ),
    # the build itself
    _e(
        "B5",
        "run-step-failed",
        r"(?:^|failed to execute command: )waiting for process to exit: (?:exit status (\d+)"
        r"|signal: (\w+))",
        "a RUN instruction of the Dockerfile failed (its own exit code is passed through)",
        "read the RUN output above the error line: the command in the Dockerfile failed, not "
        "Kaniko",
    ),
    _e(
        "P4",
        "unknown",
        r"kaniko should only be run inside of a container",
        "the executor was started outside a container",
        "run it in the kaniko image (or pass --force if you know what you are doing)",
    ),
    _e(
        "X1",
        "executor-missing",
        r"(?:^|: )(?:\S*executor): (?:not found|No such file or directory)"
        r"|can't execute '[^']*executor'|exec: \S*executor\S*: not found",
        "the executor binary is not there (not a kaniko image, or wrong --executor path)",
        "use the kaniko :debug image (it has /busybox/sh) or pass --executor=<path>",
    ),
)
_BY_ID = {e.id: e for e in CATALOGUE}


def entry(id: str) -> CatalogueEntry:
    return _BY_ID[id]


@dataclass
class CatalogueMatch:
    entry: CatalogueEntry
    line: str  # the line that matched (normalised, ANSI stripped)
    index: int  # its position in the lines searched
    peeled: Optional[Peeled] = None  # the innermost cause and the wrappers around it


def _candidate(line: LogLine) -> bool:
    """Lines that can carry Kaniko's error: errors/fatals/warnings and bare lines."""
    return line.level in (None, "error", "fatal", "panic", "warning")


def classify(message: str) -> Optional[tuple[CatalogueEntry, Peeled]]:
    """The catalogue entry for one error message, decided by its innermost cause."""
    peeled = peel(message)
    for item in CATALOGUE:
        if item.stages is not None and peeled.stage not in item.stages:
            continue
        if item.regex.search(peeled.cause):
            return item, peeled
    return None


def _classify_line(text: str) -> Optional[tuple[CatalogueEntry, Peeled]]:
    parsed = parse_line(text)
    if not _candidate(parsed) or _RETRY.match(parsed.msg):
        return None
    return classify(parsed.msg)


def match_line(text: str) -> Optional[CatalogueEntry]:
    found = _classify_line(text)
    return found[0] if found else None


def match_catalogue(
    lines: Sequence[str], *, include_nonfatal: bool = False
) -> list[CatalogueMatch]:
    """Catalogue matches, the one nearest the end of the log first (that is Kaniko's final
    error). Retry warnings are skipped: a retried error is not the cause by itself."""
    found: list[CatalogueMatch] = []
    for index in range(len(lines) - 1, -1, -1):
        hit = _classify_line(lines[index])
        if hit is None or (not hit[0].fatal and not include_nonfatal):
            continue
        found.append(CatalogueMatch(hit[0], strip_ansi(lines[index]).rstrip(), index, hit[1]))
    return found
