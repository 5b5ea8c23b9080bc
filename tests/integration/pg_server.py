"""A real PostgreSQL server for tests: ``initdb`` in a temporary directory, ``postgres`` on a
free port of 127.0.0.1 (and a unix socket in the same directory), trust auth, fsync off.

As root the server runs as ``nobody`` (PostgreSQL refuses to run as root): ``Popen(user=...)``
switches user in the child, so the signals the fixture sends reach ``postgres`` itself.
:func:`find_binaries` returns None when Debian's ``postgresql`` package is not installed, so
tests can skip with a reason.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, Optional


def find_binaries() -> Optional[Path]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found or not shutil.which("pg_isready", path=str(Path(found[-1]).parent)):
        return None
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="ci-report-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.user: Optional[str] = "nobody" if os.geteuid() == 0 else None
        self.log = self.root / "server.log"

    def _user_kw(self) -> dict[str, Any]:
        if self.user is None:
            return {}
        import pwd

        return {"user": self.user, "group": pwd.getpwnam(self.user).pw_gid}

    def start(self) -> PostgresServer:
        if self.user is not None:
            shutil.chown(self.root, self.user)
        os.chmod(self.root, 0o755)
        subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=120,
            cwd=str(self.root),
            **self._user_kw(),
        )
        log = open(self.log, "wb")  # noqa: SIM115 - the server writes it until stop()
        self.proc = subprocess.Popen(
            [
                str(self.bindir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.root),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "max_connections=60",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(self.root),
            **self._user_kw(),
        )
        log.close()
        deadline = time.monotonic() + 60
        while True:
            ready = subprocess.run(
                [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
                timeout=10,
            )
            if ready.returncode == 0:
                return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "postgres did not start:\n" + self.log.read_text(errors="replace")
                )
            time.sleep(0.1)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT: fast shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bindir = find_binaries()
    if bindir is None:
        raise RuntimeError("no PostgreSQL binaries")
    server = PostgresServer(bindir)
    try:
        yield server.start()
    finally:
        server.stop()
