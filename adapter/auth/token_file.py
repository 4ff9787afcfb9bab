"""The refresh token of an authorization-code login, on disk, owner-only.

The file is JSON written atomically (temporary file, fsync, rename) with mode
0600, and refused when anyone but the owner can read it. Renewals hold an
exclusive ``flock`` on ``<file>.lock`` while they read, refresh and write, so
processes sharing the file never spend the same (single-use) refresh token twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

__all__ = ["StoredTokens", "TokenFile", "TokenFileError"]

_MODE = 0o600


class TokenFileError(Exception):
    """The token file is missing, unreadable, malformed or too widely readable."""


@dataclass(frozen=True, slots=True, repr=False)
class StoredTokens:
    """What a login leaves behind. ``repr`` masks the tokens."""

    refresh_token: str
    token_url: str
    client_id: str
    scope: str = ""
    access_token: str = ""
    #: Wall-clock (Unix) time the access token expires; 0 = unknown.
    access_token_expires_at: float = 0.0

    def __repr__(self) -> str:
        return f"StoredTokens(refresh_token=***, client_id={self.client_id!r}, token_url={self.token_url!r})"


class TokenFile:
    """Reads and writes :class:`StoredTokens` at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")

    def exists(self) -> bool:
        return self.path.exists()

    def stamp(self) -> tuple[int, int, int] | None:
        """Inode, size and modification time (None without a file): a login, or another
        process's refresh, changes it."""
        try:
            info = self.path.stat()
        except OSError:
            return None
        return info.st_ino, info.st_size, info.st_mtime_ns

    def read(self) -> StoredTokens:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise TokenFileError(f"no token file at {self.path}") from None
        except OSError as exc:
            raise TokenFileError(f"cannot open token file {self.path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise TokenFileError(
                    f"token file {self.path} is accessible to others (mode {stat.filemode(mode)}); "
                    f"chmod 600 it or log in again"
                )
            raw = handle.read()
        try:
            doc: Any = orjson.loads(raw)
            return StoredTokens(**{k: v for k, v in doc.items() if k in StoredTokens.__dataclass_fields__})
        except (orjson.JSONDecodeError, AttributeError, TypeError) as exc:
            raise TokenFileError(f"token file {self.path} is malformed ({type(exc).__name__})") from None

    def write(self, tokens: StoredTokens) -> None:
        """Replaces the file atomically; it is never visible half-written or with wider permissions."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, _MODE)
        try:
            os.fchmod(fd, _MODE)  # whatever the umask
            with os.fdopen(fd, "wb") as handle:
                handle.write(orjson.dumps(asdict(tokens), option=orjson.OPT_INDENT_2))
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @contextlib.asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        """Exclusive lock shared with other processes using the same file."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, _MODE)
        try:
            # flock blocks: wait for it in a thread so the event loop keeps running.
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r})"
