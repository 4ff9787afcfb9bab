"""Connections that hold an HTTP server's descriptor without a request in progress,
and how long the server lets them: shared by the webhook and operator port tests."""

from __future__ import annotations

import asyncio
import contextlib
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
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
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
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
