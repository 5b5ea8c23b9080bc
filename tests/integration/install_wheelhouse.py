"""The wheels ``ciReport.install()`` installs, and a PEP 503 index over them on 127.0.0.1.

``build_wheelhouse`` fills a folder with exactly the files the shipped, hash-pinned requirements
name for this Python (``pip download --require-hashes``, from pip's configured index: the same
step as installing the test venv) plus the ci-report wheel built from this checkout. ``SimpleIndex``
serves such a folder as a "simple" index (optionally behind HTTP Basic auth) and records every
request, so a test can prove which index pip used and what it sent.
"""

from __future__ import annotations

import base64
import http.server
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[2]
RESOURCES = REPO / "shared-library" / "resources" / "io" / "cireport" / "install"
INSTALLER = RESOURCES / "install.py"
VERSION = "0.1.0"
REQUIREMENTS = RESOURCES / f"requirements-{VERSION}.txt"


def build_wheelhouse(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    steps = [
        [
            *pip,
            "download",
            "--require-hashes",
            "--no-deps",
            "-r",
            str(REQUIREMENTS),
            "-d",
            str(out),
        ],
        [*pip, "wheel", "--no-deps", "-w", str(out), str(REPO)],
    ]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[5:7])} failed: {proc.stderr[-800:]}")
    return out


def project_of(filename: str) -> str:
    """The normalized project name of a wheel or sdist file name (PEP 503)."""
    name = filename.split("-", 1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


class SimpleIndex:
    """A threaded PEP 503 index over a folder; ``login`` = (user, password) demands Basic auth."""

    def __init__(self, folder: Path, login: Optional[tuple[str, str]] = None):
        self.folder = folder
        self.requests: list[dict[str, Any]] = []
        expected = None
        if login is not None:
            token = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
            expected = f"Basic {token}"
        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:
                auth = self.headers.get("Authorization")
                index.requests.append({"path": self.path, "authorization": auth})
                if expected is not None and auth != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="pypi"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                parts = [p for p in self.path.split("?")[0].split("/") if p]
                if len(parts) == 2 and parts[0] == "simple":
                    files = sorted(
                        f.name for f in index.folder.iterdir() if project_of(f.name) == parts[1]
                    )
                    if not files:
                        self._send(404, b"not found", "text/plain")
                        return
                    links = "".join(f'<a href="/files/{n}">{n}</a>\n' for n in files)
                    self._send(200, f"<html><body>\n{links}</body></html>".encode(), "text/html")
                elif (
                    len(parts) == 2 and parts[0] == "files" and (index.folder / parts[1]).is_file()
                ):
                    self._send(
                        200, (index.folder / parts[1]).read_bytes(), "application/octet-stream"
                    )
                else:
                    self._send(404, b"not found", "text/plain")

            def _send(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SimpleIndex:
        self.thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
