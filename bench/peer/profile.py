"""Where the microseconds of one GetDevice go: the adapter as the peer bench runs
it (pinned, against the compiled upstream, driven by ghz), sampled by py-spy, each
sample charged to the innermost frame of a known part of the call.

    python -m bench.peer.profile [--seconds 20] [--concurrency 16] [--raw out.txt] [--cache]
                                 [--envoy] [--perf]

Prints a table: part | share of the samples | µs of CPU per call. Each thread's
samples share out that thread's own CPU time, read from /proc over the measured
run: py-spy counts a thread blocked in C code (grpc's completion-queue poller,
waiting in epoll) as busy, so shares of all samples charged the poller's idle
time to the call (about half the samples at c=16, against ~7% of the CPU). The
thread that runs the handlers gets the parts (grpc's C-core work lands in the
Python frames that wait for it); every other thread with Python frames is one row
by its name, and the threads that ran no Python frame (Envoy's worker, grpc core's
own) one row together. A second table gives each thread's user and system CPU and
its voluntary and involuntary context switches a call, from /proc over the same
window: the kernel's share of a call and which threads preempt which, which
samples cannot show. ``--envoy`` profiles the adapter behind Envoy as
``python -m bench.peer.front`` runs it. py-spy is a dev dependency
(``pip install py-spy``); it needs ptrace rights (root, or
``kernel.yama.ptrace_scope=0``).

``--perf`` samples the whole process tree with Linux ``perf`` instead (every thread,
C and kernel frames included, Python 3.11's frames as the interpreter's own) and prints
the CPU per call by shared object, then the hottest symbols: the view py-spy cannot
give of Envoy, pyvoy, grpc core and the kernel. It needs ``perf`` and
``kernel.perf_event_paranoid`` <= 1 (or root).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.peer.__main__ import BODY, adapter_env, build, ghz, wait_serving
from bench.peer.processes import (
    Started,
    ThreadTimes,
    process_tree,
    python,
    started,
    tree_thread_times,
)
from bench.peer.side_by_side import own_tree
from bench.ports import listen_port

# (part, substrings of a frame's "function (file:line)" text), innermost match wins;
# the first rows are checked first, so specific parts come before the generic ones.
_RATE = 250  # py-spy samples a second
NATIVE: list[str] = []  # ["--native"]: C frames too (then py-spy pauses the process to sample)

PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("Envoy front (gRPC over ASGI)", ("adapter/server/envoy_front",)),
    ("tracing: gRPC server interceptor", ("opentelemetry/instrumentation/grpc",)),
    ("tracing: the adapter's telemetry code", ("opentelemetry/instrumentation/httpx", "adapter/telemetry/")),
    ("tracing: SDK/API (spans, context)", ("opentelemetry/",)),
    ("status / rich errors", ("adapter/status/", "grpc_status/")),
    ("binding (request -> REST call)", ("request_binding", "path_template", "pagination")),
    ("JSON decode + message build", ("response_binding", "json_codec", "json_values", "orjson")),
    ("resilience layers", ("adapter/resilience/",)),
    ("credentials", ("adapter/auth/", "upstream/credentials")),
    ("upstream client (adapter code)", ("adapter/upstream/",)),
    ("handler (adapter code)", ("adapter/server/",)),
    ("httpx API (client, models, URLs)", ("httpx/", "httpx_aiohttp/")),
    ("aiohttp (connector, HTTP parser)", ("aiohttp/", "multidict/", "yarl/")),
    ("grpc.aio (Python/Cython)", ("grpc/",)),
    # The loop's thread waiting in epoll: the syscall, and the idle waits py-spy counts
    # as busy (so the rows of that thread are lower bounds, this one an upper bound).
    ("asyncio: waiting in epoll", ("EpollSelector.select",)),
    ("asyncio event loop", ("asyncio/", "selectors", "uvloop/")),
]


def part_of(stack: list[str]) -> str:
    for frame in reversed(stack):  # innermost first
        for part, needles in PARTS:
            if any(n in frame for n in needles):
                return part
    return "other Python"


def _adapter_argv(env: dict[str, str], envoy: bool) -> tuple[list[str], str]:
    """``python -m adapter`` and the address callers use; behind Envoy with ``envoy``
    (``env`` gains ``grpc.front = "envoy"``)."""
    if envoy:
        env["MESH_GRPC__FRONT"] = "envoy"
    return python("-m", "adapter"), f"127.0.0.1:{env['MESH_GRPC__PORT']}"


def profile(
    seconds: float,
    concurrency: int,
    raw: Path | None,
    cache: bool = False,
    tree: Path | None = None,
    envoy: bool = False,
    perf: bool = False,
) -> None:
    tools = build()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    with (
        started("upstream", [str(tools / "upstream"), "-body", str(BODY)], cpu=1) as up,
        started("otlpsink", [str(tools / "otlpsink")], cpu=1) as otlp,
    ):
        port = listen_port()
        env = adapter_env(f"http://{up.address}", port, cache=cache, otlp=otlp.address)
        if tree is not None:
            env |= own_tree(tree)
        adapter, address = _adapter_argv(env, envoy)
        with started("mesh-adapter", adapter, cpu=0, ready="", env=env, address=address) as arm:
            wait_serving(arm)
            ghz(tools, arm, concurrency, 1.0, 1)  # warm up
            if perf:
                return _perf(tools, arm, concurrency, seconds, raw)
            out = raw or Path(tempfile.mkdtemp(prefix="peer-profile-")) / "stacks.txt"
            spy_proc = subprocess.Popen(
                [spy, "record", "--pid", str(arm.pid), "--rate", str(_RATE), "--format", "raw",
                 "--output", str(out), "--full-filenames", "--threads", *(NATIVE or ["--nonblocking"]),
                 *(["--subprocesses"] if envoy else [])],  # behind Envoy the adapter is its child
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1.0)  # py-spy attaches
            threads_before = tree_thread_times(arm.pid)
            row = ghz(tools, arm, concurrency, seconds, 1)
            threads_after = tree_thread_times(arm.pid)
            comms = {tid: times.name for (_, tid), times in threads_after.items()}
            spy_proc.send_signal(2)  # SIGINT: py-spy writes its output and exits
            spy_proc.wait(30)
    # The CPU a call costs from ghz's measured run; split by each thread's share of the
    # time the threads used meanwhile (which includes ghz's half-second warm-up at the
    # same load).
    deltas = {key[1]: _minus(after, threads_before.get(key)) for key, after in threads_after.items()}
    per_call = row.cpu / row.rps
    # The calls that window held, at the measured run's CPU a call.
    calls = sum(d.cpu for d in deltas.values()) / per_call
    thread_cpu = {t: d.cpu / calls for t, d in deltas.items()}
    stacks = read_stacks(out)
    for tid, name in stacks.names.items():
        if name.startswith("(unnamed"):  # a thread Python did not start (Envoy's worker)
            stacks.names[tid] = comms.get(tid) or name
    what = ("GetDevice (cache hits)" if cache else "GetDevice") + (f" [{tree}]" if tree else "")
    what += " behind Envoy" if envoy else ""
    print(
        f"\n{what} at c={concurrency}, {row.rps:.0f} req/s, {row.cpu:.0%} of a core, "
        f"{per_call * 1e6:.0f} µs CPU per call; {stacks.total} py-spy samples ({out})"
        f"{f'; {stacks.unreadable} unreadable lines left out' if stacks.unreadable else ''}\n"
    )
    print(f"| {'part of the call':<44} | {'samples':>7} | {'µs/call':>7} |")
    print(f"|{'-' * 46}|{'-' * 8}:|{'-' * 8}:|")
    for part, share, micros in charged(stacks, thread_cpu):
        print(f"| {part:<44} | {share:>7} | {micros:>7.0f} |")
    print_threads(deltas, calls, stacks.names)


def _minus(after: ThreadTimes, before: ThreadTimes | None) -> ThreadTimes:
    if before is None:  # a thread that started meanwhile
        return after
    return ThreadTimes(
        after.name,
        after.user - before.user,
        after.system - before.system,
        after.voluntary - before.voluntary,
        after.involuntary - before.involuntary,
    )


def print_threads(deltas: dict[int, ThreadTimes], calls: float, names: dict[int, str]) -> None:
    """Each thread's user and system CPU and its context switches, a call: where
    the kernel's share is, and which threads preempt which (the samples cannot say).
    A thread is named as py-spy named it (Python's name), else by the kernel's."""
    print(f"\n| {'thread (name, id)':<40} | user µs | system µs | voluntary | involuntary |")
    print(f"|{'-' * 42}|--------:|----------:|----------:|------------:|")
    for tid, d in sorted(deltas.items(), key=lambda item: -item[1].cpu):
        if d.cpu / calls < 0.5e-6 and (d.voluntary + d.involuntary) / calls < 0.01:
            continue  # idle meanwhile
        name = f"{names.get(tid, d.name)} ({tid})"
        print(
            f"| {name:<40} | {d.user / calls * 1e6:>7.1f} | {d.system / calls * 1e6:>9.1f} "
            f"| {d.voluntary / calls:>9.2f} | {d.involuntary / calls:>11.2f} |"
        )


@dataclasses.dataclass
class Stacks:
    """py-spy's samples by thread id, then by part; each thread's name."""

    samples: dict[int, collections.Counter[str]]
    names: dict[int, str]
    unreadable: int = 0

    @property
    def total(self) -> int:
        return sum(sum(parts.values()) for parts in self.samples.values())


_THREAD = re.compile(r"^thread \((\d+)\)(?:: (.*))?$")


def read_stacks(out: Path) -> Stacks:
    """``py-spy record --threads --format raw`` output, each sample charged to a part."""
    stacks = Stacks({}, {})
    # py-spy can write a stack it caught mid-change as a broken line (a frame without
    # its name, bytes that are not text, no count): counted and left out.
    for line in out.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        # --subprocesses roots each stack at a "process ..." frame; --threads then names
        # the thread ("thread (<tid>): <name>").
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        thread = _THREAD.match(frames[0]) if frames else None
        if thread is None or not count.isdigit():
            stacks.unreadable += bool(line.strip())
            continue
        tid, name = int(thread.group(1)), thread.group(2) or f"(unnamed, {thread.group(1)})"
        stacks.names[tid] = name
        parts = stacks.samples.setdefault(tid, collections.Counter())
        parts[part_of(frames[1:]) if frames[1:] else _NO_FRAME] += int(count)
    return stacks


def charged(stacks: Stacks, thread_cpu: dict[int, float]) -> list[tuple[str, str, float]]:
    """(part, share of the samples, µs of CPU a call), most first.

    Each thread's samples share out *that thread's* measured CPU: py-spy counts a
    thread blocked in C code (grpc's completion-queue poller in epoll) as busy, so
    shares of all samples would charge the poller's idle time to the whole call. The
    thread that runs the handlers (the most samples in adapter code) keeps the parts;
    every other thread with Python frames is one row by its name, and what ran no
    Python frame at all (Envoy's and grpc core's own threads) is the last row.
    """
    total = stacks.total or 1
    rows: dict[str, float] = collections.defaultdict(float)
    shares: collections.Counter[str] = collections.Counter()
    handlers = max(
        stacks.samples,
        key=lambda t: sum(n for p, n in stacks.samples[t].items() if p not in _NOT_ADAPTER),
        default=None,
    )
    for tid, parts in stacks.samples.items():
        cpu = thread_cpu.get(tid, 0.0)
        seen = sum(parts.values())
        for part, n in parts.items():
            label = part if tid == handlers else f"thread {stacks.names[tid]!r}"
            rows[label] += n / seen * cpu
            shares[label] += n
    outside = sum(cpu for tid, cpu in thread_cpu.items() if tid not in stacks.samples)
    table = [(p, f"{shares[p] / total:.1%}", us * 1e6) for p, us in sorted(rows.items(), key=lambda r: -r[1])]
    return [*table, ("threads with no Python frames (C, C++)", "", outside * 1e6)]


#: A sample of a thread with no Python frame on its stack (behind Envoy: pyvoy's
#: thread in uvloop's or pyvoy's C code, or waiting there).
_NO_FRAME = "no Python frame (uvloop, pyvoy C; waits)"
_NOT_ADAPTER = frozenset(
    {"other Python", _NO_FRAME, "asyncio event loop", "asyncio: waiting in epoll", "grpc.aio (Python/Cython)"}
)


def _perf(tools: Path, arm: Started, concurrency: int, seconds: float, raw: Path | None) -> None:
    """``perf record`` of the adapter's process tree under load, reported by shared
    object (where a call's CPU goes between Python, Envoy, pyvoy, grpc core and the
    kernel) and by symbol."""
    data = raw or Path(tempfile.mkdtemp(prefix="peer-perf-")) / "perf.data"
    pids = ",".join(str(pid) for pid in process_tree(arm.pid))
    recorder = subprocess.Popen(
        ["perf", "record", "-F", "2000", "-p", pids, "-o", str(data)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)  # perf attaches
    row = ghz(tools, arm, concurrency, seconds, 1)
    cpu_per_call = row.cpu / row.rps  # the measured run's (not ghz's warm-up before it)
    recorder.send_signal(2)
    recorder.wait(60)
    print(
        f"\nGetDevice at c={concurrency}, {row.rps:.0f} req/s, {row.cpu:.0%} of a core, "
        f"{cpu_per_call * 1e6:.0f} µs CPU per call; perf samples in {data}\n"
    )
    for sort, rows in (("dso", 12), ("dso,sym", 40)):
        report = subprocess.run(
            ["perf", "report", "-i", str(data), "--no-children", "--sort", sort, "--stdio",
             "--percent-limit", "0.3", "-q"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        print(f"| {sort:<70} | share | µs/call |\n|{'-' * 72}|------:|--------:|")
        for line in [x for x in report.splitlines() if x.strip()][:rows]:
            share, _, name = line.strip().partition("%")
            micros = float(share) / 100 * cpu_per_call * 1e6
            print(f"| {' '.join(name.split())[:70]:<70} | {share}% | {micros:7.1f} |")
        print()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    parser.add_argument("--native", action="store_true", help="sample C frames too (py-spy --native)")
    parser.add_argument("--cache", action="store_true", help="the response cache on: every call a hit")
    parser.add_argument("--tree", type=Path, help="the adapter of this tree (e.g. a work tree)")
    parser.add_argument("--envoy", action="store_true", help="behind Envoy (grpc.front = 'envoy')")
    parser.add_argument("--perf", action="store_true", help="Linux perf over the process tree, not py-spy")
    args = parser.parse_args()
    if args.native:
        NATIVE.append("--native")
    profile(args.seconds, args.concurrency, args.raw, args.cache, args.tree, args.envoy, args.perf)
