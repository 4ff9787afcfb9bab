"""The webhook port's connection cap (``events.webhook.max_connections``) over real
sockets: connections beyond it are closed at once, deliveries on admitted ones go
on, a place that frees admits the next one, and the count never leaks (closed
connections, refused ones, failed TLS handshakes)."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from adapter.config.settings import TlsSettings, WebhookSettings
from adapter.events.intake import EventIntake
from adapter.events.spool import EventSpool
from adapter.events.webhook_receiver import WebhookReceiver
from tests.events.kafka_fixtures import wait_until
from tests.events.test_webhook_receiver import _endpoint, body, sign
from tests.idle_connections import (
    Connection,
    answers_health,
    close,
    closed_by_server,
    opened,
    status_of,
)
from tests.security.pki import Pki

from .encoder_fixtures import default_encoder

CAP = 3


@pytest_asyncio.fixture
async def spool(tmp_path: Path) -> AsyncIterator[EventSpool]:
    spool = EventSpool(tmp_path / "spool.db", max_records=100)
    await spool.start()
    yield spool
    await spool.stop()


def receiver_for(spool: EventSpool, **settings: object) -> WebhookReceiver:
    encoder = default_encoder()
    return WebhookReceiver(
        WebhookSettings(port=0, max_connections=CAP, **settings),  # type: ignore[arg-type]
        [_endpoint()],
        intake=EventIntake(encoder, spool),
    )


async def test_connections_beyond_the_cap_are_closed_and_a_freed_place_admits_the_next(
    spool: EventSpool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="adapter.server.connection_cap")
    receiver = receiver_for(spool)
    await receiver.start()
    held: list[Connection] = []
    try:
        held = [await opened(receiver.port) for _ in range(CAP)]
        for connection in held:  # each admitted, each served
            assert await answers_health(connection)
        assert receiver.connections.open == CAP
        for _ in range(2):  # over the cap: closed before anything is read
            extra = await opened(receiver.port)
            assert await closed_by_server(extra)
            await close(extra)
        assert receiver.connections.refused == 2 and receiver.connections.open == CAP
        # The held connections still carry deliveries.
        raw = body("whd_cap_1")
        head = (
            f"POST /webhooks/octospine HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(raw)}\r\nX-Octospine-Signature: {sign(raw)['x-octospine-signature']}"
            "\r\n\r\n"
        ).encode()
        assert await status_of(held[0], head + raw) == 200
        assert await answers_health(held[0])  # and the next request on it
        # One place frees: the next connection is admitted and served.
        await close(held.pop())
        await wait_until(lambda: receiver.connections.open == CAP - 1, within=5, what="a place freed")
        held.append(await opened(receiver.port))
        assert await answers_health(held[-1])
        assert receiver.connections.open == CAP and receiver.connections.refused == 2
    finally:
        for connection in held:
            await close(connection)
        await receiver.stop()
    full = [r for r in caplog.records if "connections open, the cap" in r.getMessage()]
    freed = [r for r in caplog.records if "below the connection cap again" in r.getMessage()]
    assert len(full) == 1 and "events.webhook.max_connections" in full[0].getMessage()
    assert len(freed) == 1 and "2 refused so far" in freed[0].getMessage()


async def test_the_count_follows_connections_that_end_in_every_way(spool: EventSpool) -> None:
    receiver = receiver_for(spool, idle_timeout_seconds=0.5)
    await receiver.start()
    try:
        # Closed by the client, after a request and before one; closed by the idle timeout.
        for _ in range(4):
            connection = await opened(receiver.port)
            assert await answers_health(connection)
            await close(connection)
            await close(await opened(receiver.port))
        idle = [await opened(receiver.port) for _ in range(CAP)]
        for connection in idle:
            assert await closed_by_server(connection)
            await close(connection)
        await wait_until(
            lambda: receiver.connections.open == 0, within=5, what="every connection counted out"
        )
        # A burst over the cap, every one closed: the refused are never counted in.
        burst = [await opened(receiver.port) for _ in range(20)]
        await wait_until(
            lambda: receiver.connections.open + receiver.connections.refused >= 20,
            within=5,
            what="burst seen",
        )
        for connection in burst:
            await close(connection)
        await wait_until(lambda: receiver.connections.open == 0, within=5, what="the burst counted out")
        assert receiver.connections.refused == 20 - CAP
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{receiver.port}", timeout=5) as client:
            assert (await client.get("/healthz")).status_code == 200
    finally:
        await receiver.stop()


async def test_over_tls_a_failed_or_stalled_handshake_is_never_counted_and_ends(
    spool: EventSpool, tmp_path: Path
) -> None:
    pki = Pki(tmp_path / "certs")
    tls = TlsSettings(
        cert_file=pki.dir / "server.pem", key_file=pki.dir / "server-key.pem", client_auth="none"
    )
    receiver = receiver_for(spool, tls=tls, idle_timeout_seconds=1.0)
    await receiver.start()
    try:
        garbage = [await opened(receiver.port) for _ in range(CAP + 2)]
        for _, writer in garbage:  # not a TLS ClientHello: the handshake fails
            writer.write(b"GET / HTTP/1.1\r\n\r\n")
        stalled = [await opened(receiver.port) for _ in range(CAP + 2)]  # never say a word
        for connection in [*garbage, *stalled]:  # ended by the handshake's failure or timeout
            assert await closed_by_server(connection)
            await close(connection)
        assert receiver.connections.open == 0 and receiver.connections.refused == 0
        # A real client is still admitted, over TLS.
        context = ssl.create_default_context(cadata=pki.ca.read_bytes().decode())
        async with httpx.AsyncClient(verify=context, trust_env=False, timeout=5) as client:
            answer = await client.get(f"https://localhost:{receiver.port}/healthz")
        assert answer.status_code == 200
        await wait_until(lambda: receiver.connections.open == 0, within=5, what="the TLS client counted out")
    finally:
        await receiver.stop()
