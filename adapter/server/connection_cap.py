"""At most N connections open on an asyncio server; one more is closed at once.

The webhook port is public and unauthenticated at the TCP level, and aiohttp has no
cap on connections (its sites pass ``runner.server`` straight to
``loop.create_server``). Each open connection holds a descriptor of the process, and
the process shares its descriptors with the gRPC port, the upstream pools, Kafka and
the spool: idle timeouts bound how long one connection lives, not how many there are,
so a flood of connections would fail every ``accept``, upstream connection and Kafka
reconnect with EMFILE. grpc-core caps its own port (``max_connections``); this caps
the HTTP ones. Written by hand because neither aiohttp nor asyncio offers it.

:class:`ConnectionCap` wraps a protocol factory (aiohttp's ``runner.server``). A
connection is counted from ``connection_made`` to ``connection_lost``: what asyncio
promises for every transport, so the count cannot leak (a TLS handshake that fails
calls neither; such connections are bounded by the handshake timeout instead). The
protocol of a refused connection is never built; the connection is closed before a
byte of it is read. The log says once when the cap is reached and once when a place
frees, not once per refusal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from ssl import SSLContext

from aiohttp import web

__all__ = ["ConnectionCap", "listen"]

logger = logging.getLogger(__name__)


class ConnectionCap:
    """Counts a server's connections and closes those beyond ``limit``; serve
    :meth:`wrap` of the server's protocol factory."""

    def __init__(self, limit: int, *, name: str, setting: str) -> None:
        if limit < 1:
            raise ValueError(f"a connection cap must be at least 1, not {limit}")
        self.limit = limit
        #: For the log: the port's name, and the setting (or constant) that holds ``limit``.
        self.name = name
        self.setting = setting
        #: Connections open now, and connections closed because the cap was reached.
        self.open = 0
        self.refused = 0
        self._full = False

    def wrap(self, factory: Callable[[], asyncio.BaseProtocol]) -> Callable[[], asyncio.Protocol]:
        """The protocol factory to serve: ``factory``'s protocols, for admitted connections."""
        return lambda: _CountedProtocol(self, factory)

    def _admit(self) -> bool:
        if self.open >= self.limit:
            self.refused += 1
            if not self._full:
                self._full = True
                logger.warning(
                    "%s: %d connections open, the cap (%s); new connections are closed until one ends",
                    self.name,
                    self.open,
                    self.setting,
                )
            return False
        self.open += 1
        return True

    def _release(self) -> None:
        self.open -= 1
        if self._full:
            self._full = False
            logger.info("%s: below the connection cap again (%d refused so far)", self.name, self.refused)


async def listen(
    runner: web.BaseRunner,
    cap: ConnectionCap,
    host: str,
    port: int,
    *,
    ssl: SSLContext | None = None,
    reuse_port: bool | None = None,
    ssl_handshake_timeout: float | None = None,
) -> asyncio.Server:
    """Serves a set-up aiohttp ``runner`` on ``host:port`` through ``cap``: what
    aiohttp's ``TCPSite`` does (``runner.server`` is the protocol factory), with the
    cap it lacks. Close the server before ``runner.cleanup()``, which ends the
    connections still open."""
    assert runner.server is not None, "runner.setup() first"
    return await asyncio.get_running_loop().create_server(
        cap.wrap(runner.server),
        host,
        port,
        ssl=ssl,
        reuse_port=reuse_port,
        ssl_handshake_timeout=ssl_handshake_timeout,
    )


class _CountedProtocol(asyncio.Protocol):
    """Forwards asyncio's callbacks to the wrapped protocol of an admitted connection.
    aiohttp's ``RequestHandler`` is a plain (not buffered) protocol, so these are all
    the callbacks a stream transport makes."""

    __slots__ = ("_cap", "_factory", "_inner")

    def __init__(self, cap: ConnectionCap, factory: Callable[[], asyncio.BaseProtocol]) -> None:
        self._cap = cap
        self._factory = factory
        self._inner: asyncio.BaseProtocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._cap._admit():
            transport.close()
            return
        self._inner = self._factory()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            self._cap._release()
            inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)  # type: ignore[attr-defined]

    def eof_received(self) -> bool | None:
        if self._inner is not None:
            return self._inner.eof_received()  # type: ignore[attr-defined,no-any-return]
        return None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
