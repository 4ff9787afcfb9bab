"""A file-backed value that follows the file: the policy, certificates, a JWKS.

:meth:`ReloadingFile.current` costs a clock read; at most every ``interval``
seconds it also compares the files' (mtime, size, inode) with what was loaded and
reloads when they changed. A reload that fails keeps the last good value and logs
an error once per bad version of the file, so a broken edit never opens or closes
the door by accident. Rotation writes usually replace the file (rename), which
changes the inode even when mtime and size do not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

__all__ = ["ReloadingFile"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

_Stamp = tuple[tuple[int, int, int], ...]


def _stamp(paths: Sequence[Path]) -> _Stamp:
    stamps = []
    for path in paths:
        try:
            info = path.stat()
            stamps.append((info.st_mtime_ns, info.st_size, info.st_ino))
        except OSError:
            stamps.append((-1, -1, -1))
    return tuple(stamps)


class ReloadingFile(Generic[T]):
    """``load(paths)`` builds the value; raises on a bad file (at start: to the caller)."""

    def __init__(
        self,
        what: str,
        paths: Sequence[Path],
        load: Callable[[], T],
        *,
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_reload: Callable[[T], None] | None = None,
    ) -> None:
        self.what = what
        self._paths = list(paths)
        self._load = load
        self._interval = interval
        self._clock = clock
        self._on_reload = on_reload
        self._stamp = _stamp(self._paths)
        self._value = load()  # a bad file at start is a start-up error
        self._next_check = clock() + interval
        self._bad_stamp: _Stamp | None = None
        self.reloads = 0
        self.failures = 0

    def current(self) -> T:
        now = self._clock()
        if now >= self._next_check:
            self._next_check = now + self._interval
            self.check()
        return self._value

    def check(self) -> bool:
        """Reloads now if the files changed; returns whether the value changed."""
        stamp = _stamp(self._paths)
        if stamp == self._stamp or stamp == self._bad_stamp:
            return False
        try:
            value = self._load()
        except Exception as exc:  # any failure keeps the last good value, and says so
            self._bad_stamp = stamp
            self.failures += 1
            logger.error("%s: keeping the last good version; the new one is unusable: %s", self.what, exc)
            return False
        self._value, self._stamp, self._bad_stamp = value, stamp, None
        self.reloads += 1
        logger.info("%s reloaded from %s", self.what, ", ".join(str(p) for p in self._paths))
        if self._on_reload is not None:
            self._on_reload(value)
        return True
