"""Kaniko log parsing: formats, phase markers, digest, and every catalogue entry."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from ci_report.image.kaniko_log import (
    CATALOGUE,
    LogState,
    match_catalogue,
    match_line,
    parse_line,
    phase_of,
)

DEST = "registry.example.com/team/app:1.0"
DIGEST = "sha256:" + "ab" * 32


def test_text_format_line() -> None:
    line = parse_line('time="2026-11-23T18:14:26Z" level=info msg="Pushing image to reg/app:1"')
    assert (line.level, line.msg) == ("info", "Pushing image to reg/app:1")
    assert line.time == pytest.approx(1795457666.0)


def test_text_format_escaped_quotes() -> None:
    line = parse_line('time="2026-11-23T18:14:26Z" level=info msg="ENTRYPOINT [\\"java\\"]"')
    assert line.msg == 'ENTRYPOINT ["java"]'


def test_color_format_ansi_stripped_with_offset() -> None:
    line = parse_line("\x1b[36mINFO\x1b[0m[0012] Pushing image to reg/app:1\n")
    assert (line.level, line.msg, line.offset) == ("info", "Pushing image to reg/app:1", 12.0)
    assert "\x1b" not in line.raw


def test_color_format_with_log_timestamp() -> None:
    line = parse_line(
        "\x1b[33mWARN\x1b[0m[2026-11-23T18:14:26Z] Retrying operation after 1s due to EOF"
    )
    assert line.level == "warning" and line.time is not None and line.offset is None


def test_json_format_and_bare_lines() -> None:
    assert (
        parse_line('{"level":"warning","msg":"x","time":"2026-11-23T18:14:26Z"}').level == "warning"
    )
    bare = parse_line("error building image: boom")
    assert bare.level is None and bare.msg == "error building image: boom"


@pytest.mark.parametrize(
    ("msg", "phase"),
    [
        ("Resolved base name ${BASE} to eclipse-temurin:21", "resolve"),
        ("Retrieving image manifest eclipse-temurin:21-jre-alpine", "manifest"),
        ("Returning cached image manifest", "manifest"),
        ("Retrieving image eclipse-temurin:21-jre-alpine from registry index.docker.io", "pull"),
        ("Retrieving image x from mapped registry mirror.local", "pull"),
        ("Building stage 'eclipse-temurin:21' [idx: '0', base-idx: '-1']", "stage"),
        ("Unpacking rootfs as cmd COPY app.jar /app requires it.", "unpack"),
        ("Skipping unpacking as no commands require it.", "unpack"),
        ("Checking for cached layer reg/app/cache:abc...", "cache-lookup"),
        ("RUN ./mvnw package", "instruction"),
        ("Running: [/bin/sh -c ./mvnw package]", "instruction"),
        ("Taking snapshot of full filesystem...", "snapshot"),
        ("Initializing snapshotter ...", "snapshot"),
        ("Pushing layer reg/app/cache:abc to cache now", "cache-push"),
        (f"Pushing image to {DEST}", "push"),
        (f"Pushed registry.example.com/team/app@{DIGEST}", "pushed"),
        ("Pushed image to 2 destinations", "pushed"),
        ("Skipping push to container registry due to --no-push flag", "no-push"),
        ("something else", None),
    ],
)
def test_phase_markers(msg: str, phase: str | None) -> None:
    assert phase_of(msg) == phase


def test_state_follows_phases_times_and_digest() -> None:
    state = LogState(start_epoch=1795457600.0)
    lines = [
        'time="2026-11-23T18:13:21Z" level=info msg="Retrieving image manifest alpine:3"',
        'time="2026-11-23T18:13:25Z" level=info msg="Taking snapshot of files..."',
        f'time="2026-11-23T18:13:30Z" level=info msg="Pushing image to {DEST}"',
        f'time="2026-11-23T18:15:10Z" level=info msg="Pushed registry.example.com/team/app@'
        f'{DIGEST}"',
    ]
    state.feed_all(lines)
    assert state.phase == "pushed"
    assert state.push_started_at == pytest.approx(10.0)
    assert state.push_seconds() == pytest.approx(100.0)
    assert state.digest == DIGEST
    assert state.first("push").target == DEST


def test_build_seconds_exclude_the_base_image_pull() -> None:
    # 40 s pulling/unpacking the base, 20 s of build steps, then the push: history must
    # record 20 s of build, since the timeout formula adds the pull on its own
    state = LogState(start_epoch=1795457600.0)
    state.feed_all(
        [
            'time="2026-11-23T18:13:21Z" level=info msg="Retrieving image manifest alpine:3"',
            'time="2026-11-23T18:13:22Z" level=info '
            'msg="Unpacking rootfs as cmd RUN x requires it."',
            'time="2026-11-23T18:14:01Z" level=info msg="RUN make"',
            'time="2026-11-23T18:14:15Z" level=info msg="Taking snapshot of full filesystem..."',
            f'time="2026-11-23T18:14:21Z" level=info msg="Pushing image to {DEST}"',
        ]
    )
    assert state.push_started_at == pytest.approx(61.0)
    assert state.build_seconds() == pytest.approx(20.0)


def test_build_seconds_unknown_without_build_steps() -> None:
    state = LogState(start_epoch=1795457600.0)
    state.feed_all([f'time="2026-11-23T18:14:21Z" level=info msg="Pushing image to {DEST}"'])
    assert state.build_seconds() is None


def test_state_color_offsets_and_version() -> None:
    state = LogState()
    state.feed("Kaniko version :  v1.28.3")
    state.feed(f"\x1b[36mINFO\x1b[0m[0003] Pushing image to {DEST}")
    state.feed(f"\x1b[36mINFO\x1b[0m[0043] Pushed registry.example.com/team/app@{DIGEST}")
    assert state.version == "v1.28.3"
    assert state.push_seconds() == 40.0


def test_warnings_are_not_phase_markers() -> None:
    state = LogState()
    state.feed('time="2026-11-23T18:13:21Z" level=warning msg="Pushing image to x"')
    assert state.phase == "start"


PERM = (
    "error checking push permissions -- make sure you entered the correct tag name, and "
    "that you are authenticated correctly, and try again: checking push permission for "
    f'"{DEST}": '
)
PUSH = f"error pushing image: failed to push to destination {DEST}: "
UPLOAD = "https://registry.example.com/v2/team/app/blobs/uploads/"

# one realistic line per catalogue entry (kaniko_log catalogue) -> (entry id, code)
CASES = [
    (
        "Error: error resolving dockerfile path: please provide a valid path to a Dockerfile "
        "within the build context with --dockerfile",
        "P1",
        "dockerfile-missing",
    ),
    ("fatal error: runtime: out of memory", "B9", "oom-killed"),
    (
        'time="2026-11-23T18:14:26Z" level=fatal msg="Timed out snapshotting FS in 1h30m0s"',
        "B8",
        "snapshot-timeout",
    ),
    (
        "error building image: error building stage: failed to get filesystem from image: write "
        "/opt/java/lib/modules: no space left on device",
        "B7",
        "disk-full",
    ),
    (
        PUSH + "PUT https://registry.example.com/v2/team/app/manifests/1.0: TAG_INVALID: The image "
        "tag '1.0' already exists in the 'team/app' repository and cannot be overwritten because "
        "the repository is immutable.",
        "U1g",
        "immutable-tag",
    ),
    (
        PUSH + "googleapi: Error 400: The repository has enabled tag immutability",
        "U1g",
        "immutable-tag",
    ),
    (
        PUSH + f"PATCH {UPLOAD}x: unexpected status code 413 Request Entity Too Large: <html>",
        "U1e",
        "request-too-large",
    ),
    (
        "error building image: GET https://index.docker.io/v2/library/alpine/manifests/3: "
        "TOOMANYREQUESTS: You have reached your pull rate limit.",
        "B2",
        "rate-limited",
    ),
    (
        PUSH + f"POST {UPLOAD}: NAME_UNKNOWN: repository name not known to registry",
        "U1h",
        "name-unknown",
    ),
    (
        PERM + "creating push check transport for index.docker.io failed: GET "
        "https://auth.docker.io/token?scope=x: unexpected status code 400 Bad Request",
        "A1c",
        "registry-auth",
    ),
    (
        PERM + 'Get "https://registry.example.com/v2/": http: server gave HTTP response to HTTPS '
        "client",
        "T1",
        "registry-tls",
    ),
    (
        PERM + 'Get "https://registry.example.com/v2/": tls: failed to verify certificate: x509: '
        "certificate signed by unknown authority",
        "T2",
        "registry-tls",
    ),
    (
        PERM + f"POST {UPLOAD}: UNAUTHORIZED: authentication required; [map[Action:pull]]",
        "A1a",
        "registry-auth",
    ),
    (
        PERM + f"POST {UPLOAD}: DENIED: requested access to the resource is denied",
        "A1b",
        "registry-denied",
    ),
    (
        "error building image: GET https://reg/v2/base/manifests/21: MANIFEST_UNKNOWN: manifest "
        "unknown; unknown tag=21",
        "B1",
        "base-image-not-found",
    ),
    (
        "error building image: error building stage: failed to get filesystem from image: read "
        "tcp 10.0.0.2:4431->1.2.3.4:443: read: connection reset by peer",
        "B3",
        "registry-network",
    ),
    (
        PUSH + f'Patch "{UPLOAD}x": write tcp 10.1.2.3:5->10.2.3.4:443: use of closed network '
        "connection",
        "U1f",
        "push-connection-dropped",
    ),
    (
        PUSH + "http2: Transport received Server's graceful shutdown GOAWAY",
        "U1f",
        "push-connection-dropped",
    ),
    (
        PUSH + f"PATCH {UPLOAD}x: BLOB_UPLOAD_INVALID: blob upload invalid",
        "U1f",
        "push-connection-dropped",
    ),
    (PERM + f'Post "{UPLOAD}": dial tcp 10.20.30.40:443: i/o timeout', "A1d", "registry-network"),
    (
        PERM + 'Get "https://nope.example/v2/": dial tcp: lookup nope.example: no such host',
        "A1d",
        "registry-network",
    ),
    (
        "error building image: error building stage: failed to get files used from context: "
        "failed to get fileinfo for /workspace/app.jar: lstat /workspace/app.jar: no such file or "
        "directory",
        "B6",
        "copy-source-missing",
    ),
    (
        "error building image: error building stage: failed to execute command: waiting for "
        "process to exit: exit status 2",
        "B5",
        "run-step-failed",
    ),
    ("kaniko should only be run inside of a container, run with the --force flag", "P4", "unknown"),
    (
        "error building image: error building stage: failed to get filesystem from image: error "
        "removing /etc/hosts to make way for new file",
        "B4",
        "filesystem-conflict",
    ),
    ("sh: /kaniko/executor: not found", "X1", "executor-missing"),
    (
        "timeout: can't execute '/kaniko/executor': No such file or directory",
        "X1",
        "executor-missing",
    ),
]


@pytest.mark.parametrize(("line", "entry_id", "code"), CASES, ids=[c[1] for c in CASES])
def test_catalogue_entry(line: str, entry_id: str, code: str) -> None:
    found = match_line(line)
    assert found is not None, line
    assert (found.id, found.code) == (entry_id, code)


def test_every_catalogue_entry_has_a_case() -> None:
    real = runpy.run_path(str(Path(__file__).parents[1] / "data" / "kaniko" / "failure_lines.py"))
    found = [match_line(real["line_of"](w, cause)) for w, cause, *_ in real["LINES"]]
    covered = {c[1] for c in CASES} | {"C1"} | {e.id for e in found if e is not None}
    assert {e.id for e in CATALOGUE} <= covered


def test_cache_warning_is_not_fatal() -> None:
    line = (
        'time="2026-11-23T18:14:26Z" level=warning msg="Error uploading layer to cache: '
        'unexpected status code 413"'
    )
    assert match_catalogue([line]) == []
    assert match_catalogue([line], include_nonfatal=True)[0].entry.id == "C1"


def test_retry_warnings_never_decide_and_last_error_wins() -> None:
    lines = [
        'time="2026-11-23T18:14:26Z" level=warning msg="Retrying operation after 1s due to '
        'connection reset by peer"',
        PUSH + f"POST {UPLOAD}: UNAUTHORIZED: authentication required",
    ]
    matches = match_catalogue(lines)
    assert [m.entry.code for m in matches] == ["registry-auth"]


def test_info_lines_are_not_errors() -> None:
    assert (
        match_line('time="2026-11-23T18:14:26Z" level=info msg="RUN curl x || echo denied: no"')
        is None
    )
