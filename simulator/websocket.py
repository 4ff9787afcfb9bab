"""WebSocket streams of both vendors (`/v1/ws` and `/ws`).

The two dialects differ only in names: OpenFrame clients send
``{"type": "subscribe", "topics": [...]}``, OCTOSPINE clients
``{"action": "subscribe", "events": [...]}``. Both may add ``"since": "evt_000042"`` to replay
what the event ring still holds after that id, and both answer ``{"type": "ping"}`` with
``{"type": "pong"}``. Protocol-level pings are answered by hand (not aiohttp's autoping) so a
stall (`stall`) can withhold them too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from simulator.middleware import SERVER_CLOSED
from simulator.runtime import RUNTIME

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dialect:
    """How one vendor names commands, topic lists and topics."""

    command_key: str
    list_key: str
    topics: tuple[str, ...]


OPENFRAME_DIALECT = Dialect("type", "topics", ("devices", "alerts", "security_events"))
OCTOSPINE_DIALECT = Dialect(
    "action", "events", ("system.status", "task.progress", "alert.new", "automation.triggered")
)


class WsSession:
    """One connected client: its subscriptions, outgoing queue and stall state."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.id = "ses_" + secrets.token_hex(6)
        self.ws = ws
        self.request = request
        self.topics: set[str] = set()
        self.stalled_until = 0.0  # on the event loop's clock
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        # The session log (``Simulator.ws_session_log``), on ``time.monotonic``.
        self.opened_at = time.monotonic()
        self.subscribed_at: float | None = None
        self.closed_at: float | None = None

    def summary(self) -> dict[str, Any]:
        """The session log's entry: id, topics, peer, and when it opened, first
        subscribed and closed (``time.monotonic`` seconds; None: not yet)."""
        peer = self.request.transport.get_extra_info("peername") if self.request.transport else None
        return {
            "id": self.id,
            "topics": sorted(self.topics),
            "peer": f"{peer[0]}:{peer[1]}" if peer else "",
            "opened": self.opened_at,
            "subscribed": self.subscribed_at,
            "closed": self.closed_at,
        }

    # Subscriber protocol of the event hub.
    def wants(self, topic: str) -> bool:
        """Whether the client subscribed to `topic`."""
        return topic in self.topics

    def deliver(self, text: str) -> None:
        """Queues a message; the sender task writes it (after any stall)."""
        self._queue.put_nowait(text)

    @property
    def stalled(self) -> bool:
        """Whether the session is silently stalled right now."""
        return asyncio.get_running_loop().time() < self.stalled_until

    def stall(self, seconds: float) -> None:
        """Sends nothing (no events, no pongs) for `seconds`; queued events follow later."""
        loop = asyncio.get_running_loop()
        self.stalled_until = max(self.stalled_until, loop.time() + seconds)
        self._resumed.clear()
        loop.call_at(self.stalled_until, self._resume_if_due)

    def _resume_if_due(self) -> None:
        if self.stalled:
            asyncio.get_running_loop().call_at(self.stalled_until, self._resume_if_due)
        else:
            self._resumed.set()

    def drop(self) -> None:
        """Closes the connection abruptly: no close frame, the TCP connection just ends."""
        self.request[SERVER_CLOSED] = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    async def run_sender(self) -> None:
        """Writes queued messages until cancelled."""
        while True:
            text = await self._queue.get()
            await self._resumed.wait()
            await self.ws.send_str(text)


def _send(session: WsSession, message: dict[str, Any]) -> None:
    session.deliver(orjson.dumps(message).decode())


def _handle_text(session: WsSession, dialect: Dialect, text: str, request: web.Request) -> None:
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        _send(session, {"type": "error", "code": "invalid_message", "message": "not JSON"})
        return
    if not isinstance(message, dict):
        _send(session, {"type": "error", "code": "invalid_message", "message": "not an object"})
        return
    command = message.get(dialect.command_key) or message.get("type")
    if command == "ping":
        _send(session, {"type": "pong"})
        return
    if command not in ("subscribe", "unsubscribe"):
        _send(session, {"type": "error", "code": "unknown_command", "message": str(command)})
        return
    requested = message.get(dialect.list_key)
    if not isinstance(requested, list) or not all(isinstance(t, str) for t in requested):
        text = f"{dialect.list_key!r} must be a list of names"
        _send(session, {"type": "error", "code": "invalid_message", "message": text})
        return
    unknown = [t for t in requested if t not in dialect.topics]
    valid = [t for t in requested if t in dialect.topics]
    if unknown:
        _send(
            session,
            {
                "type": "error",
                "code": "unknown_topic",
                "message": "unknown: " + ", ".join(unknown),
                dialect.list_key: unknown,
            },
        )
    if command == "unsubscribe":
        session.topics.difference_update(valid)
        _send(session, {"type": "unsubscribed", dialect.list_key: valid})
        return
    session.topics.update(valid)
    if valid and session.subscribed_at is None:
        session.subscribed_at = time.monotonic()
    _send(session, {"type": "subscribed", dialect.list_key: valid})
    since = message.get("since")
    if isinstance(since, str) and since:
        hub = request.app[RUNTIME].hub
        for event in hub.recent(since=since):
            if event.topic in valid:
                session.deliver(event.text)


async def _serve(request: web.Request, dialect: Dialect) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    ws = web.WebSocketResponse(autoping=False, heartbeat=runtime.config.ws_heartbeat_s)
    await ws.prepare(request)
    session = WsSession(ws, request)
    runtime.hub.attach(session)
    sender = asyncio.create_task(session.run_sender(), name=f"ws-sender-{session.id}")
    _send(session, {"type": "connected", "session_id": session.id})
    try:
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.PING:
                if not session.stalled:
                    await ws.pong(msg.data)
            elif msg.type is WSMsgType.TEXT:
                if not session.stalled:  # a stalled server hears nothing either
                    _handle_text(session, dialect, msg.data, request)
            elif msg.type is WSMsgType.BINARY:
                _send(session, {"type": "error", "code": "invalid_message", "message": "binary"})
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                break
            elif msg.type is WSMsgType.ERROR:
                logger.debug("%s ws %s error: %s", runtime.vendor, session.id, ws.exception())
                break
    finally:
        session.closed_at = time.monotonic()
        runtime.hub.detach(session)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sender
        if not ws.closed and not request.get(SERVER_CLOSED, False):
            with contextlib.suppress(ConnectionError):
                await ws.close()
    return ws


async def openframe_ws(request: web.Request) -> web.StreamResponse:
    """`GET /v1/ws`: the OpenFrame stream."""
    return await _serve(request, OPENFRAME_DIALECT)


async def octospine_ws(request: web.Request) -> web.StreamResponse:
    """`GET /ws`: the OCTOSPINE stream."""
    return await _serve(request, OCTOSPINE_DIALECT)


def sessions(subscribers: Iterable[object]) -> list[WsSession]:
    """The WebSocket sessions among an event hub's subscribers."""
    return [s for s in subscribers if isinstance(s, WsSession)]
