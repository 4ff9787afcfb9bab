"""A compressed body that inflates ~1,000 times, and the CPU a server spends on one:
what an HTTP server of the adapter must refuse to inflate (tests of the webhook
receiver and the operator port)."""

from __future__ import annotations

import asyncio
import functools
import time
import zlib
from collections.abc import Awaitable, Callable

__all__ = ["cpu_until_quiet", "gzip_bomb"]


@functools.cache  # ~5 s to make 1 MB of it: once per test session
def gzip_bomb(compressed_bytes: int) -> bytes:
    """About ``compressed_bytes`` of gzip holding ~1,000 times as many zero bytes."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk, parts, size = b"\0" * (1024 * 1024), [], 0
    while size < compressed_bytes - 2048:
        parts.append(packer.compress(chunk))
        size += len(parts[-1])
    return b"".join(parts) + packer.flush()


async def cpu_until_quiet(action: Callable[[], Awaitable[object]]) -> float:
    """The process's CPU seconds for ``action`` and whatever it left the loop to do: a
    server answers early and may go on reading (inflating) the rest of a body, so
    this waits until the loop has run 20 steps of 10 ms, each on time."""
    started = time.process_time()
    await action()
    on_time = 0
    while on_time < 20:
        before = time.perf_counter()
        await asyncio.sleep(0.01)
        on_time = on_time + 1 if time.perf_counter() - before < 0.03 else 0
    return time.process_time() - started
