"""How ``bench.peer.profile`` charges py-spy's samples: each thread's samples share
out that thread's own measured CPU, so a thread py-spy sees as busy while it waits
in C (grpc's completion-queue poller) does not charge its idle time to the call."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path

import pytest

from bench.peer.call_census import print_census
from bench.peer.census_hook import Census
from bench.peer.processes import ThreadTimes, thread_times
from bench.peer.profile import charged, print_threads, read_stacks

# py-spy --threads --format raw: the poller has 900 samples (it sat in epoll, where
# py-spy counts it busy), the loop's thread 100.
STACKS = """\
thread (11): MainThread;run (/x/asyncio/base_events.py:1);handle (/x/adapter/server/handlers.py:9) 60
thread (11): MainThread;run (/x/asyncio/b.py:1);decode (/x/adapter/transcoding/response_binding.py:3) 30
thread (11): MainThread;EpollSelector.select (/x/selectors.py:468) 10
thread (12): Thread-1 (_poll_wrapper);Thread._bootstrap (/x/t.py:1);Thread.run (/x/threading.py:982) 900
thread (13) 5
a line cut in the middle
"""


def test_each_threads_samples_share_out_its_own_cpu(tmp_path: Path) -> None:
    out = tmp_path / "stacks.txt"
    out.write_text(STACKS)
    stacks = read_stacks(out)
    assert stacks.total == 1005 and stacks.unreadable == 1
    # µs a call, as /proc measured each thread: the loop 500, the poller 50, a C thread 20
    # with no samples at all.
    rows = {part: micros for part, _, micros in charged(stacks, {11: 500e-6, 12: 50e-6, 13: 0.0, 14: 20e-6})}
    assert rows == pytest.approx(
        {
            "handler (adapter code)": 300.0,
            "JSON decode + message build": 150.0,
            "asyncio: waiting in epoll": 50.0,
            "thread 'Thread-1 (_poll_wrapper)'": 50.0,
            "thread '(unnamed, 13)'": 0.0,
            "threads with no Python frames (C, C++)": 20.0,
        }
    )


def test_a_threads_cpu_time_and_switches_are_read_from_proc() -> None:
    started, go, slept, done = threading.Event(), threading.Event(), threading.Event(), threading.Event()
    ident: list[int] = []

    def work() -> None:
        ident.append(threading.get_native_id())
        started.set()
        go.wait(10)  # the "before" reading first: the busy loop below holds the GIL
        begin = time.thread_time()
        while time.thread_time() - begin < 0.2:  # 200 ms of this thread's own CPU
            sum(range(1000))
        for _ in range(5):  # each sleep is a voluntary switch
            time.sleep(0.001)
        slept.set()
        done.wait(10)

    thread = threading.Thread(target=work)
    thread.start()
    try:
        assert started.wait(10)
        before = thread_times(os.getpid(), ident[0])
        go.set()
        assert slept.wait(30)
        after = thread_times(os.getpid(), ident[0])
    finally:
        done.set()
        thread.join(10)
    assert after.name  # the kernel's (Python 3.11 does not name its threads there)
    # /proc's per-thread times are tick samples scaled to the thread's runtime, and lag
    # over short windows: half of what the thread measured of itself.
    assert after.cpu - before.cpu >= 0.1
    assert after.voluntary - before.voluntary >= 5


def test_the_per_thread_table_is_per_call(capsys: pytest.CaptureFixture[str]) -> None:
    deltas = {
        11: ThreadTimes("python", user=0.4, system=0.1, voluntary=1000, involuntary=40),
        12: ThreadTimes("idle", user=0.0, system=0.0, voluntary=0, involuntary=0),
    }
    print_threads(deltas, calls=1000, names={11: "MainThread"})
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.startswith("| MainThread (11)"))
    assert [cell.strip() for cell in row.split("|")[2:6]] == ["400.0", "100.0", "1.00", "0.04"]
    assert not any("idle" in line for line in lines)


def _probe(items: list[int]) -> int:
    return len(items)


def test_the_census_counts_every_call_of_a_python_and_a_c_function(tmp_path: Path) -> None:
    out = tmp_path / "calls.json"
    census = Census(str(out))
    census.toggle()
    try:
        for _ in range(7):
            _probe([1, 2])
    finally:
        census.toggle()  # off, and written
    rows = {
        (Path(file).name, name, c_function): n for file, name, c_function, n in json.loads(out.read_text())
    }
    assert rows[("test_peer_profile.py", "_probe", False)] == 7
    assert rows[("test_peer_profile.py", "len", True)] == 7  # a C function, under its caller's file


def test_the_census_table_sums_by_part_and_marks_c_functions(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [
        ("/x/adapter/server/handlers.py", "MethodHandler.handle", False, 20),
        ("/x/adapter/server/handlers.py", "len", True, 10),
        ("/x/adapter/transcoding/json_codec.py", "JsonCodec.decode", False, 10),
    ]
    print_census(rows, calls=10, top=2, title="t")
    out = capsys.readouterr().out
    assert "t: 3.0 Python function calls and 1.0 calls of C functions a call" in out
    assert re.search(r"^\| handler \(adapter code\) +\| +2\.0 \| +1\.0 \|$", out, re.M), out
    assert re.search(r"^\| JSON decode \+ message build +\| +1\.0 \| +0\.0 \|$", out, re.M), out
    assert re.search(r"^\| MethodHandler\.handle \(handlers\.py\) +\| +2\.00 \|$", out, re.M), out
    assert re.search(r"^\| \[C\] len \(handlers\.py\) +\| +1\.00 \|$", out, re.M), out
    assert "JsonCodec.decode (" not in out  # past the top two
