"""The peer bench's processes: started pinned to a core, read for CPU time,
stopped by their own pid."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_TICKS = os.sysconf("SC_CLK_TCK")


def pinned(cpu: int, argv: Sequence[str]) -> list[str]:
    """``argv`` run on core ``cpu`` only (every thread it starts too)."""
    return ["taskset", "-c", str(cpu), *argv]


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU time of every thread of ``pid`` so far (of ``thread`` alone
    when given)."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    user, system = _user_system(stat)
    return user + system


def _user_system(stat: Path) -> tuple[float, float]:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / _TICKS, int(fields[12]) / _TICKS  # utime, stime


def process_tree(pid: int) -> Iterator[int]:
    """``pid`` and every process below it (pyvoy runs Envoy as its child), each as it
    is found; one that ends meanwhile is skipped with what was below it."""
    todo = [pid]
    while todo:
        at = todo.pop()
        try:
            children = [
                int(child)
                for task in Path(f"/proc/{at}/task").iterdir()
                for child in (task / "children").read_text().split()
            ]
        except FileNotFoundError:
            continue
        yield at
        todo += children


def tree_threads(pid: int) -> Iterator[tuple[int, int]]:
    """(process, thread) of every thread of :func:`process_tree`; a thread may end
    before the caller reads it."""
    for at in process_tree(pid):
        with contextlib.suppress(FileNotFoundError):  # the process ended meanwhile
            yield from ((at, int(task.name)) for task in Path(f"/proc/{at}/task").iterdir())


def thread_name(pid: int, thread: int) -> str:
    """The kernel's name of ``thread`` of ``pid`` (``comm``: Envoy's ``wrk:worker_0``).
    Raises OSError when the thread has ended."""
    return Path(f"/proc/{pid}/task/{thread}/comm").read_text().strip()


@dataclass(frozen=True)
class ThreadTimes:
    """One thread's CPU time so far (seconds, user and system apart) and its context
    switches (voluntary: it waited; involuntary: another thread took its core)."""

    name: str
    user: float
    system: float
    voluntary: int
    involuntary: int

    @property
    def cpu(self) -> float:
        return self.user + self.system


def thread_times(pid: int, thread: int) -> ThreadTimes:
    """``thread`` of ``pid`` as ``/proc`` counts it. Raises OSError when it has ended."""
    task = Path(f"/proc/{pid}/task/{thread}")
    user, system = _user_system(task / "stat")
    status = dict(line.split(":", 1) for line in (task / "status").read_text().splitlines() if ":" in line)
    return ThreadTimes(
        name=thread_name(pid, thread),
        user=user,
        system=system,
        voluntary=int(status["voluntary_ctxt_switches"]),
        involuntary=int(status["nonvoluntary_ctxt_switches"]),
    )


def tree_thread_times(pid: int) -> dict[tuple[int, int], ThreadTimes]:
    """:func:`thread_times` of each thread of :func:`tree_threads`, by (process, thread)."""
    times: dict[tuple[int, int], ThreadTimes] = {}
    for at, thread in tree_threads(pid):
        with contextlib.suppress(OSError):  # it ended meanwhile
            times[(at, thread)] = thread_times(at, thread)
    return times


def tree_cpu_seconds(pid: int) -> float:
    """:func:`cpu_seconds` of ``pid`` and of every process below it."""
    total = 0.0
    for at in process_tree(pid):
        with contextlib.suppress(FileNotFoundError):  # it ended meanwhile: its time is gone with it
            total += cpu_seconds(at)
    return total


@dataclass
class Started:
    name: str
    process: subprocess.Popen[bytes]
    address: str

    @property
    def pid(self) -> int:
        return self.process.pid


@contextlib.contextmanager
def started(
    name: str,
    argv: Sequence[str],
    *,
    cpu: int,
    ready: str = "listening on ",
    env: Mapping[str, str] | None = None,
    address: str = "",
    timeout: float = 60.0,
) -> Iterator[Started]:
    """Runs ``argv`` on core ``cpu`` until the block ends. Ready when it prints a
    line starting with ``ready`` (whose rest is its address), or, with ``ready=""``,
    at once (the caller waits on ``address`` itself)."""
    process = subprocess.Popen(
        pinned(cpu, argv),
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE if ready else subprocess.DEVNULL,
        stderr=None,
    )
    try:
        if ready:
            assert process.stdout is not None
            deadline = time.monotonic() + timeout
            while True:
                line = process.stdout.readline().decode()
                if line.startswith(ready):
                    address = line[len(ready) :].strip()
                    break
                if not line or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start ({argv[0]}): {line!r}")
        yield Started(name, process, address)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def python(*args: str) -> list[str]:
    return [sys.executable, *args]
