"""A real socket server that answers HTTP/1.1 requests with scripted bytes, for the
``h1`` transport's tests (the ``served`` fixture, in this folder's conftest)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest_asyncio

Answerer = Callable[[bytes], bytes | None]  # request bytes -> answer bytes (None: close at once)


@dataclass
class ScriptedServer:
    """Each connection reads a request head (and its Content-Length body), then writes
    what ``answer`` returns; ``close_after`` closes the connection after that answer."""

    answer: Answerer
    close_after: bool = False
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    hold: asyncio.Event | None = None  # answers wait for it

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                request = head + (await reader.readexactly(length) if length else b"")
                self.requests.append(request)
                if self.hold is not None:
                    await self.hold.wait()
                answer = self.answer(request)
                if answer is None:
                    return
                writer.write(answer)
                await writer.drain()
                if self.close_after:
                    return
        finally:
            self.open_now -= 1
            writer.close()


def ok(body: bytes, *extra: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    return head + b"".join(h + b"\r\n" for h in extra) + b"\r\n" + body


@pytest_asyncio.fixture
async def served() -> AsyncIterator[Callable[..., asyncio.Future[tuple[ScriptedServer, str]]]]:
    servers: list[asyncio.Server] = []

    async def serve(answer: Answerer, **options: object) -> tuple[ScriptedServer, str]:
        script = ScriptedServer(answer, **options)  # type: ignore[arg-type]
        server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return script, f"http://127.0.0.1:{port}"

    yield serve  # type: ignore[misc]
    for server in servers:
        server.close()
