"""A secret given inline or as a file that may be replaced while the adapter runs.

Mounted secrets (Kubernetes, Vault agent, systemd credentials) are rotated by
replacing the file; :class:`SecretSource` notices the change (inode, size or
mtime) when it next looks, at most every ``reload_interval`` seconds or at once
when asked (after a 401), so a rotation needs no restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from adapter.telemetry.repeated_lines import RepeatedLines

from .errors import CredentialError

__all__ = ["SecretSource"]

logger = logging.getLogger(__name__)

#: A file that stays unreadable is checked every ``reload_interval`` (5 s by default).
_unreadable = RepeatedLines(logger, interval=60.0)


class SecretSource:
    """The current value of one secret. ``repr`` never shows it.

    Example::

        key = SecretSource.from_file(Path("/run/secrets/openframe-key"))
        header = f"Bearer {key.get()}"
    """

    def __init__(
        self,
        *,
        value: SecretStr | None = None,
        path: Path | None = None,
        reload_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (value is None) == (path is None):
            raise ValueError("a secret comes from a value or a file, exactly one")
        self._path = path
        self._value = value.get_secret_value() if value is not None else ""
        self._reload_interval = reload_interval
        self._clock = clock
        self._stamp: tuple[int, int, int] | None = None
        self._checked_at = float("-inf")
        #: Grows each time the secret's value changes (1 = first value read).
        self.version = 0 if path is not None else 1

    @classmethod
    def inline(cls, value: SecretStr) -> SecretSource:
        return cls(value=value)

    @classmethod
    def from_file(cls, path: Path, *, reload_interval: float = 5.0) -> SecretSource:
        return cls(path=path, reload_interval=reload_interval)

    @property
    def path(self) -> Path | None:
        return self._path

    def get(self, *, recheck: bool = False) -> str:
        """The secret now; a file is re-read when it changed (checked at most every
        ``reload_interval``, or now with ``recheck``). Raises CredentialError
        when the file cannot be read, or is empty, the first time."""
        if self._path is None:
            return self._value
        now = self._clock()
        if self.version == 0 or recheck or now - self._checked_at >= self._reload_interval:
            self._checked_at = now
            self._reload(first=self.version == 0)
        return self._value

    def _reload(self, *, first: bool) -> None:
        assert self._path is not None
        try:
            info = self._path.stat()
            stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
            if stamp == self._stamp:  # still the last good file
                _unreadable.forget(self._path)
                return
            value = self._path.read_text(encoding="utf-8").strip()
            if not value:
                raise ValueError(f"secret file {self._path} is empty")
        except (OSError, ValueError) as exc:
            if first:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise CredentialError(f"cannot read secret file {self._path}: {reason}") from None
            # Mid-rotation (file briefly absent or empty): keep the last good value. Checked
            # every reload_interval while it lasts: one line, then one a minute with a count.
            _unreadable.log(
                logging.WARNING,
                self._path,
                "cannot re-read secret file %s; keeping the previous value",
                self._path,
            )
            return
        _unreadable.forget(self._path)  # readable again: the next absence is told at once
        self._stamp = stamp
        if value != self._value:
            self._value = value
            self.version += 1
            if not first:
                logger.info("secret file %s changed; using the new value", self._path)

    def __repr__(self) -> str:
        return f"SecretSource(file={str(self._path)!r})" if self._path else "SecretSource(inline)"


def source_of(value: SecretStr | None, path: Path | None, *, reload_interval: float) -> SecretSource | None:
    """The source configured by an inline/``*_file`` pair (None when neither is set)."""
    if path is not None:
        return SecretSource.from_file(path, reload_interval=reload_interval)
    if value is not None:
        return SecretSource.inline(value)
    return None
