"""How long one large payload holds the event loop: transcoded on the loop, against
on the adapter's worker thread (adapter/server/large_payloads.py), in one run.

While the adapter binds a large request or decodes a large answer, a task on the
same loop wakes every millisecond, as the loop's other calls would need it to.
The table shows the work's own time, the turns the loop had meanwhile (a 1 ms
ticker's wake-ups) and the longest it went without one: on the loop, the whole
work; on the worker, the longest single C call in it (orjson, or protobuf building
a repeated field in one go) or a few GIL switch intervals (5 ms each).

    python -m bench.large_payloads
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import orjson
from openframe.v1 import alerts_pb2, devices_pb2

from adapter.config.settings import PaginationSettings
from adapter.descriptors.loader import load_service_specs
from adapter.server.large_payloads import Kind, LargePayloadWorker
from adapter.transcoding.errors import BindingError
from adapter.transcoding.json_codec import JsonCodec
from adapter.transcoding.method_transcoder import MethodTranscoder
from adapter.transcoding.page_tokens import PageTokenSigner
from adapter.transcoding.request_binding import BoundRequest
from adapter.transcoding.request_limits import RequestLimits
from adapter.upstream.messages import UpstreamResponse

SMOKE = os.environ.get("BENCH_SMOKE") == "1"
SCALE = 0.05 if SMOKE else 1.0
DEVICE = {
    "id": "dev_001",
    "hostname": "ws-fra-001",
    "status": "online",
    "os": "windows",
    "tags": ["finance", "fra-1"],
    "lastSeen": "2026-11-25T12:00:00Z",
}


def _transcoders() -> dict[str, MethodTranscoder]:
    codec, pagination = JsonCodec(), PaginationSettings(max_page_size=100)
    signer = PageTokenSigner.from_keys([b"k" * 32])
    return {
        m.path: MethodTranscoder(m, codec, pagination, page_tokens=signer, limits=RequestLimits())
        for s in load_service_specs()
        for m in s.methods
        if s.upstream == "openframe"
    }


def _alert_request(approx_bytes: int, *, items: bool = False) -> alerts_pb2.CreateAlertRequest:
    """An alert whose metadata holds ~``approx_bytes``: 40-byte entries, or (``items``)
    4-byte list items, the most Python work a byte of request can make."""
    request = alerts_pb2.CreateAlertRequest(
        alert=alerts_pb2.Alert(title="large", severity=alerts_pb2.SEVERITY_LOW)
    )
    fields = request.alert.metadata.fields
    if items:
        values = fields["flags"].list_value.values
        for _ in range(int(approx_bytes * SCALE) // 4):
            values.add().bool_value = True
        return request
    for i in range(int(approx_bytes * SCALE) // 40):
        fields[f"key_{i:06d}"].string_value = f"value {i} of a large alert"
    return request


def _bind(transcoder: MethodTranscoder, request: Any) -> str:
    try:
        transcoder.bind(request)
        return "sent"
    except BindingError:
        return "refused (body limit)"


def _decode(transcoder: MethodTranscoder, answer: UpstreamResponse, page: BoundRequest) -> str:
    decoded = transcoder.decode(answer, page)
    assert isinstance(decoded, devices_pb2.ListDevicesResponse)
    return f"{len(decoded.devices)} devices"


async def _loop_gaps(work: Callable[[], Any]) -> tuple[float, int, float, str]:
    """(work ms, loop turns during it, longest gap ms, outcome) with a 1 ms ticker."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    gaps.clear()
    started = time.perf_counter()
    outcome = await work()
    took = time.perf_counter() - started
    turns = len(gaps)
    await asyncio.sleep(0.01)
    done.set()
    await task
    return took * 1e3, turns, max(gaps) * 1e3, outcome


async def main() -> None:
    transcoders = _transcoders()
    create = transcoders["/openframe.v1.AlertService/CreateAlert"]
    listing = transcoders["/openframe.v1.DeviceService/ListDevices"]
    page = listing.bind(devices_pb2.ListDevicesRequest(page_size=50))
    count = int(60_000 * SCALE)
    body = orjson.dumps({"data": [dict(DEVICE, id=f"dev_{i}") for i in range(count)], "total": count})
    answer = UpstreamResponse(status=200, headers={"content-type": "application/json"}, body=body)
    big, small = _alert_request(3_400_000), _alert_request(600_000)
    items = _alert_request(3_600_000, items=True)
    cases: list[tuple[str, float, Callable[[], Any]]] = [
        ("bind CreateAlert, list items", items.ByteSize(), lambda: _bind(create, items)),
        ("bind CreateAlert, map entries", big.ByteSize(), lambda: _bind(create, big)),
        ("bind CreateAlert, within limit", small.ByteSize(), lambda: _bind(create, small)),
        ("decode ListDevices page", len(body), lambda: _decode(listing, answer, page)),
    ]
    worker = LargePayloadWorker()
    rows = []
    for label, size, fn in cases:
        fn()  # warm: codecs built, first allocations made
        for where in ("on the loop", "on the worker"):

            async def work(fn: Callable[[], Any] = fn, where: str = where, label: str = label) -> Any:
                kind: Kind = "request" if label.startswith("bind") else "answer"
                return fn() if where == "on the loop" else await worker.run(kind, fn)

            rows.append((f"{label}, {where}", size / 1e6, *await _loop_gaps(work)))
    await worker.aclose()
    head = f"{'payload, where it is transcoded':<46} {'MB':>5} {'work ms':>8}"
    print(f"\n{head} {'loop turns':>11} {'loop held ms':>13}  outcome")
    for label, mb, took, turns, longest, outcome in rows:
        print(f"{label:<46} {mb:>5.2f} {took:>8.0f} {turns:>11} {longest:>13.1f}  {outcome}")


if __name__ == "__main__":
    asyncio.run(main())
