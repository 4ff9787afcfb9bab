"""The spool's files on disk: who may read them, and the one process that may use them."""

from __future__ import annotations

import fcntl
import logging
import os
import stat
from pathlib import Path

from .spool_errors import SpoolLocked

__all__ = ["acquire_lock", "restrict_to_owner"]

logger = logging.getLogger(__name__)


def restrict_to_owner(db_path: Path) -> None:
    """The spool holds vendor payloads: its directory 0700, its files 0600. SQLite
    creates the WAL and shared-memory files with the database file's mode, so the
    database is created 0600 before SQLite opens it; files left by an older version
    are tightened."""
    directory = db_path.parent
    info = directory.stat()
    if info.st_mode & 0o077:
        if info.st_uid == os.getuid() and not info.st_mode & stat.S_ISVTX:
            directory.chmod(0o700)
        else:  # a shared directory such as /tmp: not ours to tighten
            logger.warning(
                "spool directory %s is readable by others; give the spool its own directory", directory
            )
    os.close(os.open(db_path, os.O_RDWR | os.O_CREAT, 0o600))
    for suffix in ("", "-wal", "-shm"):
        path = db_path.with_name(db_path.name + suffix)
        if path.exists() and path.stat().st_mode & 0o077:
            path.chmod(0o600)


def acquire_lock(lock_path: Path) -> int:
    # flock, not the SQLite file lock: WAL lets two processes write, and two drainers
    # on one spool would deliver every record twice. The kernel drops it on kill -9.
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SpoolLocked(f"{lock_path} is held by another process") from None
    return fd
