"""Durable resend: one JSON file per undelivered callback, never a secret inside.

Trust: the directory is ours (owner is this user, mode 0700, not group- or world-writable: a
directory that is is refused) and every entry is a regular file of ours, mode 0600, under
``MAX_ENTRY_BYTES``. Each entry is bound to the endpoint it was made for and to a fingerprint of
the credentials it was made with, and sealed with a key derived from them (see
:class:`~ci_report.callback.auth.EntryBinding`): a flush resends only entries of its own endpoint
and credentials, and leaves every other entry alone. An entry that cannot be read (truncated,
deeply nested, hostile, foreign-owned) is moved aside to ``dead/`` and reported; it never stops the
queue.

Entries are written atomically (temp file + rename, fsynced). A sender *claims* an entry by
renaming it to ``<id>.json.claim-<host>-<pid>-<nonce>`` and refreshing its mtime: rename is atomic,
so of several concurrent ``callback`` and ``flush`` processes exactly one sends each entry. A claim
of a live process on this host is never taken, whatever its age; it is taken back when its process
is dead, or (a claim made on another host) when it is older than ``STALE_CLAIM_S``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

from ..fileio import atomic_write
from ..jenkins_env import normalize_endpoint, strip_credentials

ENTRY_SCHEMA = "ci-report/outbox/v2"
READABLE_SCHEMAS = ("ci-report/outbox/v1", ENTRY_SCHEMA)
STALE_CLAIM_S = 15 * 60
MAX_ENTRY_BYTES = 256 * 1024 * 1024
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
# <id>.json.claim-<host>-<pid>-<nonce> (host without '-')
_CLAIM = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,199}\.json)\.claim-([^-/]*)-(\d+)-([0-9a-f]{8})$"
)


class UntrustedOutbox(OSError):
    """The outbox directory is not safe to use (another owner, group/world-writable...)."""


class BadEntry(ValueError):
    """An entry file that cannot be used; ``reason`` says why (never its content)."""


@dataclass
class OutboxEntry:
    delivery_id: str
    body: bytes
    url: Optional[str]
    created_at: float
    attempts: int = 0
    last_error: Optional[str] = None
    last_status: Optional[int] = None
    rejected: bool = False
    subject: Optional[str] = None
    kind: str = "callback"
    endpoint: Optional[str] = None
    fingerprint: Optional[str] = None
    seal: Optional[str] = None
    first_attempt_at: Optional[float] = None
    path: Optional[Path] = field(default=None, compare=False)

    def bind(self, binding: Any) -> OutboxEntry:
        """Bind to ``binding``'s endpoint and credentials (an :class:`EntryBinding`)."""
        self.endpoint = binding.endpoint
        self.fingerprint = binding.fingerprint
        self.seal = binding.seal(
            delivery_id=self.delivery_id,
            endpoint=self.endpoint,
            kind=self.kind,
            subject=self.subject,
            body=self.body,
        )
        return self

    def sealed_by(self, binding: Any) -> bool:
        """Made with ``binding``'s credentials, and unchanged since."""
        return self.fingerprint == binding.fingerprint and bool(
            binding.verify(
                self.seal,
                delivery_id=self.delivery_id,
                endpoint=self.endpoint,
                kind=self.kind,
                subject=self.subject,
                body=self.body,
            )
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": ENTRY_SCHEMA,
            "deliveryId": self.delivery_id,
            "kind": self.kind,
            # never a secret: no user:password@ (and a URL that does not parse is redacted)
            "url": strip_credentials(self.url),
            "endpoint": self.endpoint,
            "credentialFingerprint": self.fingerprint,
            "seal": self.seal,
            "createdAt": self.created_at,
            "createdAtIso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created_at)),
            "firstAttemptAt": self.first_attempt_at,
            "attempts": self.attempts,
            "lastError": self.last_error,
            "lastStatus": self.last_status,
            "rejected": self.rejected,
            "subject": self.subject,
            "body": self.body.decode("utf-8"),
        }

    @classmethod
    def from_json(cls, data: Any, path: Optional[Path] = None) -> OutboxEntry:
        """Validate and build; anything unexpected raises :class:`BadEntry`."""
        if not isinstance(data, dict):
            raise BadEntry("not a JSON object")
        if data.get("schema", READABLE_SCHEMAS[0]) not in READABLE_SCHEMAS:
            raise BadEntry("unknown schema")
        delivery_id = data.get("deliveryId")
        if not isinstance(delivery_id, str) or not _ID.match(delivery_id):
            raise BadEntry("no valid deliveryId")
        body = data.get("body")
        if not isinstance(body, str):
            raise BadEntry("no body")

        def text(name: str) -> Optional[str]:
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise BadEntry(f"{name} is not a string")
            return value

        def number(name: str, default: Optional[float]) -> Optional[float]:
            value = data.get(name)
            if value is None:
                return default
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise BadEntry(f"{name} is not a number")
            return float(value)

        status = data.get("lastStatus")
        if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
            raise BadEntry("lastStatus is not an integer")
        return cls(
            delivery_id=delivery_id,
            body=body.encode("utf-8"),
            url=text("url"),
            created_at=number("createdAt", 0.0) or 0.0,
            attempts=max(0, min(int(number("attempts", 0) or 0), 1_000_000)),
            last_error=text("lastError"),
            last_status=status,
            rejected=data.get("rejected") is True,
            subject=text("subject"),
            kind=text("kind") or "callback",
            # entries of ci-report/outbox/v1 had no endpoint: derived from their URL (they
            # have no fingerprint either, so only flush --adopt ever sends them)
            endpoint=(
                text("endpoint")
                if data.get("schema") == ENTRY_SCHEMA
                else normalize_endpoint(text("url"))
            ),
            fingerprint=text("credentialFingerprint"),
            seal=text("seal"),
            first_attempt_at=number("firstAttemptAt", None),
            path=path,
        )


def endpoint_of(url: Optional[str]) -> Optional[str]:
    return normalize_endpoint(url)


class Outbox:
    """The outbox directory. All methods are safe under concurrent processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.dead_path = self.path / "dead"

    # -- the directory ---------------------------------------------------------------------
    def ensure(self) -> Path:
        """Create the directory (0700) or check an existing one; raises :class:`OSError`
        (:class:`UntrustedOutbox` when it is not safe to use)."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.check()
        return self.path

    def check(self) -> None:
        """Refuse a directory that is not ours or that others can write into."""
        st = os.stat(self.path)
        if not stat.S_ISDIR(st.st_mode):
            raise UntrustedOutbox(f"{self.path} is not a directory")
        if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
            raise UntrustedOutbox(
                f"{self.path} belongs to uid {st.st_uid}, not to this user (uid "
                f"{os.geteuid()}): refused, its entries could have been written by anyone"
            )
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o022:
            raise UntrustedOutbox(
                f"{self.path} is writable by others (mode {mode:04o}): refused, anyone could "
                f"plant entries there (fix: chmod 700 {self.path} after checking its entries)"
            )
        if mode & 0o077:
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o700)
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise PermissionError(13, "not writable", str(self.path))

    # -- writing ---------------------------------------------------------------------------
    def _serialize(self, entry: OutboxEntry) -> bytes:
        return json.dumps(entry.to_json(), ensure_ascii=False, sort_keys=True).encode()

    def save(self, entry: OutboxEntry, *, claimed: bool = False) -> Path:
        """Write ``entry`` (0600). ``claimed``: write it as this process's claim, so that no
        other process sends it while this one does (taken back if this process dies)."""
        self.ensure()
        target = self.path / f"{entry.delivery_id}.json"
        if claimed:
            target = self._claim_name(target)
        atomic_write(target, self._serialize(entry), make_parents=False)
        if claimed:
            # a pending copy of the same delivery (an earlier run of this build) is superseded
            with contextlib.suppress(OSError):
                (self.path / f"{entry.delivery_id}.json").unlink()
        entry.path = target
        return target

    def release(self, claimed: Path, entry: OutboxEntry) -> Path:
        """Give a claimed entry back (still undelivered), with its updated attempt record."""
        target = self.path / f"{entry.delivery_id}.json"
        if target.exists():
            # a newer copy of the same delivery arrived meanwhile: it wins, ours goes
            claimed.unlink(missing_ok=True)
            return target
        atomic_write(claimed, self._serialize(entry), make_parents=False)
        os.replace(claimed, target)
        entry.path = target
        return target

    def done(self, claimed: Path) -> None:
        claimed.unlink(missing_ok=True)

    def bury(self, claimed: Path, entry: Optional[OutboxEntry] = None, suffix: str = "") -> Path:
        """Move an entry to ``dead/`` (kept for a person to look at, never sent again)."""
        self.dead_path.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{entry.delivery_id}.json" if entry else claimed.name.split(".claim-", 1)[0]
        target = self.dead_path / (name + suffix)
        os.replace(claimed, target)
        return target

    def discard(self, delivery_id: str) -> bool:
        """Remove the pending (unclaimed) entry of ``delivery_id``: it was delivered."""
        try:
            (self.path / f"{delivery_id}.json").unlink()
        except FileNotFoundError:
            return False
        return True

    # -- reading ---------------------------------------------------------------------------
    def pending(self) -> list[Path]:
        """Unclaimed entries, oldest first (stale claims are taken back first)."""
        if not self.path.is_dir():
            return []
        self._reclaim_stale()
        files: list[tuple[float, str]] = []
        with contextlib.suppress(OSError), os.scandir(self.path) as it:
            for item in it:
                if item.name.endswith(".json") and not item.name.startswith("."):
                    with contextlib.suppress(OSError):
                        if item.is_file(follow_symlinks=False):
                            # a regular file (not a link): its lstat is its stat
                            mtime = item.stat(follow_symlinks=False).st_mtime
                            files.append((mtime, item.path))
        files.sort(key=lambda f: f[0])  # stable: equal times keep the directory's order
        return [Path(name) for _, name in files]

    def __len__(self) -> int:
        return len(self.pending())

    def _claim_name(self, path: Path) -> Path:
        return path.with_name(f"{path.name}.claim-{_host()}-{os.getpid()}-{os.urandom(4).hex()}")

    def claim(self, path: Path) -> Optional[Path]:
        """Take ``path`` for this process; None if another process took it first."""
        claimed = self._claim_name(path)
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            return None
        # rename keeps the mtime: refresh it, the claim is as old as this process's hold on it
        with contextlib.suppress(OSError):
            os.utime(claimed)
        return claimed

    def load(self, path: Path) -> OutboxEntry:
        """Read one entry; anything wrong with it raises :class:`BadEntry`."""
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            raise BadEntry(f"cannot open it: {exc.strerror or exc}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise BadEntry("not a regular file")
            if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
                raise BadEntry(f"owned by uid {st.st_uid}, not by this user")
            if stat.S_IMODE(st.st_mode) & 0o022:
                raise BadEntry(f"writable by others (mode {stat.S_IMODE(st.st_mode):04o})")
            if st.st_size > MAX_ENTRY_BYTES:
                raise BadEntry(f"larger than {MAX_ENTRY_BYTES} bytes")
            with os.fdopen(fd, "rb", closefd=False) as fh:
                # sized by the fstat (a read of MAX_ENTRY_BYTES maps that much memory first);
                # one byte more shows a file that grew since, which is then read on, bounded
                raw = fh.read(st.st_size + 1)
                if len(raw) > st.st_size:
                    raw += fh.read(MAX_ENTRY_BYTES + 1 - len(raw))
        except OSError as exc:
            raise BadEntry(f"cannot read it: {exc.strerror or exc}") from None
        finally:
            os.close(fd)
        if len(raw) > MAX_ENTRY_BYTES:
            raise BadEntry(f"larger than {MAX_ENTRY_BYTES} bytes")
        try:
            data = json.loads(raw.decode("utf-8"))
        except RecursionError:
            raise BadEntry("nested too deeply") from None
        except (UnicodeDecodeError, ValueError):
            raise BadEntry("not valid JSON (truncated?)") from None
        entry = OutboxEntry.from_json(data, path=path)
        stem = path.name.split(".claim-", 1)[0]
        if stem != f"{entry.delivery_id}.json":
            raise BadEntry("its deliveryId does not match its file name")
        return entry

    def iter_claimed(
        self,
        skip_ids: Optional[Iterable[str]] = None,
        on_bad: Optional[Callable[[str, str, Path], None]] = None,
        pending: Optional[list[Path]] = None,
    ) -> Iterator[tuple[Path, OutboxEntry]]:
        """Claim pending entries one at a time (oldest first). An entry that cannot be used is
        moved aside to ``dead/`` and reported to ``on_bad(name, reason, dead_path)``; it never
        blocks the queue. Entries of ``skip_ids`` are left alone. ``pending``: the caller's
        :meth:`pending` list, when it has just made one (each entry is still claimed by rename:
        one another process took meanwhile is skipped)."""
        skip = {f"{i}.json" for i in skip_ids or ()}
        for path in self.pending() if pending is None else pending:
            if path.name in skip:
                continue
            claimed = self.claim(path)
            if claimed is None:
                continue
            try:
                entry = self.load(claimed)
            except BadEntry as exc:
                try:
                    dead = self.bury(claimed, suffix=".corrupt")
                except OSError:
                    dead = claimed
                if on_bad is not None:
                    on_bad(path.name, str(exc), dead)
                continue
            yield claimed, entry

    def _remove_dead_temp_files(self, now: float) -> None:
        """``kill -9`` during an atomic write leaves ``.<name>.<pid>.<nonce>.tmp``: remove
        those of dead processes (a minute old) and any older than ``STALE_CLAIM_S``."""
        with contextlib.suppress(OSError):
            temps = list(self.path.glob(".*.tmp"))
        for tmp in temps:
            fields = tmp.name.rsplit(".", 3)
            pid = int(fields[1]) if len(fields) == 4 and fields[1].isdigit() else 0
            age = now - _mtime(tmp)
            if age > STALE_CLAIM_S or (age > 60 and not _pid_alive(pid)):
                with contextlib.suppress(OSError):
                    tmp.unlink()

    def _reclaim_stale(self) -> None:
        now = time.time()
        self._remove_dead_temp_files(now)
        with contextlib.suppress(OSError):
            claims = list(self.path.glob("*.json.claim-*"))
        for claim in claims:
            parsed = _CLAIM.match(claim.name)
            if parsed is None:
                continue  # e.g. the temp file of a claim being rewritten: never an entry
            host, pid_text = parsed.group(2), parsed.group(3)
            if host == _host():
                # this host: a live process's claim is never taken, whatever its age
                stale = pid_text.isdigit() and not _pid_alive(int(pid_text))
            else:
                stale = now - _mtime(claim) > STALE_CLAIM_S
            if stale:
                original = claim.with_name(parsed.group(1))
                if not original.exists():
                    with contextlib.suppress(OSError):
                        os.rename(claim, original)


_host_cache: list[str] = []


def _host() -> str:
    """This machine's name as used in claim file names (no ``-``: it separates fields)."""
    if not _host_cache:
        import socket

        _host_cache.append(socket.gethostname().replace("-", "_"))
    return _host_cache[0]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
