"""One vendor WebSocket stream, as a state machine::

    CONNECTING -> SUBSCRIBING -> BACKFILLING -> STREAMING
        ^                                          |
        +---- BACKING_OFF <--- drop / stall -------+
    CONNECTING -- 401/403 --> FAILED (stops, reports loudly; retrying would not help)

- Connect with the upstream's credentials; send the documented subscribe frame.
- Heartbeat: protocol pings every ``ping_interval``; a pong missing for
  ``stall_timeout`` closes the connection (websockets' keepalive), so a silent
  stall is detected within ``ping_interval + stall_timeout``.
- Reconnect with jittered exponential backoff (capped), re-subscribe, then
  backfill over REST from the watermark before live frames are processed (they
  wait in a bounded queue), so per-entity order holds.
- Frames reach Kafka through the spool; when it is full the queue fills and the
  socket is no longer read (TCP pushes back on the vendor).
- Unknown frames are counted and dead-lettered, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from collections import Counter

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from adapter.config.settings import WebSocketSourceSettings
from adapter.upstream.credentials import CredentialProvider
from adapter.upstream.errors import CallDeadlineExceeded, UpstreamError

from .backfill import Backfiller
from .encoding import VendorEvent
from .intake import EventIntake
from .vendor_streams import VendorStream
from .watermarks import WatermarkStore

__all__ = ["StreamState", "WebSocketSource"]

logger = logging.getLogger(__name__)

_BATCH = 500
_QUEUE = 2000


class StreamState(enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    SUBSCRIBING = "subscribing"
    BACKFILLING = "backfilling"
    STREAMING = "streaming"
    BACKING_OFF = "backing_off"
    FAILED = "failed"
    STOPPED = "stopped"


class WebSocketSource:
    """Keeps one vendor stream flowing into the event intake."""

    def __init__(
        self,
        stream: VendorStream,
        settings: WebSocketSourceSettings,
        *,
        url: str,
        credentials: CredentialProvider,
        intake: EventIntake,
        watermarks: WatermarkStore,
        backfiller: Backfiller | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.stream = stream
        self.settings = settings
        self.url = url
        self._credentials = credentials
        self._intake = intake
        self._watermarks = watermarks
        self._backfiller = backfiller if settings.backfill else None
        self._rng = rng or random.Random()
        self._task: asyncio.Task[None] | None = None
        self.state = StreamState.IDLE
        self.failure = ""
        self.counts: Counter[str] = Counter()
        #: Set each time the stream reaches STREAMING (tests and health wait on it).
        self.streaming = asyncio.Event()
        self._subscriptions = list(settings.subscribe or stream.default_subscriptions)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"ws-{self.stream.source}")

    async def stop(self) -> None:
        """Closes the connection and flushes the watermark; idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._watermarks.flush()
        if self.state is not StreamState.FAILED:
            self._set(StreamState.STOPPED)

    # the machine -------------------------------------------------------------

    def _set(self, state: StreamState, detail: str = "") -> None:
        if state is not self.state:
            self.state = state
            logger.info("%s stream: %s%s", self.stream.source, state.value, f" ({detail})" if detail else "")
        if state is StreamState.STREAMING:
            self.streaming.set()
        else:
            self.streaming.clear()

    async def _run(self) -> None:
        attempt = 0
        while True:
            self._set(StreamState.CONNECTING, self.url)
            try:
                headers = await self._credentials.auth_headers()
                async with connect(
                    self.url,
                    additional_headers=headers,
                    open_timeout=self.settings.stall_timeout_seconds,
                    ping_interval=self.settings.ping_interval_seconds,
                    ping_timeout=self.settings.stall_timeout_seconds,
                    close_timeout=2,
                    max_size=4 * 1024 * 1024,
                ) as ws:
                    await self._session(ws)
                    attempt = 0  # a session that streamed resets the backoff
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    self.failure = f"the upstream refused the stream's credentials (HTTP {status})"
                    self._set(StreamState.FAILED, self.failure)
                    logger.error(
                        "%s stream stopped: %s; fix the credentials (%s) and restart",
                        self.stream.source,
                        self.failure,
                        self._credentials.describe(),
                    )
                    return
                reason = f"HTTP {status} at connect"
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except (UpstreamError, CallDeadlineExceeded, ValueError) as exc:
                # Backfill could not read the upstream (down, slow, or an answer that does
                # not decode): the watermark did not move, so reconnecting and backfilling
                # again later loses nothing.
                reason = f"backfill failed ({type(exc).__name__}: {exc})"
                self.counts["backfill_failures"] += 1
            self.counts["reconnects"] += 1
            delay = min(self.settings.backoff_max_seconds, self.settings.backoff_initial_seconds * 2**attempt)
            delay *= 0.5 + self._rng.random()  # full jitter around the exponential step
            attempt += 1
            self._set(StreamState.BACKING_OFF, f"{reason}; reconnecting in {delay:.1f}s")
            await asyncio.sleep(delay)

    async def _session(self, ws: ClientConnection) -> None:
        self._set(StreamState.SUBSCRIBING)
        await ws.send(orjson.dumps(self.stream.subscribe(self._subscriptions)).decode())
        queue: asyncio.Queue[str | bytes] = asyncio.Queue(maxsize=_QUEUE)
        reader = asyncio.create_task(self._read(ws, queue), name=f"ws-read-{self.stream.source}")
        try:
            mark = self._watermarks.get(self.stream.source)
            if self._backfiller is not None and mark is not None:
                self._set(StreamState.BACKFILLING, f"since {mark.isoformat()}")
                missed = await self._backfiller.events_since(mark)
                for start in range(0, len(missed), _BATCH):
                    await self._accept(missed[start : start + _BATCH])
            self._set(StreamState.STREAMING)
            while True:
                frames = [await _next(queue, reader)]
                while len(frames) < _BATCH and not queue.empty():
                    frames.append(queue.get_nowait())
                events = [e for e in map(self._parse, frames) if e is not None]
                if events:
                    await self._accept(events)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await reader

    async def _read(self, ws: ClientConnection, queue: asyncio.Queue[str | bytes]) -> None:
        async for frame in ws:
            self.counts["frames"] += 1
            await queue.put(frame)  # blocks when processing lags: the socket is not read

    async def _accept(self, events: list[VendorEvent]) -> None:
        await self._intake.accept(events, wait=True)
        self.counts["events"] += len(events)
        for event in events:
            if event.timestamp:
                self._watermarks.advance(self.stream.source, event.timestamp)
        self._watermarks.flush()

    def _parse(self, frame: str | bytes) -> VendorEvent | None:
        raw = frame.encode() if isinstance(frame, str) else frame
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
            self.counts["unknown"] += 1
            # An event without a type becomes a dead letter through the intake.
            return VendorEvent(source=self.stream.source, type="", raw=raw, channel="websocket")
        kind = doc["type"]
        if kind in self.stream.control_types:
            self.counts[f"control.{kind}"] += 1
            if kind == "error":
                logger.warning("%s stream error frame: %s", self.stream.source, doc)
            return None
        return VendorEvent(
            source=self.stream.source,
            type=kind,
            id=str(doc.get("id") or ""),
            action=str(doc.get("action") or ""),
            timestamp=str(doc.get("timestamp") or ""),
            data=doc.get("data"),
            channel="websocket",
            raw=raw,
        )


async def _next(queue: asyncio.Queue[str | bytes], reader: asyncio.Task[None]) -> str | bytes:
    """The next frame, or the reader's failure (a drop) as an exception."""
    getter = asyncio.ensure_future(queue.get())
    done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    reader.result()  # raises ConnectionClosed on a drop or stall
    raise ConnectionClosed(None, None)  # the server closed cleanly: reconnect anyway
