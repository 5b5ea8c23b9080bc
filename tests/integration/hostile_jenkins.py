"""A hostile Jenkins on 127.0.0.1 for ``sync``: it serves one finished build whose archived
``ci-report/callback.json`` (or whose JSON answers) are chosen by the test, and can send them
huge (with or without a Content-Length) or slowly (a byte at a time, forever)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

ARTIFACT = "/artifact/ci-report/callback.json"


class HostileJenkins:
    """``artifact``: bytes of the archived file (None -> 404). ``mode`` for the artifact and for
    ``api/json`` answers: ``normal``, ``huge`` (``huge_bytes`` of JSON-looking filler, no
    Content-Length), ``huge-declared`` (Content-Length announced, nothing sent), ``slow``
    (a byte of the body every ``drip_s``), ``slow-head`` (a byte of the status line and
    headers every ``drip_s``)."""

    def __init__(self) -> None:
        self.artifact: Optional[bytes] = None
        self.artifact_mode = "normal"
        self.json_mode = "normal"
        self.huge_bytes = 300 * 1024 * 1024
        self.drip_s = 0.05
        self.requests: list[str] = []
        self.bytes_sent = 0
        self._stop = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.requests.append(self.path)
                path = self.path.split("?", 1)[0]
                try:
                    if path.endswith(ARTIFACT):
                        if owner.artifact is None:
                            self._send(404, b"not found", "text/plain")
                        else:
                            self._hostile(owner.artifact_mode, owner.artifact)
                    elif path.endswith("/testReport/api/json"):
                        self._send(404, b"no report", "text/plain")
                    elif path.endswith("/api/json"):
                        build = {
                            "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
                            "number": 7,
                            "url": f"http://127.0.0.1:{owner.port}/job/app/7/",
                            "building": False,
                            "result": "SUCCESS",
                            "duration": 1000,
                        }
                        self._hostile(owner.json_mode, json.dumps(build).encode())
                    else:
                        self._send(404, b"not found", "text/plain")
                except OSError:
                    pass  # the client hung up: what a hostile server expects

            def _send(self, status: int, data: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _hostile(self, mode: str, data: bytes) -> None:
                if mode == "normal":
                    self._send(200, data)
                    return
                if mode == "slow-head":  # the status line and headers, a byte at a time
                    self.close_connection = True
                    head = b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 100_000
                    for byte in head:
                        if owner._stop.wait(owner.drip_s):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    return
                self.close_connection = True
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if mode == "huge-declared":
                    self.send_header("Content-Length", str(owner.huge_bytes))
                    self.end_headers()
                    return
                self.send_header("Connection", "close")  # body ends when the connection does
                self.end_headers()
                if mode == "huge":
                    chunk = b'{"x": "' + b"a" * (1024 * 1024 - 10) + b'"}\n'
                    sent = 0
                    while sent < owner.huge_bytes and not owner._stop.is_set():
                        self.wfile.write(chunk)
                        sent += len(chunk)
                        owner.bytes_sent += len(chunk)
                elif mode == "slow":
                    for byte in (data * 1000)[:100_000]:
                        if owner._stop.wait(owner.drip_s):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> HostileJenkins:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
