"""The operator port (adapter/telemetry/ops_server.py) over a real socket: it never
inflates a request body (it reads none), so a compressed one cannot stall the loop,
it closes connections that sit idle and those beyond its cap, and it refuses a
request with more headers than a scraper sends."""

from __future__ import annotations

import httpx
import pytest

from adapter.telemetry.ops_server import MAX_HEADERS, OpsServer
from tests.events.kafka_fixtures import wait_until
from tests.gzip_bomb import cpu_until_quiet, gzip_bomb
from tests.idle_connections import (
    OPENINGS,
    answers_health,
    close,
    closed_by_server,
    opened,
    seconds_until_closed,
    status_of,
)


async def test_a_compressed_body_sent_to_the_operator_port_is_not_inflated() -> None:
    """aiohttp inflated a gzip body as it arrived, even for a route that reads none,
    on the event loop, and drained the rest after answering: ~1 MB sent to /metrics
    held the loop, and every gRPC call, for seconds. The operator port now leaves
    bodies as they are: the same bytes cost the same labelled gzip or not."""
    server = OpsServer(host="127.0.0.1", port=0, registry=None, readiness=lambda: {"grpc": True})
    port = await server.start()
    bomb = gzip_bomb(1000 * 1024)  # inflates to ~1 GB
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            answers: list[int] = []

            async def post(headers: dict[str, str]) -> None:
                answers.append((await client.post("/metrics", content=bomb, headers=headers)).status_code)

            plain = await cpu_until_quiet(lambda: post({}))
            gzipped = await cpu_until_quiet(lambda: post({"content-encoding": "gzip"}))
            assert answers == [405, 405]
            # Inflating 1 GB costs seconds of CPU.
            assert gzipped < plain + 0.5, f"{gzipped:.2f} s of CPU labelled gzip, {plain:.2f} s not"
            assert (await client.get("/healthz")).status_code == 200
    finally:
        await server.stop()


@pytest.mark.parametrize("opening", list(OPENINGS.values()), ids=list(OPENINGS))
async def test_a_connection_without_a_request_in_progress_is_closed_when_idle(opening: bytes) -> None:
    """aiohttp's default kept such a connection, and its descriptor, for 3,630 s."""
    server = OpsServer(
        host="127.0.0.1", port=0, registry=None, readiness=lambda: {"grpc": True}, idle_timeout_seconds=0.5
    )
    port = await server.start()
    try:
        closed_after = await seconds_until_closed(port, opening, limit=5)
    finally:
        await server.stop()
    assert closed_after is not None and 0.4 < closed_after < 3, closed_after


async def test_connections_beyond_the_cap_are_closed_and_the_held_ones_served() -> None:
    """The operator port is not public, but whoever reaches it could otherwise take the
    process's descriptors (shared with the gRPC port, the upstreams and Kafka)."""
    server = OpsServer(
        host="127.0.0.1", port=0, registry=None, readiness=lambda: {"grpc": True}, max_connections=2
    )
    await server.start()
    held = [await opened(server.port) for _ in range(2)]
    try:
        for connection in held:
            assert await answers_health(connection)
        extra = await opened(server.port)
        assert await closed_by_server(extra)
        await close(extra)
        assert server.connections.open == 2 and server.connections.refused == 1
        await close(held.pop())
        await wait_until(lambda: server.connections.open < 2, within=5, what="a place freed")
        held.append(await opened(server.port))
        assert await answers_health(held[-1])
    finally:
        for connection in held:
            await close(connection)
        await server.stop()


async def test_a_request_with_more_headers_than_a_scraper_sends_is_refused() -> None:
    server = OpsServer(host="127.0.0.1", port=0, registry=None, readiness=lambda: {"grpc": True})
    port = await server.start()

    async def answer(headers: int) -> int | None:
        lines = [f"X-Header-{i}: {'h' * 8000}\r\n" for i in range(headers - 2)]
        request = "GET /healthz HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n" + "".join(lines) + "\r\n"
        connection = await opened(port)
        try:
            return await status_of(connection, request.encode())
        finally:
            await close(connection)

    try:
        assert await answer(MAX_HEADERS) == 200  # each of 8,000 bytes
        assert await answer(MAX_HEADERS + 1) == 400
    finally:
        await server.stop()
