"""Docker mode against a fake Docker Engine API on 127.0.0.1 (DOCKER_HOST=tcp://...).

The fake serves only what the docker SDK calls for this flow: version, containers/create,
inspect, start, logs (multiplexed stream), wait, stop/kill and delete. It records every request
so the test can check the container configuration ci-report asked for.
"""

from __future__ import annotations

import base64
import json
import os
import re
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ci_report.cli import main

pytestmark = pytest.mark.integration
DEST = "127.0.0.1:5999/team/app:1.0"
CID = "c0ffee" * 10 + "abcd"
PUSHED = "Pushed 127.0.0.1:5999/team/app@sha256:" + "7" * 64


class FakeDocker(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, lines: list[str], exit_code: int, hang: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lines, self.exit_code, self.hang = lines, exit_code, hang
        self.requests: list[tuple[str, str, Any]] = []
        self.created: dict[str, Any] = {}
        self.stopped = threading.Event()
        self.finished = threading.Event()


class Handler(BaseHTTPRequestHandler):
    server: FakeDocker

    def log_message(self, *_args: Any) -> None:
        pass

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _empty(self, status: int = 204) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _record(self) -> str:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        path = re.sub(r"^/v1\.\d+", "", self.path)
        self.server.requests.append((self.command, path, body))
        if body is not None and path.startswith("/containers/create"):
            self.server.created = body
        return path.split("?")[0]

    def do_GET(self) -> None:
        path = self._record()
        if path == "/version":
            self._json(200, {"ApiVersion": "1.43", "Version": "24.0.0", "MinAPIVersion": "1.12"})
        elif path == f"/containers/{CID}/json":
            self._json(
                200,
                {
                    "Id": CID,
                    "Name": "/kaniko",
                    "State": {"Running": True},
                    "Config": {"Tty": False, **self.server.created},
                },
            )
        elif path == f"/containers/{CID}/logs":
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.docker.multiplexed-stream")
            self.end_headers()
            for line in self.server.lines:
                data = (line + "\n").encode()
                self.wfile.write(struct.pack(">BxxxL", 2, len(data)) + data)
                self.wfile.flush()
                time.sleep(0.01)
            if self.server.hang:
                self.server.stopped.wait(30)
            self.server.finished.set()
            self.close_connection = True
        else:
            self._json(404, {"message": f"no such endpoint {path}"})

    def do_POST(self) -> None:
        path = self._record()
        if path == "/containers/create":
            self._json(201, {"Id": CID, "Warnings": []})
        elif path == f"/containers/{CID}/start":
            self._empty()
        elif path == f"/containers/{CID}/wait":
            self.server.finished.wait(30)
            code = 143 if self.server.stopped.is_set() else self.server.exit_code
            self._json(200, {"StatusCode": code, "Error": None})
        elif path in (f"/containers/{CID}/stop", f"/containers/{CID}/kill"):
            self.server.stopped.set()
            self._empty()
        else:
            self._json(404, {"message": f"no such endpoint {path}"})

    def do_DELETE(self) -> None:
        self._record()
        self._empty()


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(os.environ):
        if key.startswith(("CI_REPORT_", "DOCKER_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CI_REPORT_HISTORY", str(tmp_path / "history.json"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "app.jar").write_bytes(b"x" * 1000)
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM scratch\nCOPY app.jar /app.jar\n")
    (tmp_path / "dc").mkdir()
    auth = base64.b64encode(b"ci:pw").decode()
    (tmp_path / "dc" / "config.json").write_text(
        json.dumps({"auths": {"127.0.0.1:5999": {"auth": auth}}})
    )
    return tmp_path


def serve(monkeypatch: pytest.MonkeyPatch, server: FakeDocker) -> None:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{server.server_address[1]}")


def push(ws: Path, capsys: pytest.CaptureFixture[str], timeout: str = "60") -> tuple[int, dict]:
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "image-push",
                "--mode",
                "docker",
                "--context",
                "ctx",
                "--destination",
                DEST,
                "--executor",
                "gcr.io/kaniko-project/executor:v1.23.2-debug",
                "--timeout",
                timeout,
                "--kill-grace",
                "1",
                "--report",
                str(ws / "r.json"),
            ]
        )
    capsys.readouterr()
    return int(exc.value.code or 0), json.loads((ws / "r.json").read_text())


def text(msg: str) -> str:
    return f'time="2026-11-23T18:14:26Z" level=info msg="{msg}"'


def test_docker_mode_success(
    ws: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = FakeDocker(
        [text("Retrieving image manifest scratch"), text(f"Pushing image to {DEST}"), text(PUSHED)],
        0,
    )
    serve(monkeypatch, server)
    rc, rep = push(ws, capsys)
    assert rc == 0 and rep["outcome"] == "pushed" and rep["digest"] == "sha256:" + "7" * 64
    body = server.created
    assert body["Image"] == "gcr.io/kaniko-project/executor:v1.23.2-debug"
    assert body["Cmd"][:3] == [
        "--context=/workspace",
        "--dockerfile=/workspace/Dockerfile",
        f"--destination={DEST}",
    ]
    assert "--log-format=text" in body["Cmd"] and "--push-retry=3" in body["Cmd"]
    binds = sorted(body["HostConfig"]["Binds"])
    assert binds == sorted([f"{ws / 'ctx'}:/workspace:rw", f"{ws / 'dc'}:/kaniko/.docker:ro"])
    assert "DOCKER_CONFIG=/kaniko/.docker" in body["Env"]
    calls = [(m, p.split("?")[0]) for m, p, _ in server.requests]
    for call in [
        ("POST", f"/containers/{CID}/start"),
        ("GET", f"/containers/{CID}/logs"),
        ("POST", f"/containers/{CID}/wait"),
        ("DELETE", f"/containers/{CID}"),
    ]:
        assert call in calls
    server.shutdown()


def test_docker_mode_failure_is_diagnosed(
    ws: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = FakeDocker(
        [
            "error checking push permissions -- make sure you entered the correct tag name, and "
            f"that you are authenticated correctly, and try again: checking push permission for "
            f'"{DEST}": POST https://127.0.0.1:5999/v2/team/app/blobs/uploads/: UNAUTHORIZED: '
            "authentication required"
        ],
        1,
    )
    serve(monkeypatch, server)
    rc, rep = push(ws, capsys)
    assert (rc, rep["diagnosis"]["code"]) == (1, "registry-auth")
    server.shutdown()


def test_docker_mode_timeout_stops_the_container(
    ws: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = FakeDocker([text(f"Pushing image to {DEST}")], 0, hang=True)
    serve(monkeypatch, server)
    rc, rep = push(ws, capsys, timeout="2")
    assert rc == 143 and rep["diagnosis"]["code"] == "push-timeout"
    stops = [p for m, p, _ in server.requests if p.startswith(f"/containers/{CID}/stop")]
    assert stops and "t=1" in stops[0]
    server.shutdown()
