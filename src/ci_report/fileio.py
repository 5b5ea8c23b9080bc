"""The one atomic file writer, and the one safe way to read a file a workspace hands us.

``atomic_write`` / ``atomic_writer``: readers see the old file or the new one, never half of it; the
data is fsynced before the rename and the directory after it (so a power cut or ``kill -9`` leaves
one of the two), and the temporary file is removed on any failure, signals included.

``read_regular``: only regular files are opened (a FIFO named like a report would block forever, a
device would never end), without following a FIFO open, and with a size cap, so that workspace
content can neither hang nor balloon a build.
"""

from __future__ import annotations

import contextlib
import os
import stat
import uuid
from pathlib import Path
from typing import IO, Iterator, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]


class NotRegularFile(OSError):
    """The path exists but is not a regular file (FIFO, socket, device, directory)."""


class FileTooLarge(OSError):
    """The file is larger than the caller's cap."""


def fsync_dir(directory: Path) -> None:
    """The directory fsynced, so a rename in it is durable."""
    # best effort: some filesystems (and Windows) cannot open a directory
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_writer(
    path: PathLike, mode: int = 0o600, *, make_parents: bool = True, dir_mode: int = 0o755
) -> Iterator[IO[bytes]]:
    """Yield a binary file; on a clean exit it replaces ``path`` atomically (fsynced)."""
    target = Path(path)
    if make_parents:
        target.parent.mkdir(parents=True, exist_ok=True, mode=dir_mode)
    tmp = temp_path_for(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            replace_durably(fh.fileno(), tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def temp_path_for(target: Path) -> Path:
    """Where an atomic write of ``target`` is prepared: a hidden, unique file beside it (a
    later run removes one that a kill -9 left behind)."""
    return target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def replace_durably(fd: int, tmp: PathLike, target: Path) -> None:
    """The end of every atomic write: ``fd`` (the written ``tmp``) fsynced, ``tmp`` renamed
    over ``target``, the directory fsynced."""
    os.fsync(fd)
    os.replace(tmp, target)
    fsync_dir(target.parent)


def atomic_write(
    path: PathLike, data: Union[bytes, str], mode: int = 0o600, *, make_parents: bool = True
) -> None:
    """Write ``data`` (str is UTF-8 encoded) to ``path`` atomically; see :func:`atomic_writer`."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_writer(path, mode, make_parents=make_parents) as fh:
        fh.write(raw)


def open_regular(path: PathLike) -> IO[bytes]:
    """Open ``path`` for reading only if it is a regular file.

    ``O_NONBLOCK`` makes opening a FIFO return at once instead of waiting for a writer; the
    ``fstat`` of the opened descriptor (not of the name, which could be swapped) then refuses
    anything but a regular file. Symlinks are followed (reports are often linked); a loop raises
    ``OSError`` (ELOOP) like any unreadable file."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(f"not a regular file: {path}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: PathLike, max_bytes: Optional[int] = None) -> bytes:
    """The whole content of a regular file, refusing one larger than ``max_bytes``."""
    with open_regular(path) as fh:
        if max_bytes is None:
            return fh.read()
        data = fh.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise FileTooLarge(f"{path} is larger than {max_bytes} bytes")
        return data
