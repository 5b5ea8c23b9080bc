"""Durable resend: one JSON file per undelivered callback, never a secret inside.

Entries are written atomically (temp file + rename). A sender *claims* an entry by renaming it to
``<id>.json.claim-<host>-<pid>-<nonce>``: rename is atomic, so of several concurrent ``callback``
and ``flush`` processes exactly one sends each entry. A claim whose process died is taken back
after ``STALE_CLAIM_S``. Entries older than the TTL move to ``dead/`` with a loud message.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from ..fileio import atomic_write
from ..jenkins_env import strip_credentials

ENTRY_SCHEMA = "ci-report/outbox/v1"
STALE_CLAIM_S = 15 * 60


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
    path: Optional[Path] = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": ENTRY_SCHEMA,
            "deliveryId": self.delivery_id,
            "kind": self.kind,
            # never a secret: user:password@ is dropped; flush takes it back from the
            # configured URL when that is the same endpoint (see service.flush_outbox)
            "url": strip_credentials(self.url),
            "createdAt": self.created_at,
            "createdAtIso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created_at)),
            "attempts": self.attempts,
            "lastError": self.last_error,
            "lastStatus": self.last_status,
            "rejected": self.rejected,
            "subject": self.subject,
            "body": self.body.decode("utf-8"),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Optional[Path] = None) -> OutboxEntry:
        return cls(
            delivery_id=str(data["deliveryId"]),
            body=str(data["body"]).encode("utf-8"),
            url=data.get("url"),
            created_at=float(data.get("createdAt") or 0.0),
            attempts=int(data.get("attempts") or 0),
            last_error=data.get("lastError"),
            last_status=data.get("lastStatus"),
            rejected=bool(data.get("rejected")),
            subject=data.get("subject"),
            kind=str(data.get("kind") or "callback"),
            path=path,
        )


class Outbox:
    """The outbox directory. All methods are safe under concurrent processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.dead_path = self.path / "dead"

    def save(self, entry: OutboxEntry) -> Path:
        target = self.path / f"{entry.delivery_id}.json"
        payload = json.dumps(entry.to_json(), ensure_ascii=False, sort_keys=True).encode()
        atomic_write(target, payload)
        entry.path = target
        return target

    def pending(self) -> list[Path]:
        """Unclaimed entries, oldest first (stale claims are taken back first)."""
        if not self.path.is_dir():
            return []
        self._reclaim_stale()
        files = [p for p in self.path.glob("msg_*.json") if p.is_file()]
        return sorted(files, key=_mtime)

    def __len__(self) -> int:
        return len(self.pending())

    def claim(self, path: Path) -> Optional[Path]:
        """Take ``path`` for this process; None if another process took it first."""
        claimed = path.with_name(
            f"{path.name}.claim-{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        )
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            return None
        return claimed

    def load(self, path: Path) -> OutboxEntry:
        with path.open("rb") as fh:
            return OutboxEntry.from_json(json.load(fh), path=path)

    def release(self, claimed: Path, entry: OutboxEntry) -> Path:
        """Give a claimed entry back (still undelivered), with its updated attempt record."""
        target = self.path / f"{entry.delivery_id}.json"
        if target.exists():
            # a newer copy of the same delivery arrived meanwhile: it wins, ours goes
            claimed.unlink(missing_ok=True)
            return target
        payload = json.dumps(entry.to_json(), ensure_ascii=False, sort_keys=True).encode()
        atomic_write(claimed, payload)
        os.replace(claimed, target)
        return target

    def done(self, claimed: Path) -> None:
        claimed.unlink(missing_ok=True)

    def bury(self, claimed: Path, entry: OutboxEntry) -> Path:
        """Move an expired entry to ``dead/`` (kept for a person to look at)."""
        self.dead_path.mkdir(parents=True, exist_ok=True)
        target = self.dead_path / f"{entry.delivery_id}.json"
        os.replace(claimed, target)
        return target

    def discard(self, delivery_id: str) -> bool:
        """Remove the pending (unclaimed) entry of ``delivery_id``: it was delivered."""
        try:
            (self.path / f"{delivery_id}.json").unlink()
        except FileNotFoundError:
            return False
        return True

    def iter_claimed(
        self, skip_ids: Optional[Iterable[str]] = None
    ) -> Iterator[tuple[Path, OutboxEntry]]:
        """Claim pending entries one at a time (oldest first); unreadable files are skipped
        and moved aside to ``dead/`` so they never block the queue. Entries of ``skip_ids``
        are left alone."""
        skip = {f"{i}.json" for i in skip_ids or ()}
        for path in self.pending():
            if path.name in skip:
                continue
            claimed = self.claim(path)
            if claimed is None:
                continue
            try:
                entry = self.load(claimed)
            except (OSError, ValueError, KeyError, TypeError):
                self.dead_path.mkdir(parents=True, exist_ok=True)
                os.replace(claimed, self.dead_path / (path.name + ".corrupt"))
                continue
            yield claimed, entry

    def _reclaim_stale(self) -> None:
        now = time.time()
        for claim in self.path.glob("msg_*.json.claim-*"):
            host_pid = claim.name.split(".claim-", 1)[1].rsplit("-", 1)[0]
            host, _, pid_text = host_pid.rpartition("-")
            alive = True
            if host == _host() and pid_text.isdigit():
                alive = _pid_alive(int(pid_text))
            if not alive or now - _mtime(claim) > STALE_CLAIM_S:
                original = claim.with_name(claim.name.split(".claim-", 1)[0])
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
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
