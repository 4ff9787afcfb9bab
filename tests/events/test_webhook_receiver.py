"""The webhook receiver over real HTTP, with a real spool: what OCTOSPINE's
deliveries get back, and what reaches the spool (no Kafka needed here)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from pydantic import SecretStr

from adapter.config.settings import WebhookSettings, WebhookSourceSettings
from adapter.events.intake import EventIntake
from adapter.events.spool import EventSpool
from adapter.events.webhook_auth import DeliveryCheck, SignatureCheck, TokenCheck
from adapter.events.webhook_receiver import WebhookEndpoint, WebhookReceiver
from adapter.events.webhook_verifier import WebhookVerifier
from adapter.telemetry.repeated_lines import flush_held_lines
from tests.gzip_bomb import cpu_until_quiet, gzip_bomb
from tests.idle_connections import OPENINGS, seconds_until_closed

from .encoder_fixtures import default_encoder
from .mesh_fixtures import declared

SECRET = "whsec-receiver-test"


def body(
    delivery_id: str,
    event: str = "task.completed",
    *,
    task: str = "tsk_0001",
    age_s: float = 0,
    size: int = 0,
) -> bytes:
    when = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age_s)).isoformat().replace("+00:00", "Z")
    data = {
        "id": task,
        "name": "Database Sync",
        "type": "data_sync",
        "status": "completed",
        "pad": "x" * size,
    }
    return orjson.dumps({"id": delivery_id, "event": event, "timestamp": when, "data": data})


def sign(raw: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"x-octospine-signature": "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()}


def _endpoint(**config: Any) -> WebhookEndpoint:
    """OCTOSPINE's declared webhook, configured as a test would (signature mode by default)."""
    declaration = declared().webhooks["octospine"]
    config = {"secrets": [SecretStr(SECRET)], **config}
    settings = WebhookSourceSettings(**config)
    check: DeliveryCheck
    if settings.auth == "token":
        check = TokenCheck(settings.token_header, settings.token_scheme, settings.tokens)
    else:
        assert declaration.signature is not None
        check = SignatureCheck(declaration.signature, settings.secrets)
    verifier = WebhookVerifier(check, tolerance_seconds=300, require_timestamp=settings.require_timestamp)
    return WebhookEndpoint(
        "/webhooks/octospine", declaration, verifier, replay_window_seconds=settings.replay_window_seconds
    )


async def _receiver(
    tmp_path: Path,
    *,
    max_records: int,
    name: str = "spool.db",
    clock: Callable[[], float] = time.time,
    dedupe_window: int = 200_000,
    **config: Any,
) -> tuple[WebhookReceiver, EventSpool]:
    spool = EventSpool(tmp_path / name, max_records=max_records, clock=clock, dedupe_window=dedupe_window)
    await spool.start()
    encoder = default_encoder()
    receiver = WebhookReceiver(
        WebhookSettings(port=0, max_body_bytes=4096),
        [_endpoint(**config)],
        intake=EventIntake(encoder, spool),
        clock=clock,
    )
    await receiver.start()
    return receiver, spool


@pytest_asyncio.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, EventSpool]]:
    receiver, spool = await _receiver(tmp_path, max_records=100)
    base = f"http://127.0.0.1:{receiver.port}"
    async with httpx.AsyncClient(base_url=base) as client:
        yield client, spool
    await receiver.stop()
    await spool.stop()


async def test_accepts_once_and_acknowledges_redeliveries(
    endpoint: tuple[httpx.AsyncClient, EventSpool],
) -> None:
    client, spool = endpoint
    raw = body("whd_1")
    first = await client.post("/webhooks/octospine", content=raw, headers=sign(raw))
    again = await client.post("/webhooks/octospine", content=raw, headers=sign(raw))  # vendor redelivery
    assert (first.status_code, first.json()["status"]) == (200, "accepted")
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    [(_, record)] = await spool.pending(10)  # durable before the 200, and only once
    assert record.topic == "octospine.task.completed" and record.key == b"tsk_0001"


REJECTED = [
    ("no signature", body("whd_2"), {}, 401, "MISSING_SIGNATURE"),
    ("bad signature", body("whd_3"), {"x-octospine-signature": "sha256=" + "0" * 64}, 401, "BAD_SIGNATURE"),
    ("retired secret", body("whd_4"), sign(body("whd_4"), "old-secret"), 401, "BAD_SIGNATURE"),
    ("replayed (stale)", body("whd_5", age_s=600), None, 401, "STALE_TIMESTAMP"),
    ("oversize", body("whd_6", size=8000), None, 413, "BODY_TOO_LARGE"),
]


@pytest.mark.parametrize(("case", "raw", "headers", "status", "code"), REJECTED, ids=[r[0] for r in REJECTED])
async def test_rejections(endpoint, case, raw, headers, status, code) -> None:  # type: ignore[no-untyped-def]
    client, spool = endpoint
    answer = await client.post(
        "/webhooks/octospine", content=raw, headers=sign(raw) if headers is None else headers
    )
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code
    assert spool.depth == 0


async def test_unknown_event_is_dead_lettered_and_acknowledged(
    endpoint: tuple[httpx.AsyncClient, EventSpool],
) -> None:
    client, spool = endpoint
    raw = body("whd_7", event="pipeline.exploded")
    answer = await client.post("/webhooks/octospine", content=raw, headers=sign(raw))
    assert (answer.status_code, answer.json()["status"]) == (200, "dead_lettered")
    [(_, record)] = await spool.pending(10)
    assert record.topic == "meshadapter.deadletter" and record.value == raw


def _held_lines(caplog: pytest.LogCaptureFixture, logger: str, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and text in r.getMessage()]


async def test_refusals_and_dead_letters_are_logged_once_per_reason_then_counted(
    endpoint: tuple[httpx.AsyncClient, EventSpool], caplog: pytest.LogCaptureFixture
) -> None:
    # Anybody who reaches the port can be refused as often as they like, and a vendor whose
    # events drifted would dead-letter every one: a line each would bury the log.
    client, spool = endpoint
    caplog.set_level(logging.INFO, logger="adapter.events")
    for n in range(30):
        refused = await client.post("/webhooks/octospine", content=body(f"whd_u{n}"))
        assert (refused.status_code, refused.json()["error"]["code"]) == (401, "MISSING_SIGNATURE")
    for n in range(20):
        raw = body(f"whd_d{n}", event="pipeline.exploded")
        answer = await client.post("/webhooks/octospine", content=raw, headers=sign(raw))
        assert (answer.status_code, answer.json()["status"]) == (200, "dead_lettered")
    assert spool.depth == 20  # every dead letter is stored, whatever the log says
    refusals = _held_lines(caplog, "adapter.events.webhook_receiver", "webhook refused")
    dead = _held_lines(caplog, "adapter.events.intake", "dead-lettering")
    assert [line.split(": ", 1)[0] for line in refusals] == ["octospine webhook refused"]
    assert "401 MISSING_SIGNATURE" in refusals[0]
    assert len(dead) == 1 and "UNKNOWN_EVENT_TYPE" in dead[0]
    caplog.clear()
    flush_held_lines()  # what the adapter's stop does, or the interval's end
    [refusals_tail] = _held_lines(caplog, "adapter.events.webhook_receiver", "webhook refused")
    [dead_tail] = _held_lines(caplog, "adapter.events.intake", "dead-lettering")
    assert "(the last of 29 like it held back" in refusals_tail
    assert "(the last of 19 like it held back" in dead_tail and "UNKNOWN_EVENT_TYPE" in dead_tail


async def test_full_spool_answers_503_with_retry_after(tmp_path: Path) -> None:
    receiver, spool = await _receiver(tmp_path, max_records=1)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{receiver.port}") as client:
            one, two = body("whd_8", task="tsk_0008"), body("whd_9", task="tsk_0009")
            assert (
                await client.post("/webhooks/octospine", content=one, headers=sign(one))
            ).status_code == 200
            full = await client.post("/webhooks/octospine", content=two, headers=sign(two))
        assert full.status_code == 503
        assert int(full.headers["retry-after"]) > 0
        assert full.json()["error"]["code"] == "SPOOL_FULL"
    finally:
        await receiver.stop()
        await spool.stop()


def documented(event: str = "task.completed", *, task: str = "tsk_0100") -> bytes:
    """The guide's body: ``{event, data}``, no id, no timestamp."""
    return orjson.dumps({"event": event, "data": {"id": task, "name": "n", "type": "t", "status": "failed"}})


async def test_documented_body_is_refused_unless_configured(tmp_path: Path) -> None:
    receiver, spool = await _receiver(tmp_path, max_records=10)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{receiver.port}") as client:
            raw = documented()
            answer = await client.post("/webhooks/octospine", content=raw, headers=sign(raw))
        assert (answer.status_code, answer.json()["error"]["code"]) == (401, "MISSING_TIMESTAMP")
        assert spool.depth == 0
    finally:
        await receiver.stop()
        await spool.stop()


async def test_documented_body_replays_are_caught_by_delivery_id_across_restarts(tmp_path: Path) -> None:
    """Accepted without a timestamp; the delivery id (header here) is remembered in the
    spool's database, so a replay after a restart publishes nothing either. (The spool's
    ce_id dedupe is off here: only the delivery id stands in the way.)"""
    raw = documented("task.failed", task="tsk_0101")
    headers = {**sign(raw), "x-octospine-delivery": "whd_replayed"}
    receiver, spool = await _receiver(tmp_path, max_records=10, require_timestamp=False, dedupe_window=0)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{receiver.port}") as client:
            first = await client.post("/webhooks/octospine", content=raw, headers=headers)
            again = await client.post("/webhooks/octospine", content=raw, headers=headers)
        assert (first.status_code, first.json()) == (200, {"status": "accepted", "id": "whd_replayed"})
        assert (again.status_code, again.json()["status"]) == (200, "duplicate")
        [(seq, record)] = await spool.pending(10)
        assert record.topic == "octospine.task.failed" and record.key == b"tsk_0101"
        await spool.ack([seq])  # delivered
    finally:
        await receiver.stop()
        await spool.stop()
    receiver, spool = await _receiver(  # the same file
        tmp_path, max_records=10, require_timestamp=False, dedupe_window=0
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{receiver.port}") as client:
            replay = await client.post("/webhooks/octospine", content=raw, headers=headers)
            other = documented(task="tsk_0102")
            fresh = await client.post(
                "/webhooks/octospine",
                content=other,
                headers={**sign(other), "x-octospine-delivery": "whd_other"},
            )
        assert replay.json()["status"] == "duplicate"
        assert fresh.json()["status"] == "accepted"
        assert [r.key for _, r in await spool.pending(10)] == [b"tsk_0102"]
    finally:
        await receiver.stop()
        await spool.stop()


async def test_replay_memory_expires_after_its_window(tmp_path: Path) -> None:
    now = [1_000_000.0]  # one clock for the receiver (claims' expiry) and the spool (pruning)
    raw = documented(task="tsk_0103")
    receiver, spool = await _receiver(
        tmp_path,
        max_records=10,
        require_timestamp=False,
        replay_window_seconds=60,
        clock=lambda: now[0],
        dedupe_window=0,  # only the delivery id stands in the way
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{receiver.port}") as client:

            async def post() -> str:
                answer = await client.post("/webhooks/octospine", content=raw, headers=sign(raw))
                return str(answer.json()["status"])

            assert await post() == "accepted"
            [(seq, _)] = await spool.pending(10)
            await spool.ack([seq])  # delivered: only the delivery id still stands in the way
            now[0] += 59
            assert await post() == "duplicate"  # no id anywhere: the body's hash is the delivery id
            now[0] += 2
            assert await post() == "accepted"  # outside the window it is new again
    finally:
        await receiver.stop()
        await spool.stop()


TOKEN_REJECTED = [
    ("no token", {}, 401, "MISSING_TOKEN"),
    ("wrong token", {"Authorization": "Bearer nope"}, 401, "BAD_TOKEN"),
    ("signature instead of token", None, 401, "MISSING_TOKEN"),
]


@pytest.mark.parametrize(
    ("case", "headers", "status", "code"), TOKEN_REJECTED, ids=[r[0] for r in TOKEN_REJECTED]
)
async def test_token_mode(
    tmp_path: Path, case: str, headers: dict[str, str] | None, status: int, code: str
) -> None:
    receiver, spool = await _receiver(
        tmp_path, max_records=10, auth="token", tokens=[SecretStr("shared-token")], require_timestamp=False
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{receiver.port}") as client:
            raw = documented(task="tsk_0104")
            refused = await client.post(
                "/webhooks/octospine", content=raw, headers=sign(raw) if headers is None else headers
            )
            good = await client.post(
                "/webhooks/octospine", content=raw, headers={"Authorization": "Bearer shared-token"}
            )
        assert (refused.status_code, refused.json()["error"]["code"]) == (status, code)
        assert (good.status_code, good.json()["status"]) == (200, "accepted")
        assert [r.key for _, r in await spool.pending(10)] == [b"tsk_0104"]
    finally:
        await receiver.stop()
        await spool.stop()


async def test_a_compressed_body_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    """Vendors sign and send plain JSON. aiohttp inflated a gzip body as it arrived, on
    the event loop, and went on inflating the rest of one past the size cap to drain
    it: ~1 MB from anybody (no signature needed) held the loop, and every gRPC call,
    for seconds. A body with a Content-Encoding is now refused before it is read, and
    never inflated: it costs what the same bytes cost unlabelled."""
    spool = EventSpool(tmp_path / "spool.db", max_records=10)
    await spool.start()
    encoder = default_encoder()
    receiver = WebhookReceiver(WebhookSettings(port=0), [_endpoint()], intake=EventIntake(encoder, spool))
    await receiver.start()
    bomb = gzip_bomb(1000 * 1024)  # inflates to ~1 GB
    answers: list[httpx.Response] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{receiver.port}", timeout=30) as client:

            async def post(encoding: str | None) -> None:
                headers = {**sign(bomb), "content-type": "application/json"}
                if encoding is not None:
                    headers["content-encoding"] = encoding
                answers.append(await client.post("/webhooks/octospine", content=bomb, headers=headers))

            # Unlabelled, the same bytes are read, verified and dead-lettered (not JSON).
            plain = await cpu_until_quiet(lambda: post(None))
            for encoding in ("gzip", "deflate", "br", "gzip, identity"):
                spent = await cpu_until_quiet(lambda: post(encoding))  # noqa: B023 (awaited at once)
                assert answers[-1].status_code == 415, (encoding, answers[-1].status_code)
                assert answers[-1].json()["error"]["code"] == "UNSUPPORTED_CONTENT_ENCODING"
                # Inflating 1 GB costs seconds of CPU.
                assert spent < plain + 0.5, f"{encoding}: {spent:.2f} s of CPU, {plain:.2f} s unlabelled"
            raw = body("whd_plain")
            identity = await client.post(
                "/webhooks/octospine", content=raw, headers={**sign(raw), "content-encoding": "identity"}
            )
            assert identity.status_code == 200
    finally:
        await receiver.stop()
        await spool.stop()
    assert answers[0].status_code == 200 and answers[0].json()["status"] == "dead_lettered"
    assert receiver.counts["UNSUPPORTED_CONTENT_ENCODING"] == 4


async def test_a_body_trickled_too_slowly_is_refused_and_frees_its_turn(tmp_path: Path) -> None:
    """A sender that sends headers, then a byte now and then, held its delivery's turn
    for ever: ``max_concurrent_deliveries`` of them held every delivery. The body must
    now arrive within ``read_timeout_seconds`` of its turn."""
    spool = EventSpool(tmp_path / "spool.db", max_records=10)
    await spool.start()
    encoder = default_encoder()
    settings = WebhookSettings(port=0, max_concurrent_deliveries=1, read_timeout_seconds=0.5)
    receiver = WebhookReceiver(settings, [_endpoint()], intake=EventIntake(encoder, spool))
    await receiver.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
    try:
        writer.write(
            b"POST /webhooks/octospine HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
            b"Content-Type: application/json\r\n\r\n{"
        )
        await writer.drain()

        async def trickle() -> None:
            with contextlib.suppress(ConnectionError):
                while True:
                    await asyncio.sleep(0.1)
                    writer.write(b" ")
                    await writer.drain()

        trickling = asyncio.create_task(trickle())
        await asyncio.sleep(0.1)  # the slow sender has the only turn
        raw = body("whd_after_slow")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{receiver.port}", timeout=10) as client:
            served = await client.post("/webhooks/octospine", content=raw, headers=sign(raw))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        trickling.cancel()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        await receiver.stop()
        await spool.stop()
    assert head.startswith(b"HTTP/1.1 408"), head
    assert served.status_code == 200 and served.json()["status"] == "accepted"
    assert receiver.counts["BODY_TIMEOUT"] == 1


@pytest.mark.parametrize("opening", list(OPENINGS.values()), ids=list(OPENINGS))
async def test_a_connection_without_a_request_in_progress_is_closed_when_idle(
    tmp_path: Path, opening: bytes
) -> None:
    """aiohttp's default kept such a connection for 3,630 s: 5,000 of them, opened by
    anybody in 4 s, held 5,000 descriptors of the process for an hour. They now go
    after ``idle_timeout_seconds``, and deliveries on other connections go on."""
    spool = EventSpool(tmp_path / "spool.db", max_records=10)
    await spool.start()
    encoder = default_encoder()
    settings = WebhookSettings(port=0, idle_timeout_seconds=0.5)
    receiver = WebhookReceiver(settings, [_endpoint()], intake=EventIntake(encoder, spool))
    await receiver.start()
    try:
        quiet = asyncio.ensure_future(seconds_until_closed(receiver.port, opening, limit=5))
        raw = body("whd_beside_idle")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{receiver.port}", timeout=10) as client:
            served = await client.post("/webhooks/octospine", content=raw, headers=sign(raw))
        closed_after = await quiet
    finally:
        await receiver.stop()
        await spool.stop()
    assert served.status_code == 200 and served.json()["status"] == "accepted"
    assert closed_after is not None and 0.4 < closed_after < 3, closed_after
