"""What a live WebSocket stream costs the adapter per event: a vendor pushing alert
frames as fast as TCP takes them, read by the adapter's ``WebSocketSource`` into a
real spool (frame parse, routing, the typed message, CloudEvents headers, the
receipt span, the spool's durable append, the watermark), against a bare
``websockets`` client that only parses each frame (the floor: receiving alone).

The pushing server runs in its own process on core 1, each consumer in a fresh
process on core 0; rounds interleave the arms. Its CPU share while each arm reads
is printed too: near 100% would mean the server, not the arm, set the pace.
The server offers no compression (the arms' clients would take it).

    python -m bench.websocket_intake [--events 50000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from pydantic import SecretStr
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from bench.peer.processes import ROOT, cpu_seconds, pinned, python, started

SMOKE = os.environ.get("BENCH_SMOKE") == "1"
SERVER_CPU, CONSUMER_CPU = 1, 0
ARMS = {
    "websockets client, frames parsed (floor)": "floor",
    "WebSocketSource -> spool, tracing off": "source",
    "WebSocketSource -> spool, a span per event": "source-traced",
}
SUBSCRIBED = {"type": "subscribed", "topics": ["alerts"]}
# An OpenFrame alert event as the vendor pushes it (~330 bytes): unique ids per connection.
FRAME = (
    '{"type":"alert","action":"created","id":"evt_%d_%08d","timestamp":"2026-11-25T12:00:00.123Z",'
    '"data":{"id":"alt_%d_%08d","title":"Disk almost full on the build server","severity":"high",'
    '"device_id":"dev_001","status":"open","created_at":"2026-11-25T12:00:00.123Z",'
    '"updated_at":"2026-11-25T12:00:00.123Z"}}'
)


# --- the vendor's side ------------------------------------------------------------


async def _push(ws: ServerConnection, connections: itertools.count[int]) -> None:
    assert ws.request is not None
    count = int(parse_qs(urlsplit(ws.request.path).query)["events"][0])
    await ws.send('{"type":"connected","session_id":"bench"}')
    async for text in ws:  # the subscribe frame, as the source sends it
        if orjson.loads(text).get("type") == "subscribe":
            break
    await ws.send(orjson.dumps(SUBSCRIBED).decode())
    connection = next(connections)
    for i in range(count):
        await ws.send(FRAME % (connection, i, connection, i))
    await ws.wait_closed()


async def _serve() -> None:
    connections = itertools.count()
    async with serve(lambda ws: _push(ws, connections), "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"listening on ws://127.0.0.1:{port}/v1/ws", flush=True)
        await asyncio.Future()


# --- the arms (each in its own process) --------------------------------------------


async def _floor(url: str, count: int) -> tuple[float, float]:
    async with connect(url, max_queue=4, compression=None) as ws:
        await ws.send(orjson.dumps({"type": "subscribe", "topics": ["alerts"]}).decode())
        while orjson.loads(await ws.recv()).get("type") != "subscribed":
            pass
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            orjson.loads(await ws.recv())
        return time.perf_counter() - started, time.process_time() - cpu


class _Drop(SpanExporter):
    """Where an OTLP exporter would ship the spans: their batching is paid, not the wire."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


async def _source(url: str, count: int, *, traced: bool) -> tuple[float, float]:
    from adapter.auth.api_key import ApiKeyCredentials
    from adapter.config.settings import EventsSettings, WebSocketSourceSettings
    from adapter.descriptors.loader import import_generated_modules, load_service_specs
    from adapter.events.declarations import load_event_sources
    from adapter.events.encoding import EventEncoder
    from adapter.events.intake import EventIntake
    from adapter.events.routing import EventRouter, load_event_routes
    from adapter.events.spool import EventSpool
    from adapter.events.watermarks import WatermarkStore
    from adapter.events.websocket_source import WebSocketSource
    from adapter.gc_tuning import tune_collector_for_serving
    from adapter.transcoding.json_codec import JsonCodec

    routes = load_event_routes(EventsSettings())
    stream = load_event_sources(import_generated_modules(), specs=load_service_specs(), routes=routes)
    provider = None
    if traced:
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(_Drop()))
    with tempfile.TemporaryDirectory() as scratch:
        async with EventSpool(Path(scratch) / "spool.db", max_records=count + 1000) as spool:
            encoder = EventEncoder(EventRouter(routes), JsonCodec(), source_uris={})
            source = WebSocketSource(
                stream.streams["openframe"],
                WebSocketSourceSettings(backfill=False),
                url=url,
                credentials=ApiKeyCredentials(api_key=SecretStr("bench"), header="X-API-Key", scheme=""),
                intake=EventIntake(encoder, spool, tracer_provider=provider),
                watermarks=WatermarkStore(Path(scratch) / "watermarks.json"),
            )
            tune_collector_for_serving()  # as the adapter does once it has started
            await source.start()
            try:
                await asyncio.wait_for(source.streaming.wait(), 10)
                started, cpu = time.perf_counter(), time.process_time()
                while source.counts["events"] < count:
                    await asyncio.sleep(0.005)
                    if source.failure:
                        raise RuntimeError(f"the stream failed: {source.failure}")
                result = time.perf_counter() - started, time.process_time() - cpu
            finally:
                await source.stop()
            if spool.depth != count:
                raise RuntimeError(f"{spool.depth} events spooled of {count}")
            return result


def _consume(arm: str, url: str, count: int) -> None:
    url = f"{url}?events={count}"
    if arm == "floor":
        seconds, cpu = asyncio.run(_floor(url, count))
    else:
        seconds, cpu = asyncio.run(_source(url, count, traced=arm == "source-traced"))
    print(json.dumps({"seconds": seconds, "cpu": cpu}), flush=True)


# --- the run ------------------------------------------------------------------------


def _run_arm(arm: str, url: str, count: int, server_pid: int) -> dict[str, float]:
    server_before = cpu_seconds(server_pid)
    argv = python("-m", "bench.websocket_intake", "--consume", arm, "--url", url, "--events", str(count))
    done = subprocess.run(pinned(CONSUMER_CPU, argv), cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {arm} arm failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["server_cpu"] = cpu_seconds(server_pid) - server_before
    return figures


def main(count: int, rounds: int) -> None:
    print(
        f"mesh-adapter WebSocket intake bench: {count} alert frames a run, {rounds} rounds interleaved, "
        f"consumer on cpu {CONSUMER_CPU}, pushing server on cpu {SERVER_CPU}\n"
    )
    runs: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS.values()}
    with started("ws-server", python("-m", "bench.websocket_intake", "--serve"), cpu=SERVER_CPU) as server:
        for _ in range(rounds):
            for arm in ARMS.values():
                runs[arm].append(_run_arm(arm, server.address, count, server.pid))
    arm_header = f"arm (median of {rounds})"
    print(f"{arm_header:<44} {'events/s':>10} {'CPU us/event':>13} {'server CPU':>11}")
    medians: dict[str, tuple[float, float]] = {}
    for label, arm in ARMS.items():
        rate = statistics.median(count / r["seconds"] for r in runs[arm])
        cpu = statistics.median(r["cpu"] / count * 1e6 for r in runs[arm])
        # The server's CPU time over the whole consumer process (start-up included): a lower bound.
        share = statistics.median(r["server_cpu"] / r["seconds"] for r in runs[arm])
        medians[arm] = rate, cpu
        print(f"{label:<44} {rate:>10,.0f} {cpu:>13.1f} {share:>10.0%}")
    floor_rate, floor_cpu = medians["floor"]
    for arm in ("source", "source-traced"):
        rate, cpu = medians[arm]
        print(
            f"{arm} / floor: {rate / floor_rate:.2f}x the rate, {cpu - floor_cpu:.1f} us of CPU more an event"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000 if SMOKE else 50_000, help="frames a run")
    parser.add_argument("--rounds", type=int, default=1 if SMOKE else 3)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--consume", choices=sorted(set(ARMS.values())), help=argparse.SUPPRESS)
    parser.add_argument("--url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve())
    elif args.consume:
        _consume(args.consume, args.url, args.events)
    else:
        main(args.events, args.rounds)
