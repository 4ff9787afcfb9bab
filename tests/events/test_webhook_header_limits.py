"""Header limits of the webhook port (``max_headers``, ``max_header_bytes``) over
real sockets: a request past them gets 400 before any handler, publishes nothing,
and leaves one WARNING line that names the cause and quotes none of the client's
bytes (aiohttp's own log was an ERROR with its traceback per bad request)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from adapter.config.settings import WebhookSettings
from adapter.events.intake import EventIntake
from adapter.events.spool import EventSpool
from adapter.events.webhook_receiver import WebhookReceiver
from adapter.telemetry.ops_server import OpsServer
from tests.events.test_webhook_receiver import _endpoint, body, sign
from tests.idle_connections import close, opened, status_of

from .encoder_fixtures import default_encoder

SECRET_LOOKING = "sk_live_" + "Q" * 5000


@pytest_asyncio.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[tuple[WebhookReceiver, EventSpool]]:
    spool = EventSpool(tmp_path / "spool.db", max_records=100)
    await spool.start()
    encoder = default_encoder()
    receiver = WebhookReceiver(WebhookSettings(port=0), [_endpoint()], intake=EventIntake(encoder, spool))
    await receiver.start()
    yield receiver, spool
    await receiver.stop()
    await spool.stop()


def delivery(delivery_id: str, extra_headers: list[tuple[str, str]]) -> bytes:
    raw = body(delivery_id)
    headers = [
        ("Host", "x"),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(raw))),
        *sign(raw).items(),
        *extra_headers,
    ]
    head = "POST /webhooks/octospine HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode() + raw


async def answer(port: int, request: bytes) -> int | None:
    connection = await opened(port)
    try:
        return await status_of(connection, request)
    finally:
        await close(connection)


@pytest.mark.parametrize(
    ("case", "extra"),
    [
        ("49 headers", [(f"X-Extra-{i}", "v") for i in range(45)]),  # + 4 of the delivery's own
        ("a header value of 5,008 bytes", [("X-Token", SECRET_LOOKING)]),
        ("a header name of 5,000 bytes", [("X" * 5000, "v")]),
    ],
)
async def test_a_request_past_the_header_limits_gets_400_and_one_line(
    receiver: tuple[WebhookReceiver, EventSpool],
    caplog: pytest.LogCaptureFixture,
    case: str,
    extra: list[tuple[str, str]],
) -> None:
    server, spool = receiver
    caplog.set_level(logging.DEBUG)
    assert await answer(server.port, delivery(f"whd_limits_{len(case)}", extra)) == 400
    assert await spool.pending(10) == []
    assert server.counts["MALFORMED_HTTP_REQUEST"] == 1
    lines = [r for r in caplog.records if "malformed HTTP request" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING and lines[0].exc_info is None
    assert "webhook port: malformed HTTP request from 127.0.0.1 refused (400 " in lines[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "QQQQ" not in caplog.text and "XXXX" not in caplog.text


async def test_malformed_requests_in_a_row_are_counted_each_and_logged_once(
    receiver: tuple[WebhookReceiver, EventSpool], caplog: pytest.LogCaptureFixture
) -> None:
    """The port is public: a client repeating a bad request must not write a line each time."""
    server, _ = receiver
    caplog.set_level(logging.INFO)
    extra = [(f"X-Extra-{i}", "v") for i in range(45)]
    for i in range(5):
        assert await answer(server.port, delivery(f"whd_repeat_{i}", extra)) == 400
    assert server.counts["MALFORMED_HTTP_REQUEST"] == 5
    lines = [r for r in caplog.records if "malformed HTTP request" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING


async def test_a_delivery_within_the_limits_is_accepted(receiver: tuple[WebhookReceiver, EventSpool]) -> None:
    server, spool = receiver
    extra = [(f"X-Via-Proxy-{i}", "p" * 4000) for i in range(44)]  # 48 headers, 4,000-byte values
    assert await answer(server.port, delivery("whd_within_limits", extra)) == 200
    assert len(await spool.pending(10)) == 1 and not server.counts["MALFORMED_HTTP_REQUEST"]


async def test_the_operator_port_logs_a_malformed_request_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = OpsServer(host="127.0.0.1", port=0, registry=None, readiness=lambda: {"grpc": True})
    await server.start()
    caplog.set_level(logging.DEBUG)
    try:
        key = 2 * SECRET_LOOKING.encode()  # past aiohttp's 8,190 bytes, kept on this port
        request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Api-Key: " + key + b"\r\n\r\n"
        assert await answer(server.port, request) == 400
    finally:
        await server.stop()
    lines = [r for r in caplog.records if "malformed HTTP request" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert (
        "operator port: malformed HTTP request from 127.0.0.1 refused (400 LineTooLong)"
        in lines[0].getMessage()
    )
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "QQQQ" not in caplog.text
