"""Real Kaniko failure lines, each with where it comes from, the code and the stage it must get.

``cause`` sources are Kaniko's (and its forks') issue trackers; the wrapper prefixes are the format
strings of the sources named in ``WRAPPERS``. Kaniko prints its final error with
``fmt.Fprintln(os.Stderr, err)`` (``cmd/executor/cmd/root.go``, ``exitWithCode``), so the line is
the whole wrapped chain. Lines marked "abridged" shorten a long registry body, nothing else.
"""

from __future__ import annotations

DEST = "registry.example.com/team/app:1.0"
HOST = "registry.example.com"
UPLOAD = f"https://{HOST}/v2/team/app/blobs/uploads/"
MANIFEST = f"https://{HOST}/v2/team/app/manifests/1.0"

# The prefixes Kaniko really prints in front of a cause (outermost first).
WRAPPERS = {
    # GoogleContainerTools/kaniko cmd/executor/cmd/root.go + pkg/executor/push.go
    # (CheckPushPermissions) + go-containerregistry pkg/v1/remote/check.go
    "push-check-google": (
        "error checking push permissions -- make sure you entered the correct tag name, and that "
        f'you are authenticated correctly, and try again: checking push permission for "{DEST}": '
        f"creating push check transport for {HOST} failed: "
    ),
    # osscontainertools/kaniko cmd/executor/cmd/root.go:218 ("error checking push permissions:
    # %w"), pkg/executor/push.go:149, vendored go-containerregistry check.go:43
    "push-check-fork": (
        f'error checking push permissions: checking push permission for "{DEST}": '
        f"creating push check transport for {HOST} failed: "
    ),
    # the push check's own POST (no transport wrapper: the ping worked, the upload was refused)
    "push-check-post": (
        "error checking push permissions -- make sure you entered the correct tag name, and that "
        f'you are authenticated correctly, and try again: checking push permission for "{DEST}": '
    ),
    # root.go:242 "error pushing image: %w" + pkg/executor/push.go:354
    "push": f"error pushing image: failed to push to destination {DEST}: ",
    # root.go:237 "error building image: %w" + pkg/executor/build.go:1575 + build.go:569
    "pull-fs": "error building image: error building stage: failed to get filesystem from image: ",
    # build.go:703 "failed to execute command: %w" around a lazy rootfs unpack ("extracting fs
    # from image: %w", pkg/commands)
    "pull-extract": (
        "error building image: error building stage: failed to execute command: extracting fs "
        "from image: "
    ),
    # root.go:237 + pkg/util/retry ("unable to complete operation after %d attempts, last
    # error: %w") around the base image's manifest GET
    "pull-retry": (
        "error building image: unable to complete operation after 0 attempts, last error: "
    ),
    # root.go:237 + build.go:1575, a RUN that failed (older format without "failed to execute")
    "build": "error building image: error building stage: ",
}

# (wrapper key or None, cause, source, code, stage)
LINES: list[tuple[str | None, str, str, str, str | None]] = [
    # -- behind the push-check transport: every cause, not only auth --------------------------
    (
        "push-check-google",
        f'Get "https://{HOST}/v2/": tls: failed to verify certificate: x509: certificate signed '
        "by unknown authority",
        "GoogleContainerTools/kaniko #2281, #3304",
        "registry-tls",
        "push-check",
    ),
    (
        "push-check-fork",
        f'Get "https://{HOST}/v2/": dial tcp: lookup {HOST} on 10.96.0.10:53: no such host',
        "kaniko #1290 (DNS), wrapper of osscontainertools/kaniko",
        "registry-network",
        "push-check",
    ),
    (
        "push-check-google",
        f'Get "https://{HOST}/v2/": dial tcp 10.20.30.40:443: connect: no route to host',
        "kaniko-failure-lines: no route to host behind the transport wrapper (issue 12)",
        "registry-network",
        "push-check",
    ),
    (
        "push-check-fork",
        f'Get "https://{HOST}/v2/": dial tcp 10.20.30.40:443: i/o timeout',
        "issue 12: i/o timeout behind the transport wrapper",
        "registry-network",
        "push-check",
    ),
    (
        "push-check-google",
        f'Get "https://{HOST}/v2/": proxyconnect tcp: dial tcp 10.0.0.1:3128: connect: '
        "connection refused",
        "issue 12: a proxy behind the transport wrapper (net/http proxyconnect)",
        "registry-network",
        "push-check",
    ),
    (
        "push-check-google",
        f'Get "https://{HOST}/v2/": http: server gave HTTP response to HTTPS client',
        "issue 12: plain HTTP on an HTTPS port behind the transport wrapper",
        "registry-tls",
        "push-check",
    ),
    (
        "push-check-google",
        "GET https://auth.docker.io/token?scope=repository%3Ateam%2Fapp%3Apush%2Cpull&service="
        "registry.docker.io: unexpected status code 401 Unauthorized: "
        '{"details":"incorrect username or password"}',
        "go-containerregistry check.go: a token 4xx is the one auth cause behind the transport",
        "registry-auth",
        "push-check",
    ),
    (
        "push-check-post",
        f"POST {UPLOAD}: UNAUTHORIZED: unauthorized to access repository: team/app, action: push: "
        "unauthorized to access repository: team/app, action: push",
        "kaniko #2222",
        "registry-auth",
        "push-check",
    ),
    (
        "push-check-post",
        f"POST {UPLOAD}: DENIED: Token exchange failed for project 'team'. Caller does not have "
        "permission 'storage.buckets.get'.",
        "kaniko PR #622",
        "registry-denied",
        "push-check",
    ),
    (
        "push-check-google",
        f"Get https://{HOST}/v2/: x509: certificate signed by unknown authority",
        "kaniko #628 (2019 format, no quotes around the URL)",
        "registry-tls",
        "push-check",
    ),
    # -- registry error codes at the push ----------------------------------------------------
    (
        "push",
        f"PUT {MANIFEST}: MANIFEST_INVALID: manifest invalid; map[description:HTTP 403 Forbidden]",
        "kaniko #1095 (Artifactory refusing to overwrite a tag)",
        "immutable-tag",
        "push",
    ),
    (
        "push",
        f"PUT {MANIFEST}: MANIFEST_INVALID: manifest invalid; map[description:Circuit Breaker "
        "Threshold Reached]",
        "kaniko #2297 (abridged: the description's tail)",
        "manifest-rejected",
        "push",
    ),
    (
        "push",
        f"PUT {MANIFEST}: MANIFEST_INVALID: manifest invalid; mediaType in manifest should be "
        "'application/vnd.docker.distribution.manifest.v2+json' not "
        "'application/vnd.oci.image.manifest.v1+json'",
        "chainguard-forks/kaniko #160 (GitLab, OCI base image)",
        "manifest-rejected",
        "push",
    ),
    (
        "push",
        "PUT https://123456789012.dkr.ecr.eu-west-1.amazonaws.com/v2/team/app/manifests/1.0: "
        "UNSUPPORTED: Invalid parameter at 'ImageManifest' failed to satisfy constraint: "
        "'Invalid JSON syntax'",
        "kaniko #2815 (ECR)",
        "manifest-rejected",
        "push",
    ),
    (
        "push",
        f'PUT {MANIFEST}: TAG_INVALID: "manifest tag did not match URI"',
        "kaniko #429",
        "manifest-rejected",
        "push",
    ),
    (
        "push",
        f"PUT {MANIFEST}: MANIFEST_BLOB_UNKNOWN: blob unknown to registry; sha256:" + "4f" * 32,
        "distribution spec error code MANIFEST_BLOB_UNKNOWN (message from the spec)",
        "manifest-rejected",
        "push",
    ),
    (
        "push",
        f"HEAD https://{HOST}/v2/team/app/blobs/sha256:{'4f' * 32}: BLOB_UNKNOWN: blob unknown "
        "to registry",
        "distribution spec error code BLOB_UNKNOWN (message from the spec)",
        "manifest-rejected",
        "push",
    ),
    (
        "push",
        f"PUT {MANIFEST}: TAG_INVALID: The image tag '1.0' already exists in the 'team/app' "
        "repository and cannot be overwritten because the repository is immutable.",
        "ECR tag immutability (kaniko --push-ignore-immutable-tag-errors, v1.21.0)",
        "immutable-tag",
        "push",
    ),
    # -- proxies in front of the registry ----------------------------------------------------
    (
        "push",
        "unsupported status code 504; body: <html><body><h1>504 Gateway Time-out</h1>",
        "tektoncd/catalog #190",
        "registry-network",
        "push",
    ),
    (
        "push",
        f"PATCH {UPLOAD}3b9e: unexpected status code 502 Bad Gateway: <html><head><title>502 Bad "
        "Gateway</title></head>",
        "registry proxies (nginx 502), kaniko-failure-lines",
        "registry-network",
        "push",
    ),
    (
        "push",
        f"PUT {MANIFEST}: UNAVAILABLE: service unavailable",
        "distribution spec error code UNAVAILABLE",
        "registry-network",
        "push",
    ),
    (
        "push",
        f'Patch "{UPLOAD}3b9e": unexpected EOF',
        "kaniko #2167",
        "push-connection-dropped",
        "push",
    ),
    # -- pulling the base image --------------------------------------------------------------
    (
        "pull-extract",
        "stream error: stream ID 95; INTERNAL_ERROR",
        "googleapis/google-cloud-cpp #6336",
        "registry-network",
        "pull",
    ),
    (
        "pull-fs",
        "read tcp 10.1.2.3:40000->104.18.1.1:443: read: connection timed out",
        "issue 12: read: connection timed out while pulling",
        "registry-network",
        "pull",
    ),
    (
        "pull-retry",
        "GET https://index.docker.io/v2/library/alpine/manifests/3.20: unexpected EOF",
        "kaniko-failure-lines (a pull, not a push; constructed from the wrappers)",
        "registry-network",
        "pull",
    ),
    ("pull-fs", "unexpected EOF", "kaniko #763", "registry-network", "pull"),
    (
        "pull-fs",
        "read tcp 10.1.2.3:40000->104.18.1.1:443: read: connection reset by peer",
        "kaniko #1627",
        "registry-network",
        "pull",
    ),
    (
        "pull-retry",
        "GET https://index.docker.io/v2/library/eclipse-temurin/manifests/21-jre-alpin: "
        "MANIFEST_UNKNOWN: manifest unknown; unknown tag=21-jre-alpin",
        "kaniko failure catalogue B1",
        "base-image-not-found",
        "pull",
    ),
    # -- filesystem conflicts ----------------------------------------------------------------
    (
        "pull-fs",
        "mkdir /usr/share/file/magic: not a directory",
        "kaniko #1469",
        "filesystem-conflict",
        "pull",
    ),
    (
        "pull-fs",
        "mkdir /usr/lib/terminfo: file exists",
        "chainguard-forks/kaniko #76",
        "filesystem-conflict",
        "pull",
    ),
    (
        "pull-fs",
        "stat /etc/ssl/certs/ca-certificates.crt: too many levels of symbolic links",
        "kaniko #2674 (abridged: the path)",
        "filesystem-conflict",
        "pull",
    ),
    (
        "pull-fs",
        "copying dir: unlinkat /etc/resolv.conf: device or resource busy",
        "kaniko #2007 (kind clusters)",
        "filesystem-conflict",
        "pull",
    ),
    (
        "pull-fs",
        "write /opt/java/openjdk/lib/modules: no space left on device",
        "kaniko #2203",
        "disk-full",
        "pull",
    ),
    # -- the build ---------------------------------------------------------------------------
    (
        "build",
        "waiting for process to exit: signal: killed",
        "GoogleContainerTools/skaffold #2150 (older RUN-kill format)",
        "oom-killed",
        "build",
    ),
    (
        "build",
        "failed to execute command: waiting for process to exit: exit status 1",
        "kaniko failure catalogue B5",
        "run-step-failed",
        "build",
    ),
    # -- Kaniko's own lines without a wrapper ------------------------------------------------
    (
        None,
        "fatal error: runtime: out of memory",
        "kaniko #1333 (the Go runtime's own message)",
        "oom-killed",
        None,
    ),
]

# causes Kaniko prints with no wrapper at all (the Go runtime, logrus fatals, the shell)
UNWRAPPED_OK = {"fatal error: runtime: out of memory"}


def line_of(wrapper: str | None, cause: str) -> str:
    return (WRAPPERS[wrapper] if wrapper else "") + cause
