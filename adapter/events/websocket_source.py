"""One vendor WebSocket stream, as a state machine::

    CONNECTING -> SUBSCRIBING -> BACKFILLING -> STREAMING
        ^                                          |
        +---- BACKING_OFF <--- drop / stall -------+
    CONNECTING -- 401/403 --> FAILED (stops, reports loudly; retrying would not help)

- Connect with the upstream's credentials; send the subscribe frame the upstream's
  ``(websocket)`` option declares, and wait for its acknowledgement when one is
  declared (a stream that does not answer within ``stall_timeout`` is reconnected).
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
  spooled (never past a dead-lettered one) and never beyond the receipt time. An
  event without a time (frames shaped ``{type, data}``) moves it to its receipt
  time minus ``watermark_margin_seconds``.
- A backfill route that answers 404 is dropped from the stream's backfill with one
  warning (see :mod:`adapter.events.backfill`); the stream goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from adapter.config.settings import WebSocketSourceSettings
from adapter.lifecycle.supervisor import Supervisor
from adapter.resilience.backoff import Backoff
from adapter.resilience.errors import LocalRateLimitExceeded
from adapter.telemetry.repeated_lines import RepeatedLines
from adapter.upstream.credentials import CredentialProvider
from adapter.upstream.errors import CallDeadlineExceeded, UpstreamError

from .backfill import Backfiller, BackfillIncomplete
from .declarations import StreamDeclaration
from .encoding import VendorEvent
from .fencing import PublishFence, StreamFenced
from .frame_queue import FrameQueue, ReceivedFrame
from .intake import EventIntake
from .watermarks import Watermarks, capped, event_time
from .websocket_frames import FrameReader

__all__ = ["FrameQueue", "ReceivedFrame", "StreamState", "SubscriptionNotAcknowledged", "WebSocketSource"]

logger = logging.getLogger(__name__)

_BATCH = 500
#: Crash causes whose traceback is logged once; past these, every crash's is (the
#: supervisor's backoff spaces them), so a cause that varies cannot grow the set.
_CAUSES_REMEMBERED = 64


class StreamState(enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    SUBSCRIBING = "subscribing"
    BACKFILLING = "backfilling"
    STREAMING = "streaming"
    BACKING_OFF = "backing_off"
    FAILED = "failed"
    STOPPED = "stopped"


class SubscriptionNotAcknowledged(TimeoutError):
    """The declared acknowledgement of the subscribe frame did not come in time."""


class WebSocketSource:
    """Keeps one vendor stream flowing into the event intake."""

    def __init__(
        self,
        stream: StreamDeclaration,
        settings: WebSocketSourceSettings,
        *,
        url: str,
        credentials: CredentialProvider,
        intake: EventIntake,
        watermarks: Watermarks,
        backfiller: Backfiller | None = None,
        rng: random.Random | None = None,
        on_state: Callable[[StreamState, str], None] | None = None,
        supervisor: Supervisor | None = None,
        admission: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``on_state(state, detail)`` is called on every state change (health pushes
        NOT_SERVING on FAILED from it; :meth:`listen` adds more); ``supervisor`` keeps
        the stream's task alive if it is killed from outside (a private one by default);
        ``admission`` is awaited before each connection attempt (the upstream's rate
        limiter counts the upgrade request; it raises LocalRateLimitExceeded)."""
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
        self._frames = FrameReader(stream, self.counts)
        #: Set each time the stream reaches STREAMING (tests and health wait on it).
        self.streaming = asyncio.Event()
        self._subscriptions = list(settings.subscribe or stream.subscriptions)
        self._margin = dt.timedelta(seconds=settings.watermark_margin_seconds)
        self._crash_causes: set[str] = set()
        # A backfill that keeps failing (every reconnect) warns once per interval, with a count.
        self._backfill_failures = RepeatedLines(logger)
        self._listeners: list[Callable[[StreamState, str], None]] = [on_state] if on_state else []
        self._supervisor = supervisor or Supervisor()
        #: The health name the supervisor turns NOT_SERVING if the stream's task is
        #: killed from outside (set by the composition root; None: not reported).
        self.health_name: str | None = None
        self._fence: PublishFence | None = None
        self._admission = admission
        self.queued_bytes = 0

    def fence_with(self, fence: PublishFence) -> None:
        """From now on, connect and spool only while ``fence`` allows it (replicas)."""
        self._fence = fence

    def listen(self, listener: Callable[[StreamState, str], None]) -> None:
        """Calls ``listener(state, detail)`` on every state change from now on."""
        self._listeners.append(listener)

    async def start(self) -> None:
        if self._task is None:
            self._task = self._supervisor.spawn(
                f"ws-{self.stream.source}", self._supervise_then_park, health=self.health_name
            )

    async def stop(self) -> None:
        """Closes the connection and flushes the watermark; idempotent, never raises."""
        task, self._task = self._task, None
        if task is not None:
            await self._supervisor.cancel(task)
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
            for listener in self._listeners:
                listener(state, detail)
        if state is StreamState.STREAMING:
            self.streaming.set()
        else:
            self.streaming.clear()

    async def _supervise_then_park(self) -> None:
        await self._supervise()
        # Stopped for good by policy (refused credentials): stay FAILED, do not restart.
        await asyncio.Event().wait()

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
                    if len(self._crash_causes) < _CAUSES_REMEMBERED:  # (bounded: causes may vary)
                        self._crash_causes.add(cause)
                    logger.exception("%s stream task crashed; restarting it", self.stream.source)
                await asyncio.sleep(self._backoff.next())

    async def _run(self) -> None:
        while True:
            if self._fence is not None and not self._fence.allows():
                self._set(StreamState.BACKING_OFF, "waiting for the stream's ownership")
                await self._fence.wait_allowed()
            self._set(StreamState.CONNECTING, self.url)
            try:
                if self._admission is not None:
                    await self._admission()
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
            except LocalRateLimitExceeded as exc:
                # The quota is spent (or this replica's share not usable yet): wait for it.
                self.counts["quota_waits"] += 1
                self._set(StreamState.BACKING_OFF, f"quota: {exc}")
                await asyncio.sleep(min(exc.retry_after, self.settings.backoff_max_seconds * 4))
                continue
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
            except (UpstreamError, CallDeadlineExceeded, ValueError, BackfillIncomplete) as exc:
                # Backfill could not read the upstream (down, slow, paging that does not
                # end, or an answer that does not decode): the watermark did not move, so
                # reconnecting and backfilling again later loses nothing.
                reason = f"backfill failed ({type(exc).__name__}: {exc})"
                self.counts["backfill_failures"] += 1
                self._backfill_failures.log(
                    logging.WARNING,
                    "backfill",
                    "%s stream: %s; its watermark stays, the gap is read again after reconnecting",
                    self.stream.source,
                    reason,
                )
            except StreamFenced:
                reason = "ownership not confirmed; nothing spooled"
                self.counts["fenced"] += 1
            self.counts["reconnects"] += 1
            delay = self._backoff.next()
            self._set(StreamState.BACKING_OFF, f"{reason}; reconnecting in {delay:.1f}s")
            await asyncio.sleep(delay)

    async def _session(self, ws: ClientConnection) -> None:
        self._set(StreamState.SUBSCRIBING)
        subscribe = self.stream.subscribe_frame(self._subscriptions)
        if subscribe is not None:
            await ws.send(orjson.dumps(subscribe).decode())
        queue = FrameQueue(self.settings.max_queued_bytes)
        acknowledged = asyncio.Event()
        if not self.stream.subscribed_type:
            acknowledged.set()
        reader = asyncio.create_task(
            self._read(ws, queue, acknowledged), name=f"ws-read-{self.stream.source}"
        )
        try:
            await self._acknowledgement(acknowledged, reader)
            mark = self._watermarks.get(self.stream.source)
            if self._backfiller is not None and mark is not None:
                self._set(StreamState.BACKFILLING, f"since {mark.isoformat()}")
                await self._backfill(self._backfiller, mark)
            self._set(StreamState.STREAMING)
            self._backoff.healthy()
            while True:
                frames = [await _next(queue, reader)]
                while len(frames) < _BATCH and (more := queue.get_nowait()) is not None:
                    frames.append(more)
                self.queued_bytes = queue.bytes
                events: list[VendorEvent] = []
                received: list[float] = []
                for frame in frames:
                    event = self._frames.parse(frame.data)
                    if event is not None:
                        events.append(event)
                        received.append(frame.received_at)
                if events:
                    await self._accept(events, received)
        finally:
            self.queued_bytes = 0
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await reader

    async def _acknowledgement(self, acknowledged: asyncio.Event, reader: asyncio.Task[None]) -> None:
        """Waits for the declared answer to the subscribe frame, so the subscription is
        live before backfill reads the gap (nothing falls between the two)."""
        if acknowledged.is_set():
            return
        waiter = asyncio.ensure_future(acknowledged.wait())
        try:
            done, _ = await asyncio.wait(
                {waiter, reader},
                timeout=self.settings.stall_timeout_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            waiter.cancel()
        if reader in done:
            reader.result()  # raises ConnectionClosed on a drop
            raise ConnectionClosed(None, None)
        if waiter not in done:
            self.counts["unacknowledged"] += 1
            raise SubscriptionNotAcknowledged(
                f"no {self.stream.subscribed_type!r} frame within {self.settings.stall_timeout_seconds:.1f}s"
            )

    async def _read(self, ws: ClientConnection, queue: FrameQueue, acknowledged: asyncio.Event) -> None:
        async for frame in ws:
            self.counts["frames"] += 1
            if not acknowledged.is_set() and self._frames.is_acknowledgement(frame):
                acknowledged.set()
            await queue.put(ReceivedFrame(frame, time.time()))  # waits when processing lags
            self.queued_bytes = queue.bytes

    async def _backfill(self, backfiller: Backfiller, mark: dt.datetime) -> None:
        """Spools what was missed since ``mark`` page by page; the watermark moves once,
        after the last page, to the newest event spooled (a backfill cut half-way is read
        again from ``mark``: its pages are in the vendor's order, not the events')."""
        newest: dt.datetime | None = None
        try:
            # Closed at once when spooling fails or is cancelled (not when collected).
            async with contextlib.aclosing(backfiller.pages_since(mark)) as pages:
                async for page in pages:
                    dead = await self._spool(page)
                    # Never beyond the receipt time (a vendor clock ahead of ours, a hostile time).
                    ceiling = dt.datetime.now(dt.UTC)
                    for index, event in enumerate(page):
                        when = None if index in dead else event_time(event.timestamp)
                        if when is not None:
                            when = capped(when, ceiling)
                            newest = when if newest is None or when > newest else newest
        finally:
            self.counts["backfill_disabled"] = len(backfiller.disabled)
        if newest is not None:
            self._watermarks.advance_to(self.stream.source, newest)
            self._watermarks.flush()

    async def _spool(self, events: list[VendorEvent]) -> frozenset[int]:
        """Spools ``events`` (waiting for room); the indexes of those dead-lettered."""
        if self._fence is not None and not self._fence.allows():
            raise StreamFenced(self.stream.source)
        result = await self._intake.accept(events, wait=True)
        self.counts["events"] += len(events)
        return result.dead

    async def _accept(self, events: list[VendorEvent], received: list[float]) -> None:
        """Spools live ``events`` and moves the watermark past them (``received``: their
        receipt times, for the events that carry no time of their own)."""
        dead = await self._spool(events)
        # A vendor clock ahead of ours, or a hostile time, must not move the mark past
        # what a later backfill has to read: never beyond the receipt time.
        ceiling = dt.datetime.now(dt.UTC)
        for index, event in enumerate(events):
            if index in dead:
                continue
            if event.timestamp:
                self._watermarks.advance(self.stream.source, event.timestamp, ceiling=ceiling)
            else:
                moment = dt.datetime.fromtimestamp(received[index], dt.UTC) - self._margin
                self._watermarks.advance_to(self.stream.source, moment, ceiling=ceiling)
        self._watermarks.flush()


async def _next(queue: FrameQueue, reader: asyncio.Task[None]) -> ReceivedFrame:
    """The next frame, or the reader's failure (a drop) as an exception."""
    getter = asyncio.ensure_future(queue.get())
    try:
        done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when the stream is stopped (cancelled) while it waits
        if not getter.done():
            getter.cancel()
    if getter in done:
        return getter.result()
    reader.result()  # raises ConnectionClosed on a drop or stall
    raise ConnectionClosed(None, None)  # the server closed cleanly: reconnect anyway
