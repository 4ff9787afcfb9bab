"""The events bench runs its two paths in the order asked for, and hands each result back in place."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from bench.peer.events import in_order


@pytest.mark.parametrize(("raw_first", "expected"), [(False, ["adapter", "raw"]), (True, ["raw", "adapter"])])
def test_the_paths_run_in_the_order_asked_for(raw_first: bool, expected: list[str]) -> None:
    ran: list[str] = []

    def step(name: str) -> Callable[[], Awaitable[str]]:
        async def run() -> str:
            ran.append(name)
            return f"{name} result"

        return run

    results = asyncio.run(in_order(raw_first, step("adapter"), step("raw")))
    assert ran == expected
    assert results == ("adapter result", "raw result")
