"""Every thread but the event loop's runs SCHED_BATCH: checked on threads of this
test (through a task directory naming only them), then on ``python -m adapter``'s
own threads on both fronts, read from /proc."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adapter.helper_threads import HelperThreadPolicy
from bench.peer.processes import thread_name, tree_threads
from simulator import Simulator

from .adapter_process import against, listen_port, log_tail, spawn, terminate, wait_serving

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setscheduler"), reason="Linux scheduling policies")


class _Parked:
    """Threads that wait until the test ends, and a task directory listing only them
    (the test process's other threads, pytest's and xdist's, are left alone)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tasks = tmp_path / "task"
        self.tasks.mkdir()
        self._release = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self, name: str | None = None) -> int:
        ready = threading.Event()

        def park() -> None:
            ready.set()
            self._release.wait()

        thread = threading.Thread(target=park, name=name, daemon=True)
        thread.start()
        ready.wait()
        assert thread.native_id is not None
        (self.tasks / str(thread.native_id)).mkdir()
        self.threads.append(thread)
        return thread.native_id

    def release(self) -> None:
        self._release.set()
        for thread in self.threads:
            thread.join(5)


@pytest.fixture
def parked(tmp_path: Path) -> Iterator[_Parked]:
    threads = _Parked(tmp_path)
    yield threads
    threads.release()


def test_every_thread_but_the_kept_one_becomes_batch(parked: _Parked) -> None:
    loop_like, helper, other = parked.start(), parked.start(), parked.start()
    policy = HelperThreadPolicy(tasks=parked.tasks)
    assert policy.apply(keep=loop_like) == 2
    assert os.sched_getscheduler(helper) == os.SCHED_BATCH
    assert os.sched_getscheduler(other) == os.SCHED_BATCH
    assert os.sched_getscheduler(loop_like) == os.SCHED_OTHER
    assert policy.apply(keep=loop_like) == 0  # done once per thread


def test_a_policy_someone_chose_is_left(parked: _Parked) -> None:
    chosen = parked.start()
    os.sched_setscheduler(chosen, os.SCHED_IDLE, os.sched_param(0))
    assert HelperThreadPolicy(tasks=parked.tasks).apply(keep=0) == 0
    assert os.sched_getscheduler(chosen) == os.SCHED_IDLE


def test_the_spools_threads_are_spared(parked: _Parked) -> None:
    """The events pipeline waits on the spool writer's commits: it keeps SCHED_OTHER."""
    writer, helper = parked.start("spool-events.db"), parked.start()
    assert HelperThreadPolicy(tasks=parked.tasks).apply(keep=0) == 1
    assert os.sched_getscheduler(writer) == os.SCHED_OTHER
    assert os.sched_getscheduler(helper) == os.SCHED_BATCH


def test_an_ended_thread_is_skipped(parked: _Parked) -> None:
    gone = threading.Thread(target=lambda: None)
    gone.start()
    gone.join()
    assert gone.native_id is not None
    (parked.tasks / str(gone.native_id)).mkdir()
    alive = parked.start()
    assert HelperThreadPolicy(tasks=parked.tasks).apply(keep=0) == 1
    assert os.sched_getscheduler(alive) == os.SCHED_BATCH


async def test_run_finds_threads_that_start_later(parked: _Parked) -> None:
    task = asyncio.create_task(HelperThreadPolicy(rescan_seconds=0.05, tasks=parked.tasks).run())
    try:
        later = parked.start()
        deadline = time.monotonic() + 10
        while os.sched_getscheduler(later) != os.SCHED_BATCH:
            assert time.monotonic() < deadline, "a thread started after the first scan kept SCHED_OTHER"
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_an_unreadable_task_directory_is_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    policy = HelperThreadPolicy(tasks=tmp_path / "absent")
    with caplog.at_level(logging.WARNING, logger="adapter.helper_threads"):
        assert policy.apply(keep=0) == 0
        assert policy.apply(keep=0) == 0
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "cannot list the process's threads" in lines[0], lines


# -- python -m adapter --------------------------------------------------------------------


Policies = dict[tuple[int, int, str], int]


def _policies(root: int) -> Policies:
    """(process, thread, name) -> scheduling policy, for ``root`` and its children."""
    found = {}
    for pid, tid in tree_threads(root):
        try:
            found[(pid, tid, thread_name(pid, tid))] = os.sched_getscheduler(tid)
        except OSError:
            continue  # ended meanwhile
    return found


async def _until(
    check: Callable[[Policies], bool], what: str, root: int, log: Path, within: float = 30.0
) -> None:
    deadline = time.monotonic() + within
    while not check(_policies(root)):
        assert time.monotonic() < deadline, f"{what}: {_policies(root)}\n{log_tail(log)}"
        await asyncio.sleep(0.2)


async def test_the_adapter_keeps_only_its_loop_thread_normal(simulator: Simulator, tmp_path: Path) -> None:
    port, log = listen_port(), tmp_path / "adapter.log"
    process = spawn(against(simulator, port, MESH_WORKERS="1"), log)
    try:
        await wait_serving(port, process=process, log=log)
        pid = process.pid

        def settled(found: Policies) -> bool:
            # asyncio.run's loop is the main thread's; grpc's poller, the exporters... batch
            helpers = [p for (_, tid, _), p in found.items() if tid != pid]
            return (
                found[(pid, pid, "python")] == os.SCHED_OTHER
                and len(helpers) >= 2
                and all(p == os.SCHED_BATCH for p in helpers)
            )

        await _until(settled, "threads other than the loop's still SCHED_OTHER", pid, log)
        assert "helper threads set to SCHED_BATCH (the event loop's thread" in log.read_text()
    finally:
        terminate(process)


async def test_helper_threads_normal_leaves_every_thread_alone(simulator: Simulator, tmp_path: Path) -> None:
    port, log = listen_port(), tmp_path / "adapter.log"
    process = spawn(against(simulator, port, MESH_WORKERS="1", MESH_HELPER_THREADS="normal"), log)
    try:
        await wait_serving(port, process=process, log=log)
        found = _policies(process.pid)
        assert len(found) > 2 and set(found.values()) == {os.SCHED_OTHER}, found
        assert "SCHED_BATCH" not in log.read_text()
    finally:
        terminate(process)


async def test_behind_envoy_its_worker_yields_to_the_embedded_loop(
    simulator: Simulator, tmp_path: Path
) -> None:
    pytest.importorskip("pyvoy", reason="the envoy extra (make venv installs it)")
    port, log = listen_port(), tmp_path / "adapter.log"
    process = spawn(against(simulator, port, MESH_WORKERS="1", MESH_GRPC__FRONT="envoy"), log)
    try:
        await wait_serving(port, process=process, log=log)

        def settled(found: Policies) -> bool:
            envoy = {key: p for key, p in found.items() if key[0] != process.pid}
            workers = [p for (_, _, name), p in envoy.items() if name.startswith("wrk:worker")]
            normal = [key for key, p in envoy.items() if p == os.SCHED_OTHER]
            # Envoy's worker threads start after the embedded adapter: found by a rescan
            return bool(workers) and set(workers) == {os.SCHED_BATCH} and len(normal) == 1

        what = "Envoy's threads other than the embedded loop's still SCHED_OTHER"
        await _until(settled, what, process.pid, log)
    finally:
        terminate(process)
