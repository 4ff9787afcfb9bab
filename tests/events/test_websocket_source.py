"""The WebSocket source's state machine against the simulator (no Kafka needed:
events stop in a real spool)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest_asyncio
from openframe.v1 import alerts_pb2
from pydantic import SecretStr

from adapter.auth.api_key import ApiKeyCredentials
from adapter.config.settings import WebSocketSourceSettings
from adapter.descriptors.loader import load_service_specs
from adapter.events.backfill import MAX_PAGES, Backfiller
from adapter.events.intake import EventIntake
from adapter.events.spool import EventSpool
from adapter.events.watermarks import WatermarkStore
from adapter.events.websocket_source import FrameQueue, ReceivedFrame, StreamState, WebSocketSource
from adapter.transcoding.json_codec import JsonCodec
from adapter.transcoding.method_transcoder import MethodTranscoder
from adapter.upstream.client import UpstreamClient
from simulator import Fault, Simulator

from ..conftest import OPENFRAME_KEY, adapter_settings
from .encoder_fixtures import default_encoder
from .kafka_fixtures import wait_until
from .mesh_fixtures import declared

FAST = WebSocketSourceSettings(
    ping_interval_seconds=0.3,
    stall_timeout_seconds=0.6,
    backoff_initial_seconds=0.05,
    backoff_max_seconds=0.2,
)


@pytest_asyncio.fixture
async def spool(tmp_path: Path) -> AsyncIterator[EventSpool]:
    async with EventSpool(tmp_path / "spool.db") as opened:
        yield opened


def source(sim: Simulator, spool: EventSpool, tmp_path: Path, key: str) -> WebSocketSource:
    encoder = default_encoder()
    auth = adapter_settings(sim).upstreams["openframe"].auth  # the header the simulator's profile reads
    return WebSocketSource(
        declared().streams["openframe"],
        FAST,
        url=sim.openframe_ws_url,
        credentials=ApiKeyCredentials(api_key=SecretStr(key), header=auth.header, scheme=auth.scheme),
        intake=EventIntake(encoder, spool),
        watermarks=WatermarkStore(tmp_path / "watermarks.json"),
    )


async def test_refused_credentials_stop_the_stream_loudly(
    simulator: Simulator,
    spool: EventSpool,
    tmp_path: Path,
    caplog,  # type: ignore[no-untyped-def]
) -> None:
    stream = source(simulator, spool, tmp_path, key="wrong-key")
    await stream.start()
    try:
        await wait_until(lambda: stream.state is StreamState.FAILED, within=5, what="the stream to give up")
        attempts = len(simulator.find_requests(path="/v1/ws"))
        await asyncio.sleep(0.5)  # several backoff periods: it must not try again
        assert len(simulator.find_requests(path="/v1/ws")) == attempts == 1
        assert stream.counts["reconnects"] == 0
        assert "HTTP 401" in stream.failure
        assert any(r.levelname == "ERROR" and "fix the credentials" in r.getMessage() for r in caplog.records)
    finally:
        await stream.stop()
    assert stream.state is StreamState.FAILED


async def test_stall_is_detected_and_healed(simulator: Simulator, spool: EventSpool, tmp_path: Path) -> None:
    stream = source(simulator, spool, tmp_path, key=OPENFRAME_KEY)
    await stream.start()
    try:
        await asyncio.wait_for(stream.streaming.wait(), 5)
        await simulator.generate_events("openframe", "alert")
        await wait_until(lambda: spool.depth == 1, within=5, what="the first event")
        started = asyncio.get_running_loop().time()
        simulator.ws_stall("openframe", 5.0)  # no frames, no pongs
        await wait_until(lambda: stream.counts["reconnects"] == 1, within=3, what="the stall to be noticed")
        # Within ping interval + stall timeout (plus scheduling slack), not after the 5 s stall.
        assert asyncio.get_running_loop().time() - started < 2.0
        await asyncio.wait_for(stream.streaming.wait(), 5)
        await simulator.generate_events("openframe", "alert")
        await wait_until(lambda: spool.depth == 2, within=5, what="events after the reconnect")
    finally:
        await stream.stop()


async def test_full_spool_pauses_the_stream_without_dropping(simulator: Simulator, tmp_path: Path) -> None:
    async with EventSpool(tmp_path / "small.db", max_records=5) as small:
        stream = source(simulator, small, tmp_path, key=OPENFRAME_KEY)
        await stream.start()
        try:
            await asyncio.wait_for(stream.streaming.wait(), 5)
            created = await simulator.generate_events("openframe", "alert", count=20)
            await wait_until(lambda: small.depth == 5, within=5, what="the spool to fill")
            assert stream.counts["events"] < 20  # the rest waits: reads are paused, nothing dropped
            seen: list[bytes] = []
            while len(seen) < 20:  # a drainer frees room; the paused events follow in order
                await small.wait_for_records(5)
                batch = await small.pending(5)
                seen += [record.key or b"" for _, record in batch]
                await small.ack([seq for seq, _ in batch])
            assert seen == [a["id"].encode() for a in created]
        finally:
            await stream.stop()


def with_backfill(
    stream: WebSocketSource, simulator: Simulator, *, max_pages: int = MAX_PAGES
) -> tuple[UpstreamClient, MethodTranscoder]:
    """Gives ``stream`` the declared backfill over a real upstream client; returns the
    client (the test closes it) and ListAlerts' transcoder."""
    settings = adapter_settings(simulator).upstreams["openframe"]
    auth = settings.auth
    key = ApiKeyCredentials(api_key=SecretStr(OPENFRAME_KEY), header=auth.header, scheme=auth.scheme)
    caller = UpstreamClient("openframe", settings, credentials=key)
    codec = JsonCodec()
    transcoders = {
        m.path: MethodTranscoder(m, codec, settings.pagination)
        for s in load_service_specs()
        if s.upstream == "openframe"
        for m in s.methods
    }
    stream._backfiller = Backfiller(
        "openframe",
        declared().streams["openframe"].backfill,
        transcoders=transcoders,
        caller=caller,
        codec=codec,
        max_pages=max_pages,
    )
    return caller, transcoders["/openframe.v1.AlertService/ListAlerts"]


async def test_failed_backfill_is_retried_not_fatal(
    simulator: Simulator, spool: EventSpool, tmp_path: Path
) -> None:
    stream = source(simulator, spool, tmp_path, key=OPENFRAME_KEY)
    caller, _ = with_backfill(stream, simulator)
    await stream.start()
    try:
        await asyncio.wait_for(stream.streaming.wait(), 5)
        await simulator.generate_events("openframe", "alert")
        await wait_until(lambda: spool.depth == 1, within=5, what="a first event (sets the watermark)")
        simulator.faults.add(Fault(vendor="openframe", route="/v1/alerts", method="GET", status=500, times=2))
        simulator.ws_drop("openframe")
        missed = await simulator.generate_events("openframe", "alert", count=3)  # while nobody listens
        await wait_until(lambda: stream.counts["backfill_failures"] >= 1, within=5, what="a failed backfill")
        await wait_until(lambda: spool.depth >= 4, within=10, what="the missed alerts, backfilled")
        keys = {record.key for _, record in await spool.pending(100)}
        assert {a["id"].encode() for a in missed} <= keys
        # The backfill's records are spooled a moment before it reports the stream live again.
        await wait_until(lambda: stream.state is StreamState.STREAMING, within=5, what="streaming again")
    finally:
        await stream.stop()
        await caller.aclose()


async def test_paging_that_never_ends_fails_the_backfill_and_keeps_the_watermark(
    simulator: Simulator,
    spool: EventSpool,
    tmp_path: Path,
    profile: str,
    caplog,  # type: ignore[no-untyped-def]
) -> None:
    """Paging that does not end (a cursor the upstream repeats; with numbered pages, a
    total that is never reached) used to be read 1,000 pages deep, then the backfill
    ended there without a word and the watermark moved past what it never read. Now
    the backfill fails, naming the cause, the watermark stays, and once the paging
    ends the gap is read whole."""
    caplog.set_level(logging.INFO, logger="adapter.events.websocket_source")
    stream = source(simulator, spool, tmp_path, key=OPENFRAME_KEY)
    caller, list_alerts = with_backfill(stream, simulator, max_pages=5)
    await stream.start()
    try:
        await asyncio.wait_for(stream.streaming.wait(), 5)
        await simulator.generate_events("openframe", "alert", count=2)
        await wait_until(lambda: spool.depth == 2, within=5, what="first events (set the watermark)")
        mark = stream._watermarks.get("openframe")
        assert mark is not None
        # The first page of one alert, as the upstream answers it (it says more follow) ...
        first = list_alerts.bind(alerts_pb2.ListAlertsRequest(page_size=1)).request
        page = await caller.send(first, deadline=asyncio.get_running_loop().time() + 5)
        assert page.status == 200
        # ... answered to every request from now on: each page points at the same next
        # cursor (drifted), or claims a total no page number reaches (documented).
        body = orjson.loads(page.body)
        if profile == "documented":
            body["meta"]["total"] = 10**6
        looping = simulator.faults.add(
            Fault(vendor="openframe", route="/v1/alerts", method="GET", status=200, body=body)
        )
        simulator.ws_drop("openframe")
        missed = await simulator.generate_events("openframe", "alert", count=3)  # while nobody listens
        await wait_until(lambda: stream.counts["backfill_failures"] >= 1, within=10, what="a failed backfill")
        cause = {
            "drifted": "ListAlerts answered page 2 with a page token it had answered before",
            "documented": "ListAlerts still had pages after 5; the watermark stays where it was",
        }[profile]
        assert any(r.levelno == logging.WARNING and cause in r.getMessage() for r in caplog.records)
        assert stream._watermarks.get("openframe") == mark  # nothing given up
        simulator.faults.remove(looping.id)
        await wait_until(lambda: stream.state is StreamState.STREAMING, within=10, what="streaming again")
        # The attempt that was paging when the fault went may have read numbered pages of
        # both answers (page 3 of the real list is empty); the watermark did not pass the
        # gap, so the next reconnect's backfill reads it whole.
        reconnects = stream.counts["reconnects"]
        simulator.ws_drop("openframe")
        await wait_until(
            lambda: stream.counts["reconnects"] > reconnects and stream.state is StreamState.STREAMING,
            within=10,
            what="a backfill that began without the fault",
        )
        keys = {record.key for _, record in await spool.pending(100)}
        assert {a["id"].encode() for a in missed} <= keys
        assert stream._watermarks.get("openframe") > mark  # moved once the gap was read whole
    finally:
        await stream.stop()
        await caller.aclose()


class FlakyWatermarks(WatermarkStore):
    """A watermark store whose first flush fails with an error nobody expects."""

    failures = 1

    def flush(self) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("disk on fire")
        super().flush()


async def test_a_crashed_stream_task_is_reported_and_restarted(
    simulator: Simulator,
    spool: EventSpool,
    tmp_path: Path,
    caplog,  # type: ignore[no-untyped-def]
) -> None:
    encoder = default_encoder()
    states: list[StreamState] = []
    stream = WebSocketSource(
        declared().streams["openframe"],
        FAST,
        url=simulator.openframe_ws_url,
        credentials=ApiKeyCredentials(api_key=SecretStr(OPENFRAME_KEY)),
        intake=EventIntake(encoder, spool),
        watermarks=FlakyWatermarks(tmp_path / "watermarks.json"),
        on_state=lambda state, detail: states.append(state),
    )
    await stream.start()
    try:
        await asyncio.wait_for(stream.streaming.wait(), 5)
        await simulator.generate_events("openframe", "alert", count=2)
        await wait_until(lambda: stream.counts["crashes"] == 1, within=5, what="the crash")
        await wait_until(
            lambda: stream.streaming.is_set() and stream.counts["events"] >= 2, within=5, what="a restart"
        )
        assert StreamState.FAILED in states  # health turns NOT_SERVING on it
        assert states.index(StreamState.FAILED) < len(states) - 1  # and it came back
        assert "disk on fire" in stream.failure
        crash_logs = [r for r in caplog.records if "crashed" in r.getMessage()]
        assert len(crash_logs) == 1 and crash_logs[0].exc_info is not None  # once, with the traceback
        assert spool.depth >= 2  # the events of the failed batch were spooled before the crash
    finally:
        await stream.stop()  # never re-raises the crash
    assert stream.state is StreamState.STOPPED


async def test_stop_never_raises_even_when_the_task_died(
    simulator: Simulator, spool: EventSpool, tmp_path: Path
) -> None:
    stream = source(simulator, spool, tmp_path, key=OPENFRAME_KEY)
    await stream.start()
    await asyncio.wait_for(stream.streaming.wait(), 5)
    assert stream._task is not None
    stream._task.cancel()  # the task gone under its feet
    await asyncio.sleep(0)
    await stream.stop()
    await stream.stop()  # idempotent


async def test_frames_wait_in_a_queue_bounded_by_bytes() -> None:
    queue = FrameQueue(max_bytes=10)
    await queue.put(ReceivedFrame("aaaa", 1.0))
    await queue.put(ReceivedFrame("bbbb", 2.0))
    blocked = asyncio.ensure_future(queue.put(ReceivedFrame("cccc", 3.0)))  # 12 > 10: waits for room
    await asyncio.sleep(0.01)
    assert not blocked.done() and queue.bytes == 8
    assert await queue.get() == ReceivedFrame("aaaa", 1.0)
    await asyncio.wait_for(blocked, 1)
    assert queue.bytes == 8
    assert [queue.get_nowait(), queue.get_nowait(), queue.get_nowait()] == [
        ReceivedFrame("bbbb", 2.0),
        ReceivedFrame("cccc", 3.0),
        None,
    ]
    await queue.put(ReceivedFrame("x" * 100, 4.0))  # larger than the bound, but the queue is empty: it passes
    assert queue.bytes == 100
