"""Crash-safe file writes (a reader sees the old file or the new one, never half of either)
and the exclusive lock that keeps two processes out of one data directory."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically and durably, created with ``mode``.

    The bytes go to a temporary file in the same directory (opened with ``mode`` from the
    start, so a secret is never readable by others even briefly), which is fsynced and then
    renamed over ``path``; the directory is fsynced so the rename survives a power cut.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists; refusing to overwrite it")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed or the file pre-existed
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        if not overwrite:
            os.link(tmp, path)  # fails atomically if path appeared meanwhile
            tmp.unlink()
        else:
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


class DirectoryInUse(OSError):
    """Another process holds the directory's lock."""


def lock_directory(directory: Path, name: str = "LOCK") -> int:
    """Create ``directory`` (mode 0700) if needed and take an exclusive lock on its file
    ``name``; returns the open descriptor (closing it releases the lock, as does the death of
    the process, so a crash never leaves a stale lock).

    Raises:
        DirectoryInUse: another process holds the lock.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory / name, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise DirectoryInUse(
            f"{directory} is in use by another process (lock {directory / name})"
        ) from None
    return fd
