"""How ``bench.peer.profile`` charges py-spy's samples: each thread's samples share
out that thread's own measured CPU, so a thread py-spy sees as busy while it waits
in C (grpc's completion-queue poller) does not charge its idle time to the call."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.peer.profile import charged, read_stacks

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
