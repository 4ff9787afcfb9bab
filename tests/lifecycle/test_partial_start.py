"""A whole MeshAdapter (events on, real Kafka, simulator) whose parts fail to start
one at a time: what started before the failing part is stopped again, in reverse
order, and nothing leaks (asyncio tasks, file descriptors: sockets, the spool's
database, listening ports)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from pathlib import Path

import pytest

from adapter.config.settings import Settings
from adapter.lifecycle.group import Part, PartFailedToStart
from adapter.runtime import MeshAdapter
from simulator import Simulator

from ..events.kafka_fixtures import wait_until
from ..events.mesh_fixtures import mesh_settings

pytestmark = pytest.mark.kafka

PARTS = [
    "upstream callers",
    "large payload worker",
    "event spool",
    "kafka sink",
    "spool drainer",
    "webhook receiver",
    "octospine stream",
    "openframe stream",
    "grpc server",
    "operator port",
]


FDS = Path("/proc/self/fd")


class Injected(RuntimeError):
    pass


class Recorded:
    """Wraps a part: records its start and stop; fails its start when told to."""

    def __init__(self, inner: Part, log: list[str], fail: bool) -> None:
        self.name, self._inner, self._log, self._fail = inner.name, inner, log, fail

    async def start(self) -> None:
        if self._fail:
            raise Injected(f"{self.name} refuses to start")
        await self._inner.start()
        self._log.append(f"start {self.name}")

    async def stop(self) -> None:
        await self._inner.stop()
        self._log.append(f"stop {self.name}")


class FailingAt(MeshAdapter):
    def __init__(self, settings: Settings, *, fail: str) -> None:
        super().__init__(settings)
        self.fail = fail
        self.log: list[str] = []

    def _assemble(self) -> list[Part]:
        return [Recorded(p, self.log, p.name == self.fail) for p in super()._assemble()]


def _fds() -> int:
    return sum(1 for _ in FDS.iterdir())


def _fd_targets() -> list[str]:
    targets = []
    for fd in FDS.iterdir():
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone already
            targets.append(str(fd.readlink()))
    return targets


def _tasks() -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def _settled(fds: int, tasks: set[asyncio.Task[object]]) -> None:
    def clean() -> bool:
        gc.collect()
        return _fds() <= fds and not (_tasks() - tasks)

    try:
        await wait_until(clean, within=10, what="every task and descriptor released")
    except pytest.fail.Exception:
        leaked = [t.get_name() + ": " + repr(t.get_coro()) for t in _tasks() - tasks]
        raise AssertionError(f"fds {_fds()} (before {fds}): {_fd_targets()}; tasks left: {leaked}") from None


async def _warm_up(simulator: Simulator, tmp_path: Path, prefix: str) -> None:
    """A whole start/stop first, so what stays for the process (imported modules,
    the simulator's sockets, lazily made objects) is in the baseline."""
    warm = MeshAdapter(mesh_settings(simulator, tmp_path / "warm", prefix))
    await warm.start()
    await warm.stop(0)
    await asyncio.sleep(0.2)
    gc.collect()


async def test_the_parts_are_the_ones_named_here(simulator: Simulator, tmp_path: Path, prefix: str) -> None:
    adapter = FailingAt(mesh_settings(simulator, tmp_path, prefix), fail="")
    await adapter.start()
    try:
        assert adapter.log == [f"start {name}" for name in PARTS]
    finally:
        await adapter.stop(0)
    assert adapter.log[len(PARTS) :] == [f"stop {name}" for name in reversed(PARTS)]


@pytest.mark.parametrize("failing", PARTS)
async def test_a_part_that_fails_to_start_leaves_nothing_behind(
    simulator: Simulator, tmp_path: Path, prefix: str, failing: str
) -> None:
    await _warm_up(simulator, tmp_path, prefix)
    fds, tasks = _fds(), _tasks()

    adapter = FailingAt(mesh_settings(simulator, tmp_path, prefix), fail=failing)
    with pytest.raises(PartFailedToStart, match=failing) as raised:
        await adapter.start()
    assert raised.value.part == failing
    before = PARTS[: PARTS.index(failing)]
    assert adapter.log == [f"start {n}" for n in before] + [f"stop {n}" for n in reversed(before)]
    await adapter.stop(0)  # idempotent after a failed start
    await _settled(fds, tasks)


async def test_a_busy_grpc_port_is_a_real_failure_that_unwinds(
    simulator: Simulator, tmp_path: Path, prefix: str
) -> None:
    await _warm_up(simulator, tmp_path, prefix)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        settings = mesh_settings(simulator, tmp_path, prefix)
        settings = settings.model_copy(
            update={"grpc": settings.grpc.model_copy(update={"port": busy.getsockname()[1]})}
        )

        async def fail_once() -> None:
            adapter = FailingAt(settings, fail="")
            with pytest.raises(PartFailedToStart, match="grpc server"):
                await adapter.start()
            assert adapter.log[-1] == "stop upstream callers"

        # grpc core makes its process-wide pollers on the first failed bind: the
        # baseline is taken after one failure, then failures must not accumulate.
        await fail_once()
        await asyncio.sleep(0.2)
        fds, tasks = _fds(), _tasks()
        for _ in range(3):
            await fail_once()
        await _settled(fds, tasks)
