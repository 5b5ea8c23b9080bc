"""Real registries, a token server, a throttling proxy and skopeo pushes, all on 127.0.0.1.

Needs Debian packages ``docker-registry`` (distribution 2.8), ``skopeo``, ``busybox`` and the
``openssl`` CLI. A missing binary FAILS the test naming its package, unless
``CI_REPORT_SKIP_REGISTRY=1`` (then the tests are skipped).

Reusable pieces (import them from other integration tests):

- :func:`start_registry` -> :class:`Registry` (``auth`` = None | "htpasswd" | "token");
- :class:`TokenServer` (RS256 JWT signed with ``openssl dgst``, x5c header, like Docker's);
- :class:`ThrottlingProxy` (TCP, client->server bytes limited to ``rate`` bytes/s);
- :func:`make_image` / :func:`make_index` build OCI layouts; :func:`skopeo_push` pushes them;
- :func:`throttled_push` pushes through a proxy, optionally under ``busybox timeout``, and
  returns ``(rc, elapsed, log)``.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional

import pytest

PACKAGES = {
    "docker-registry": "docker-registry",
    "skopeo": "skopeo",
    "busybox": "busybox",
    "openssl": "openssl",
}
USER, PASSWORD = "ciuser", "cipass"
# bcrypt of "cipass" (htpasswd -Bbn ciuser cipass): test data, so no htpasswd tool is needed.
HTPASSWD_LINE = "ciuser:$2y$05$2MWWam5xaf8wo2GQPa3fSewD4senEvEnRQGhnEWWqFS6hdx.n36La\n"
SERVICE = "ci-report-registry"
ISSUER = "ci-report-token-issuer"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def require(*names: str) -> dict[str, str]:
    """Paths of the binaries, or fail naming the Debian package (skip if opted out)."""
    found, missing = {}, []
    for name in names:
        path = shutil.which(name) or (
            f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None
        )
        if path:
            found[name] = path
        else:
            missing.append(name)
    if missing:
        pkgs = " ".join(sorted({PACKAGES.get(n, n) for n in missing}))
        message = f"missing {', '.join(missing)}: apt-get install -y {pkgs}"
        if os.environ.get("CI_REPORT_SKIP_REGISTRY") == "1":
            pytest.skip(message + " (CI_REPORT_SKIP_REGISTRY=1)")
        pytest.fail(message, pytrace=False)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float = 15.0, proc: Optional[subprocess.Popen] = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # 401 is an answer
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


# -- the registry ------------------------------------------------------------------------


@dataclass
class Registry:
    port: int
    root: Path
    proc: subprocess.Popen
    auth: Optional[str]
    log_path: Path
    token_server: Optional[TokenServer] = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def authfile(self, directory: Path, user: str = USER, password: str = PASSWORD) -> Path:
        """A Kaniko-style config.json for this registry (also usable as skopeo --authfile)."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "config.json"
        auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        path.write_text(json.dumps({"auths": {self.host: {"auth": auth}}}))
        return path

    def manifest(self, repo: str, ref: str, *, authfile: Optional[Path] = None) -> tuple[dict, str]:
        """The registry's own answer (read with skopeo, independent of our client)."""
        args = ["skopeo", "inspect", "--raw", "--tls-verify=false"]
        if authfile:
            args += ["--authfile", str(authfile)]
        out = subprocess.run(
            [*args, f"docker://{self.host}/{repo}:{ref}" if ":" not in ref
             else f"docker://{self.host}/{repo}@{ref}"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
        data = json.loads(out)
        return data, data.get("mediaType", "")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.token_server is not None:
            self.token_server.stop()


def start_registry(tmp: Path, auth: Optional[str] = None) -> Registry:
    """``docker-registry serve`` on a free port; ``auth`` None, "htpasswd" or "token"."""
    binaries = require("docker-registry", *(["openssl"] if auth == "token" else []))
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    root = tmp / "storage"
    root.mkdir(exist_ok=True)
    config = [
        "version: 0.1",
        "log: {level: info, formatter: text}",
        "storage:",
        f"  filesystem: {{rootdirectory: {root}}}",
        "  delete: {enabled: true}",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        "  secret: ci-report-test-secret",
    ]
    token_server = None
    if auth == "htpasswd":
        htpasswd = tmp / "htpasswd"
        htpasswd.write_text(HTPASSWD_LINE)
        config.append(f"auth: {{htpasswd: {{realm: ci-report-test, path: {htpasswd}}}}}")
    elif auth == "token":
        token_server = TokenServer(tmp / "token", {USER: PASSWORD})
        config += [
            "auth:",
            "  token:",
            f'    realm: "{token_server.realm}"',
            f"    service: {SERVICE}",
            f"    issuer: {ISSUER}",
            f"    rootcertbundle: {token_server.cert}",
        ]
    elif auth is not None:
        raise ValueError(auth)
    (tmp / "config.yml").write_text("\n".join(config) + "\n")
    log_path = tmp / "registry.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [binaries["docker-registry"], "serve", str(tmp / "config.yml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
    registry = Registry(port, root, proc, auth, log_path, token_server)
    try:
        _wait_http(f"{registry.url}/v2/", proc=proc)
    except Exception:
        registry.stop()
        raise RuntimeError("docker-registry did not start:\n" + registry.log()[-2000:]) from None
    return registry


# -- token server ------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Docker token auth (distribution docs/spec/auth/token.md) in 80 lines: RS256 JWTs with an
    ``x5c`` header, signed by the ``openssl`` CLI. Anonymous callers get ``pull`` only."""

    def __init__(self, directory: Path, users: dict[str, str]) -> None:
        openssl = require("openssl")["openssl"]
        directory.mkdir(parents=True, exist_ok=True)
        self.key, self.cert = directory / "token.key", directory / "token.crt"
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=ci-report-token", "-keyout", str(self.key), "-out", str(self.cert)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        der = subprocess.run(
            [openssl, "x509", "-in", str(self.cert), "-outform", "DER"],
            check=True, capture_output=True, timeout=30,
        ).stdout  # fmt: skip
        self.x5c = base64.b64encode(der).decode()
        self.openssl = openssl
        self.users = users
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                server._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        sig = subprocess.run(
            [self.openssl, "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(), check=True, capture_output=True, timeout=30,
        ).stdout  # fmt: skip
        return f"{signing_input}.{_b64url(sig)}"

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(req.path).query)
        user = None
        header = req.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                user, password = "?", ""
            if self.users.get(user) != password:
                self.requests.append({"user": user, "ok": False})
                return self._reply(req, 401, {"details": "invalid username/password"})
        access = []
        for scope in query.get("scope", []):
            parts = scope.split(":")
            if len(parts) == 3 and parts[0] == "repository":
                wanted = parts[2].split(",")
                allowed = [a for a in wanted if user or a == "pull"]
                access.append({"type": "repository", "name": parts[1], "actions": allowed})
        self.requests.append({"user": user, "scope": query.get("scope", []), "ok": True})
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": user or "",
            "aud": query.get("service", [SERVICE])[0],
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        token = self.sign(claims)
        self._reply(req, 200, {"token": token, "access_token": token, "expires_in": 300})

    @staticmethod
    def _reply(req: BaseHTTPRequestHandler, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- throttling proxy --------------------------------------------------------------------


class ThrottlingProxy:
    """TCP proxy on 127.0.0.1: client->server bytes limited to ``rate`` bytes/second (the
    upload direction, like a slow registry uplink); server->client is not limited."""

    CHUNK = 16 * 1024

    def __init__(self, target_port: int, rate: float) -> None:
        self.target_port = target_port
        self.rate = float(rate)
        self.bytes_up = 0
        self._stop = threading.Event()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, throttle: bool) -> None:
        start = time.monotonic()
        sent = 0
        try:
            while not self._stop.is_set():
                data = src.recv(self.CHUNK)
                if not data:
                    break
                dst.sendall(data)
                if throttle:
                    sent += len(data)
                    self.bytes_up += len(data)
                    ahead = sent / self.rate - (time.monotonic() - start)
                    if ahead > 0:
                        time.sleep(ahead)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()
        with self._lock:
            for s in self._conns:
                with contextlib.suppress(OSError):
                    s.close()
        self._thread.join(2)


# -- OCI layouts -------------------------------------------------------------------------


@dataclass
class Blob:
    media_type: str
    digest: str
    size: int

    def descriptor(self, **extra) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass
class Layout:
    path: Path
    manifests: dict[str, dict] = field(default_factory=dict)  # tag -> top manifest/index JSON
    digests: dict[str, str] = field(default_factory=dict)  # tag -> top digest
    layers: dict[str, list[Blob]] = field(default_factory=dict)  # tag -> amd64 layers


def _put_blob(layout: Path, data: bytes, media_type: str) -> Blob:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (blobs / digest.split(":", 1)[1]).write_bytes(data)
    return Blob(media_type, digest, len(data))


def _layer(files: dict[str, bytes]) -> tuple[bytes, bytes]:
    """(gzip layer, uncompressed tar) from {path: content}; deterministic."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(content), 0, 0o644
            tar.addfile(info, io.BytesIO(content))
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0), raw


def noise(n: int, seed: str) -> bytes:
    """Incompressible bytes (so layer sizes are what we ask for)."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


def _image(layout: Path, layers: list[dict[str, bytes]], arch: str) -> tuple[Blob, list[Blob]]:
    blobs, diff_ids = [], []
    for files in layers:
        gz, raw = _layer(files)
        blobs.append(_put_blob(layout, gz, OCI_LAYER))
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    config = {
        "architecture": arch,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    }
    cfg = _put_blob(layout, json.dumps(config, sort_keys=True).encode(), OCI_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": cfg.descriptor(),
        "layers": [b.descriptor() for b in blobs],
    }
    return _put_blob(layout, json.dumps(manifest).encode(), OCI_MANIFEST), blobs


def _write_index(layout: Path, entries: list[dict]) -> None:
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (layout / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    )


def make_image(path: Path, layers: list[dict[str, bytes]], tag: str = "v1") -> Layout:
    """Single-platform (linux/amd64) OCI layout with one gzip layer per dict of files."""
    manifest, blobs = _image(path, layers, "amd64")
    ref = {"org.opencontainers.image.ref.name": tag}
    _write_index(path, [manifest.descriptor(annotations=ref)])
    layout = Layout(path)
    layout.digests[tag], layout.layers[tag] = manifest.digest, blobs
    return layout


def make_index(path: Path, layers: list[dict[str, bytes]], tag: str = "v1") -> Layout:
    """Multi-platform OCI index: linux/arm64 first, linux/amd64, then an attestation manifest
    (platform unknown/unknown, in-toto layer, like BuildKit adds to official images)."""
    arm, _ = _image(path, [{**f, "arch": b"arm64"} for f in layers], "arm64")
    amd, amd_layers = _image(path, layers, "amd64")
    statement = json.dumps({"_type": "https://in-toto.io/Statement/v0.1", "subject": []}).encode()
    att_layer = _put_blob(path, statement, "application/vnd.in-toto+json")
    att_cfg = _put_blob(path, b'{"architecture":"unknown","os":"unknown","rootfs":'
                              b'{"type":"layers","diff_ids":[]}}', OCI_CONFIG)  # fmt: skip
    att_manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": att_cfg.descriptor(),
        "layers": [att_layer.descriptor(annotations={"in-toto.io/predicate-type": "x"})],
    }
    att = _put_blob(path, json.dumps(att_manifest).encode(), OCI_MANIFEST)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            arm.descriptor(platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
            amd.descriptor(platform={"os": "linux", "architecture": "amd64"}),
            att.descriptor(
                platform={"os": "unknown", "architecture": "unknown"},
                annotations={
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": amd.digest,
                },
            ),
        ],
    }
    top = _put_blob(path, json.dumps(index).encode(), OCI_INDEX)
    _write_index(path, [top.descriptor(annotations={"org.opencontainers.image.ref.name": tag})])
    layout = Layout(path)
    layout.manifests[tag], layout.digests[tag], layout.layers[tag] = index, top.digest, amd_layers
    return layout


# -- pushing -----------------------------------------------------------------------------


def skopeo_cmd(
    layout: Path,
    tag: str,
    dest: str,
    *,
    authfile: Optional[Path] = None,
    all_platforms: bool = False,
    retry: bool = False,
    extra: tuple[str, ...] = (),
) -> list[str]:
    cmd = [require("skopeo")["skopeo"], "--insecure-policy", "copy", "--dest-tls-verify=false"]
    if all_platforms:
        cmd.append("--all")
    if authfile:
        cmd += ["--dest-authfile", str(authfile)]
    if not retry:
        cmd += ["--retry-times", "0"]
    return [*cmd, *extra, f"oci:{layout}:{tag}", f"docker://{dest}"]


def skopeo_push(
    layout: Path,
    tag: str,
    dest: str,
    *,
    authfile: Optional[Path] = None,
    all_platforms: bool = False,
    extra: tuple[str, ...] = (),
    check: bool = True,
) -> subprocess.CompletedProcess:
    """``skopeo copy oci:<layout>:<tag> docker://<dest>``; ``extra`` e.g. ("--format", "v2s2")
    for a Docker schema 2 manifest. With ``check`` a failure fails the test with skopeo's log."""
    cmd = skopeo_cmd(layout, tag, dest, authfile=authfile, all_platforms=all_platforms, extra=extra)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        pytest.fail(f"skopeo push to {dest} failed ({proc.returncode}):\n{proc.stderr[-1500:]}")
    return proc


def throttled_push(
    layout: Path,
    tag: str,
    registry_port: int,
    repo: str,
    *,
    rate: float = 1_000_000,
    timeout: Optional[float] = None,
    signal: str = "TERM",
    authfile: Optional[Path] = None,
) -> tuple[int, float, str]:
    """Push ``layout:tag`` to ``127.0.0.1:<proxy>/<repo>:<tag>`` through a proxy limited to
    ``rate`` bytes/s. Returns ``(rc, seconds, log)`` with stdout and stderr merged.

    With ``timeout`` the push runs as the Kaniko split-mode script runs it: inside ``busybox
    sh`` under ``busybox timeout -s <signal> <timeout>``, so a kill reads as the shell reports
    it: **143** for TERM, 137 for KILL. (busybox ``timeout`` execs the command in its own PID
    and a forked child kills it; run directly from Python the return code is -15, not 143.)"""
    proxy = ThrottlingProxy(registry_port, rate)
    try:
        cmd = skopeo_cmd(layout, tag, f"{proxy.host}/{repo}:{tag}", authfile=authfile)
        if timeout is not None:
            busybox = require("busybox")["busybox"]
            timed = [busybox, "timeout", "-s", signal, str(int(timeout)), *cmd]
            cmd = [busybox, "sh", "-c", '"$@"; exit $?', "sh", *timed]
        start = time.monotonic()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        elapsed = time.monotonic() - start
        return proc.returncode, elapsed, proc.stdout.decode(errors="replace")
    finally:
        proxy.stop()


# -- pytest fixtures (import them into a test module to use) -----------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    reg = start_registry(tmp_path_factory.mktemp("registry-open"))
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def htpasswd_registry(tmp_path_factory):
    reg = start_registry(tmp_path_factory.mktemp("registry-htpasswd"), auth="htpasswd")
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    reg = start_registry(tmp_path_factory.mktemp("registry-token"), auth="token")
    yield reg
    reg.stop()
