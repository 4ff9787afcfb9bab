"""aiohttp's log of a client's malformed request, as one line that names the cause.

aiohttp's request handler logs every request it cannot parse (a header too long, too
many headers, a broken request line or chunk) with ``logger.exception``: an ERROR
and ~10 lines of aiohttp's own traceback, for a fault that is the client's. On a
public port (webhooks) anybody can write those at the rate they send bad requests,
and an operator reads "Error handling request" as a bug of the adapter. The handler
takes its logger as an argument (``AppRunner(logger=...)``); :class:`MalformedRequestLog`
turns such records into one WARNING line with the client's address and the parser's
message, and counts them. Any other exception keeps its ERROR and traceback. The
parser's messages quote the offending bytes (``b'...'``), which may be a secret the
client sent: the line keeps the message up to the quote.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

from adapter.telemetry.repeated_lines import RepeatedLines

__all__ = ["MalformedRequestLog"]

#: Where a parser message starts quoting the client's bytes (``: b'...'``, ``'...'``).
_QUOTE = re.compile(r"""[\s:,]*b?['"]""")


class MalformedRequestLog(logging.LoggerAdapter[logging.Logger]):
    """A logger for aiohttp's request handler of ``port`` (its name in the log);
    ``on_malformed`` is called once per malformed request."""

    def __init__(self, logger: logging.Logger, port: str, on_malformed: Callable[[], None]) -> None:
        super().__init__(logger, {})
        self.port = port
        self._on_malformed = on_malformed
        # The port is public: a line per malformed request would let anyone flood the log.
        self._lines = RepeatedLines(logger)

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self._on_malformed()
            remote = args[0] if args else "?"
            cause = _QUOTE.split(" ".join(str(exc_info.message).split()), maxsplit=1)[0]
            self._lines.log(
                logging.WARNING,
                (exc_info.code, type(exc_info).__name__),
                "%s: malformed HTTP request from %s refused (%d %s): %s",
                self.port,
                remote,
                exc_info.code,
                type(exc_info).__name__,
                cause[:200],
            )
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)
