"""``LifecycleGroup.stop``: every started part is stopped, in reverse, whatever one
part's stop raises, a library's stray CancelledError included; a cancellation of the
stop itself still ends it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from adapter.lifecycle.group import LifecycleGroup, part


def _parts(stopped: list[str], *, middle_stop: object) -> list[object]:
    async def nothing() -> None:
        return None

    def stopping(name: str) -> object:
        async def stop() -> None:
            stopped.append(name)

        return stop

    return [
        part("spool", nothing, stopping("spool")),  # type: ignore[arg-type]
        part("coordination", nothing, middle_stop),  # type: ignore[arg-type]
        part("server", nothing, stopping("server")),  # type: ignore[arg-type]
    ]


async def test_a_stray_cancelled_error_does_not_keep_the_other_parts_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stopped: list[str] = []

    async def leaks_a_cancellation() -> None:  # as aiokafka's consumer.stop() does (#647)
        raise asyncio.CancelledError()

    group = LifecycleGroup(_parts(stopped, middle_stop=leaks_a_cancellation))  # type: ignore[arg-type]
    await group.start()
    with caplog.at_level(logging.ERROR, logger="adapter.lifecycle.group"):
        await group.stop()
    assert stopped == ["server", "spool"]
    assert "coordination failed to stop cleanly (a stray CancelledError); moving on" in caplog.text


async def test_cancelling_the_stop_itself_still_ends_it() -> None:
    stopped: list[str] = []
    entered = asyncio.Event()

    async def slow() -> None:
        entered.set()
        await asyncio.sleep(30)

    group = LifecycleGroup(_parts(stopped, middle_stop=slow))  # type: ignore[arg-type]
    await group.start()
    stopping = asyncio.ensure_future(group.stop())
    await entered.wait()
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert stopped == ["server"]  # the parts after the cancelled one were not reached
