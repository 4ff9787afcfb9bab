"""The intake on a spool that fills again at every batch, as while Kafka catches up
after an outage: nothing is dropped, and the log says so once, then how often."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest

from adapter.events.encoding import VendorEvent
from adapter.events.intake import EventIntake
from adapter.events.records import OutboundRecord
from adapter.events.spool import EventSpool
from adapter.events.spool_errors import SpoolFull
from adapter.telemetry.repeated_lines import flush_held_lines

from .encoder_fixtures import default_encoder
from .kafka_fixtures import wait_until

BATCHES, PER_BATCH = 10, 4


def _alerts(first: int) -> list[VendorEvent]:
    return [
        VendorEvent(
            source="openframe",
            type="alert",
            id=f"evt_{n:04d}",
            action="created",
            timestamp="2026-12-05T03:00:00Z",
            data={"id": f"alt_{n:04d}", "title": "Disk almost full", "severity": "high"},
        )
        for n in range(first, first + PER_BATCH)
    ]


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "event spool full" in r.getMessage()]


async def test_a_spool_full_at_every_batch_logs_once_then_its_tail(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="adapter.events.intake")
    async with EventSpool(tmp_path / "spool.db", max_records=PER_BATCH) as spool:
        intake = EventIntake(default_encoder(), spool)
        delivered: list[bytes] = []

        async def kafka_catching_up() -> None:  # room frees two records at a time
            # Not before the second batch met the full spool: on a slow host the first ack could
            # otherwise come first, and the second batch would be refused at a depth of two.
            await wait_until(lambda: bool(_lines(caplog)), within=10, what="the first 'spool full' line")
            while len(delivered) < BATCHES * PER_BATCH:
                await spool.wait_for_records(5)
                batch = await spool.pending(2)
                await asyncio.sleep(0.005)
                delivered.extend(record.key or b"" for _, record in batch)
                await spool.ack([seq for seq, _ in batch])

        drainer = asyncio.create_task(kafka_catching_up())
        for n in range(BATCHES):
            result = await intake.accept(_alerts(n * PER_BATCH), wait=True)
            assert result.accepted == PER_BATCH
        await asyncio.wait_for(drainer, 10)
        during = _lines(caplog)
        flush_held_lines()  # what the adapter's stop does, or the interval's end
        tail = _lines(caplog)[len(during) :]
    # Nothing dropped, in order; each later batch found the spool full again (its first
    # event waits for the previous batch's last ones), and the log said so once, then counted.
    assert delivered == [f"alt_{n:04d}".encode() for n in range(BATCHES * PER_BATCH)]
    assert during == [
        f"event spool full ({PER_BATCH} events): pausing openframe websocket intake until Kafka takes some"
    ]
    [held] = tail
    assert re.search(rf"\(the last of {BATCHES - 2} like it held back in the last \d+ s\)$", held), held


class _SpoolThatFreedRoom:
    """A spool that refuses the first append at a depth of four and has freed room by the
    time the intake reads its depth again (as when the drainer's ack lands in between)."""

    def __init__(self) -> None:
        self.depth = 2
        self.appended: list[OutboundRecord] = []
        self._refused = False

    async def append(self, records: list[OutboundRecord], *, claim: object = None) -> list[bool]:
        if not self._refused:
            self._refused = True
            raise SpoolFull(depth=4, bytes=4_000, max_records=4, max_bytes=10**6, wanted=len(records))
        self.appended += records
        return [True] * len(records)

    async def wait_for_room(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 (the API)
        return True


async def test_the_full_line_gives_the_depth_the_spool_refused_at(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="adapter.events.intake")
    spool = _SpoolThatFreedRoom()
    intake = EventIntake(default_encoder(), spool)  # a fake of the part of a spool the intake uses
    result = await intake.accept(_alerts(0), wait=True)
    assert result.accepted == PER_BATCH and len(spool.appended) == PER_BATCH
    assert _lines(caplog) == [
        "event spool full (4 events): pausing openframe websocket intake until Kafka takes some"
    ]
