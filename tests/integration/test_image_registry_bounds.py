"""A hostile registry on 127.0.0.1 cannot make the estimate unbounded (issue 9 finding 11): a
huge manifest, a 20,000-layer base, a manifest that drips or never comes."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from ci_report.image.estimate import estimate_push
from ci_report.image.registry import MAX_MANIFEST_BYTES, RegistryClient, RegistryError

pytestmark = pytest.mark.integration

OCI = "application/vnd.oci.image.manifest.v1+json"


def _layers(n: int) -> bytes:
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": 1000}
    body = {
        "schemaVersion": 2,
        "mediaType": OCI,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "sha256:" + "c" * 64,
            "size": 100,
        },
        "layers": [dict(layer, digest=f"sha256:{i:064x}") for i in range(n)],
    }
    return json.dumps(body).encode()


class Hostile(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.sent: dict[str, int] = {}
        self.heads = 0
        self.stop = threading.Event()


class Handler(BaseHTTPRequestHandler):
    server: Hostile
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _start(self, length: int | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", OCI)
        if length is not None:
            self.send_header("Content-Length", str(length))
        else:
            self.send_header("Connection", "close")
        self.end_headers()

    def do_HEAD(self) -> None:
        self.server.heads += 1
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        path = self.path
        try:
            if path == "/v2/":
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path.startswith("/v2/huge/"):  # 300 MB of JSON, no Content-Length
                self._start()
                chunk = b" " * 65536
                self.wfile.write(b'{"schemaVersion": 2, "x": "')
                for _ in range(300 * 16):
                    self.wfile.write(chunk)
                    self.server.sent["huge"] = self.server.sent.get("huge", 0) + len(chunk)
            elif path.startswith("/v2/many/"):
                body = _layers(20_000)
                self._start(len(body))
                self.wfile.write(body)
            elif path.startswith("/v2/drip/"):  # one byte every 0.2 s
                body = _layers(1)
                self._start(len(body))
                for i in range(len(body)):
                    if self.server.stop.wait(0.2):
                        return
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
            elif path.startswith("/v2/silent/"):  # headers never come
                self.server.stop.wait(120)
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    server = Hostile()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.stop.set()
    server.shutdown()
    server.server_close()


def _host(server: Hostile) -> str:
    return f"127.0.0.1:{server.server_address[1]}"


def test_a_huge_manifest_is_cut_at_the_cap(hostile: Hostile) -> None:
    client = RegistryClient(_host(hostile))
    with pytest.raises(RegistryError) as err:
        client.manifest("huge/app", "1")
    assert err.value.kind == "too-large"
    time.sleep(0)  # the server's count is only read after the client closed
    assert hostile.sent.get("huge", 0) < 40 * MAX_MANIFEST_BYTES  # not 300 MB


def test_a_20000_layer_base_costs_no_head_request(hostile: Hostile, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {_host(hostile)}/many/app:1\n")
    est = estimate_push(
        dockerfile=tmp_path / "Dockerfile",
        context=tmp_path,
        destinations=["127.0.0.1:1/team/app:1"],
        deadline=time.monotonic() + 30,
    )
    assert hostile.heads == 0
    assert any("20000 layers, more than 256" in n for n in est.notes), est.notes


@pytest.mark.parametrize("repo", ["drip", "silent"])
def test_a_slow_manifest_ends_at_the_deadline(hostile: Hostile, tmp_path: Path, repo: str) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {_host(hostile)}/{repo}/app:1\n")
    started = time.monotonic()
    est = estimate_push(
        dockerfile=tmp_path / "Dockerfile",
        context=tmp_path,
        destinations=[f"{_host(hostile)}/team/app:1"],
        deadline=started + 1.5,
    )
    # it returned (before: the drip took ~90 s and a silent server 20 s per request, per
    # request), with the base guessed and the reason noted
    assert not est.reachable
    assert any("deadline" in n or "ran out of the time" in n for n in est.notes), est.notes
    assert time.monotonic() - started < 30  # a hang guard, not a performance figure
