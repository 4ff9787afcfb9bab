"""Frames between a WebSocket source's socket reader and its processor.

Bounded by bytes, not by count: when full, the reader stops reading and TCP
pushes back on the vendor. Each frame keeps its receipt time, which moves the
stream's watermark for events that carry no time of their own.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import NamedTuple

__all__ = ["FrameQueue", "ReceivedFrame"]


class ReceivedFrame(NamedTuple):
    data: str | bytes
    #: Wall-clock time of receipt (epoch seconds).
    received_at: float


class FrameQueue:
    """Frames between the socket reader and the processor (one of each), bounded by
    their total size: when full, the reader stops reading and TCP pushes back on the
    vendor. A frame larger than the bound still passes when the queue is empty
    (frames are capped by ``max_frame_bytes`` at the protocol level)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._frames: deque[ReceivedFrame] = deque()
        self._room = asyncio.Event()
        self._data = asyncio.Event()

    async def put(self, frame: ReceivedFrame) -> None:
        size = len(frame.data)
        while self._frames and self.bytes + size > self.max_bytes:
            self._room.clear()
            await self._room.wait()
        self._frames.append(frame)
        self.bytes += size
        self._data.set()

    async def get(self) -> ReceivedFrame:
        while not self._frames:
            self._data.clear()
            await self._data.wait()
        return self._pop()

    def get_nowait(self) -> ReceivedFrame | None:
        return self._pop() if self._frames else None

    def _pop(self) -> ReceivedFrame:
        frame = self._frames.popleft()
        self.bytes -= len(frame.data)
        self._room.set()
        return frame
