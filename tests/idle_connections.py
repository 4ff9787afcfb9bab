"""Connections that hold an HTTP server's descriptor without a request in progress,
how long the server lets them, and raw connections for its connection cap: shared
by the webhook and operator port tests."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time

#: What a connection sends before it goes quiet.
OPENINGS = {
    "nothing": b"",
    "half a request's headers": b"POST /webhooks/x HTTP/1.1\r\nHost: x\r\nContent-Type: applic",
    "a whole request, then nothing (keep-alive)": b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
}


async def seconds_until_closed(port: int, opening: bytes, *, limit: float) -> float | None:
    """Seconds until the server closed a connection that sent ``opening`` and then
    nothing; None when it was still open after ``limit``."""
    connection = await opened(port)
    reader, writer = connection
    started = time.monotonic()
    try:
        writer.write(opening)
        await writer.drain()
        async with asyncio.timeout(limit):
            while await reader.read(65536):  # an answer to a whole request, then EOF
                pass
        return time.monotonic() - started
    except TimeoutError:
        return None
    except ConnectionError:
        return time.monotonic() - started
    finally:
        await close(connection)


HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def opened(port: int) -> Connection:
    return await asyncio.open_connection("127.0.0.1", port)


async def close(connection: Connection) -> None:
    connection[1].close()
    with contextlib.suppress(ConnectionError):
        await connection[1].wait_closed()


async def status_of(connection: Connection, request: bytes) -> int | None:
    """The status of the answer to ``request`` on ``connection`` (its body read, so
    the connection can carry the next); None when the server closed it instead."""
    reader, writer = connection
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(5):
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            length = re.search(r"(?im)^content-length: *(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return int(head.split(" ", 2)[1])


async def answers_health(connection: Connection) -> bool:
    return await status_of(connection, HEALTH) == 200


async def closed_by_server(connection: Connection) -> bool:
    """True when the server closes ``connection`` (EOF or reset) within 5 s."""
    try:
        async with asyncio.timeout(5):
            return await connection[0].read(1) == b""
    except ConnectionError:
        return True
