"""A Python HTTP client calling the upstream directly, ``concurrency`` calls in
flight, for ``seconds``; prints one JSON line: req/s, p50/p99 ms and the CPU
share it used (it is the system under test here, pinned to its core).

    python -m bench.peer.direct_client --client aiohttp --url http://127.0.0.1:PORT/v1/devices/dev_001
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
import orjson
from httpx_aiohttp import AiohttpTransport

Call = Callable[[], Awaitable[object]]


async def measure(call: Call, concurrency: int, seconds: float) -> dict[str, float]:
    for _ in range(50):  # connections and caches warm
        await call()
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - began)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    latencies.sort()
    return {
        "rps": len(latencies) / wall,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "cpu": cpu / wall,
        "count": len(latencies),
    }


async def run(client: str, url: str, concurrency: int, seconds: float) -> dict[str, float]:
    if client == "aiohttp":
        connector = aiohttp.TCPConnector(limit=100)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def call_aiohttp() -> object:
                async with session.get(url) as response:
                    response.raise_for_status()
                    return orjson.loads(await response.read())

            return await measure(call_aiohttp, concurrency, seconds)
    transport = (
        AiohttpTransport(limits=httpx.Limits(max_connections=100)) if client == "httpx-aiohttp" else None
    )
    async with httpx.AsyncClient(transport=transport, limits=httpx.Limits(max_connections=100)) as http:

        async def call_httpx() -> object:
            response = await http.get(url)
            response.raise_for_status()
            return orjson.loads(response.content)

        return await measure(call_httpx, concurrency, seconds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--client", choices=("aiohttp", "httpx-aiohttp", "httpx"), required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.client, args.url, args.concurrency, args.seconds))), flush=True)
