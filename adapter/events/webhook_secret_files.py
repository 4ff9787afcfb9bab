"""Webhook secrets or tokens from a file that may be replaced while the adapter runs.

Mounted secrets rotate by replacing the file; a vendor's webhook secret rotates with
an overlap (the new one signs, the old one still verifies deliveries in flight), so
the file holds one value per line, newest first (blank lines and ``#`` comments
ignored). It is re-read when it changes (checked at most every
:data:`RELOAD_INTERVAL` seconds, through :class:`~adapter.upstream.secret_source.SecretSource`);
a version that holds no value, or a file briefly missing, keeps the last good values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from adapter.upstream.secret_source import SecretSource

__all__ = ["RELOAD_INTERVAL", "ValuesFile"]

logger = logging.getLogger(__name__)

#: Seconds between two looks at the file (the upstreams' credential files default to 5 too).
RELOAD_INTERVAL = 5.0


class ValuesFile:
    """``values()``: the file's values, each passed through ``convert`` (the form a check
    compares: a key's bytes, a token's digest), converted once per version of the file.

    Raises :class:`~adapter.upstream.errors.CredentialError` or ``ValueError`` at the
    first read when the file is missing, empty or holds no value."""

    def __init__(
        self, path: Path, convert: Callable[[str], bytes], *, reload_interval: float = RELOAD_INTERVAL
    ) -> None:
        self._source = SecretSource.from_file(path, reload_interval=reload_interval)
        self._convert = convert
        self._text: str | None = None
        self._values: tuple[bytes, ...] = ()
        self.values()

    def values(self) -> tuple[bytes, ...]:
        text = self._source.get()
        if text != self._text:
            self._text = text
            values = tuple(
                self._convert(line.strip())
                for line in text.splitlines()
                if line.strip() and not line.lstrip().startswith("#")
            )
            if values:
                self._values = values
            elif not self._values:
                raise ValueError(f"{self._source.path} holds no value (only comments)")
            else:
                logger.warning("%s holds no value; keeping the previous ones", self._source.path)
        return self._values
