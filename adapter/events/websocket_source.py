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
- Unknown frames are counted and dead-lettered, never fatal. Frames wait in a
  queue bounded by bytes (``max_queued_bytes``), not by count.
- Supervised: if the loop dies of anything unexpected, the state turns FAILED
  (health NOT_SERVING), the cause is logged once, and the loop restarts after a
  backoff. Only refused credentials stop it for good. ``stop()`` never raises.
- The backoff starts over once a session has streamed for
  ``backoff_reset_after_seconds``; the watermark moves only past events that were
  spooled (never past a dead-lettered one) and never beyond the receipt time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import logging
import random
from collections import Counter, deque
from collections.abc import Callable

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from adapter.config.settings import WebSocketSourceSettings
from adapter.resilience.backoff import Backoff
from adapter.upstream.credentials import CredentialProvider
from adapter.upstream.errors import CallDeadlineExceeded, UpstreamError

from .backfill import Backfiller
from .encoding import VendorEvent, envelope_problem
from .intake import EventIntake
from .vendor_streams import VendorStream
from .watermarks import WatermarkStore

__all__ = ["StreamState", "WebSocketSource"]

logger = logging.getLogger(__name__)

_BATCH = 500


class StreamState(enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    SUBSCRIBING = "subscribing"
    BACKFILLING = "backfilling"
    STREAMING = "streaming"
    BACKING_OFF = "backing_off"
    FAILED = "failed"
    STOPPED = "stopped"


class FrameQueue:
    """Frames between the socket reader and the processor (one of each), bounded by
    their total size: when full, the reader stops reading and TCP pushes back on the
    vendor. A frame larger than the bound still passes when the queue is empty
    (frames are capped by ``max_frame_bytes`` at the protocol level)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._frames: deque[str | bytes] = deque()
        self._room = asyncio.Event()
        self._data = asyncio.Event()

    async def put(self, frame: str | bytes) -> None:
        size = len(frame)
        while self._frames and self.bytes + size > self.max_bytes:
            self._room.clear()
            await self._room.wait()
        self._frames.append(frame)
        self.bytes += size
        self._data.set()

    async def get(self) -> str | bytes:
        while not self._frames:
            self._data.clear()
            await self._data.wait()
        return self._pop()

    def get_nowait(self) -> str | bytes | None:
        return self._pop() if self._frames else None

    def _pop(self) -> str | bytes:
        frame = self._frames.popleft()
        self.bytes -= len(frame)
        self._room.set()
        return frame


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
        on_state: Callable[[StreamState, str], None] | None = None,
    ) -> None:
        """``on_state(state, detail)`` is called on every state change (health pushes
        NOT_SERVING on FAILED from it)."""
        self.stream = stream
        self.settings = settings
        self.url = url
        self._credentials = credentials
        self._intake = intake
        self._watermarks = watermarks
        self._backfiller = backfiller if settings.backfill else None
        self._backoff = Backoff(
            settings.backoff_initial_seconds,
            settings.backoff_max_seconds,
            healthy_after=settings.backoff_reset_after_seconds,
            rng=rng,
        )
        self._task: asyncio.Task[None] | None = None
        self.state = StreamState.IDLE
        self.failure = ""
        self.counts: Counter[str] = Counter()
        #: Set each time the stream reaches STREAMING (tests and health wait on it).
        self.streaming = asyncio.Event()
        self._subscriptions = list(settings.subscribe or stream.default_subscriptions)
        self._crash_causes: set[str] = set()
        self._on_state = on_state
        self.queued_bytes = 0

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name=f"ws-{self.stream.source}")

    async def stop(self) -> None:
        """Closes the connection and flushes the watermark; idempotent, never raises."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # gather: a task that already died reports its error here, not to our caller.
            (outcome,) = await asyncio.gather(task, return_exceptions=True)
            if isinstance(outcome, Exception):
                logger.error("%s stream task had failed: %r", self.stream.source, outcome)
        try:
            self._watermarks.flush()
        except OSError as exc:
            logger.error("%s stream: cannot save its watermark: %s", self.stream.source, exc)
        if self.state is not StreamState.FAILED:
            self._set(StreamState.STOPPED)

    # the machine -------------------------------------------------------------

    def _set(self, state: StreamState, detail: str = "") -> None:
        if state is not self.state:
            self.state = state
            logger.info("%s stream: %s%s", self.stream.source, state.value, f" ({detail})" if detail else "")
            if self._on_state is not None:
                self._on_state(state, detail)
        if state is StreamState.STREAMING:
            self.streaming.set()
        else:
            self.streaming.clear()

    async def _supervise(self) -> None:
        """Runs the loop; restarts it after a backoff whenever it dies unexpectedly."""
        while True:
            try:
                await self._run()
                return  # stopped for good by policy (refused credentials)
            except Exception as exc:  # the supervisor's job: nothing may end the stream silently
                cause = f"{type(exc).__name__}: {exc}"[:500]
                self.failure = f"stream task crashed ({cause})"
                self.counts["crashes"] += 1
                self._set(StreamState.FAILED, self.failure)
                if cause not in self._crash_causes:  # once per cause, with the traceback
                    self._crash_causes.add(cause)
                    logger.exception("%s stream task crashed; restarting it", self.stream.source)
                await asyncio.sleep(self._backoff.next())

    async def _run(self) -> None:
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
                    max_size=self.settings.max_frame_bytes,
                    max_queue=4,  # websockets' own buffer, in frames: ours is bounded by bytes
                ) as ws:
                    await self._session(ws)
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
            delay = self._backoff.next()
            self._set(StreamState.BACKING_OFF, f"{reason}; reconnecting in {delay:.1f}s")
            await asyncio.sleep(delay)

    async def _session(self, ws: ClientConnection) -> None:
        self._set(StreamState.SUBSCRIBING)
        await ws.send(orjson.dumps(self.stream.subscribe(self._subscriptions)).decode())
        queue = FrameQueue(self.settings.max_queued_bytes)
        reader = asyncio.create_task(self._read(ws, queue), name=f"ws-read-{self.stream.source}")
        try:
            mark = self._watermarks.get(self.stream.source)
            if self._backfiller is not None and mark is not None:
                self._set(StreamState.BACKFILLING, f"since {mark.isoformat()}")
                missed = await self._backfiller.events_since(mark)
                for start in range(0, len(missed), _BATCH):
                    await self._accept(missed[start : start + _BATCH])
            self._set(StreamState.STREAMING)
            self._backoff.healthy()
            while True:
                frames = [await _next(queue, reader)]
                while len(frames) < _BATCH and (more := queue.get_nowait()) is not None:
                    frames.append(more)
                self.queued_bytes = queue.bytes
                events = [e for e in map(self._parse, frames) if e is not None]
                if events:
                    await self._accept(events)
        finally:
            self.queued_bytes = 0
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await reader

    async def _read(self, ws: ClientConnection, queue: FrameQueue) -> None:
        async for frame in ws:
            self.counts["frames"] += 1
            await queue.put(frame)  # waits when processing lags: the socket is not read
            self.queued_bytes = queue.bytes

    async def _accept(self, events: list[VendorEvent]) -> None:
        result = await self._intake.accept(events, wait=True)
        self.counts["events"] += len(events)
        # A vendor clock ahead of ours, or a hostile time, must not move the mark past
        # what a later backfill has to read: never beyond the receipt time.
        ceiling = dt.datetime.now(dt.UTC)
        for index, event in enumerate(events):
            if event.timestamp and index not in result.dead:
                self._watermarks.advance(self.stream.source, event.timestamp, ceiling=ceiling)
        self._watermarks.flush()

    def _parse(self, frame: str | bytes) -> VendorEvent | None:
        """The frame as an event (one the intake dead-letters when it is unreadable),
        or None for control frames. Never raises."""
        raw = frame.encode("utf-8", "surrogateescape") if isinstance(frame, str) else frame
        try:
            return self._envelope(raw)
        except Exception as exc:  # a frame is the vendor's (or a third party's) input
            self.counts["unknown"] += 1
            return self._malformed(raw, f"unreadable frame ({type(exc).__name__}: {exc})"[:500])

    def _malformed(self, raw: bytes, why: str) -> VendorEvent:
        return VendorEvent(source=self.stream.source, type="", raw=raw, channel="websocket", malformed=why)

    def _envelope(self, raw: bytes) -> VendorEvent | None:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self.counts["unknown"] += 1
            return self._malformed(raw, f"frame is not JSON ({exc})")
        if not isinstance(doc, dict) or not isinstance(doc.get("type"), str) or not doc["type"]:
            self.counts["unknown"] += 1
            return self._malformed(raw, "frame is not a JSON object with a string 'type'")
        kind = doc["type"]
        if kind in self.stream.control_types:
            self.counts[f"control.{kind}"] += 1
            if kind == "error":
                logger.warning("%s stream error frame: %.500s", self.stream.source, raw)
            return None
        envelope = {name: doc.get(name) for name in ("type", "id", "action", "timestamp")}
        problem = envelope_problem(envelope)
        if problem:
            self.counts["unknown"] += 1
            return self._malformed(raw, problem)
        return VendorEvent(
            source=self.stream.source,
            type=kind,
            id=str(envelope["id"] or ""),
            action=str(envelope["action"] or ""),
            timestamp=str(envelope["timestamp"] or ""),
            data=doc.get("data"),
            channel="websocket",
            raw=raw,
        )


async def _next(queue: FrameQueue, reader: asyncio.Task[None]) -> str | bytes:
    """The next frame, or the reader's failure (a drop) as an exception."""
    getter = asyncio.ensure_future(queue.get())
    done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    reader.result()  # raises ConnectionClosed on a drop or stall
    raise ConnectionClosed(None, None)  # the server closed cleanly: reconnect anyway
