"""Where the microseconds of one GetDevice go: the adapter as the peer bench runs
it (pinned, against the compiled upstream, driven by ghz), sampled by py-spy, each
sample charged to the innermost frame of a known part of the call.

    python -m bench.peer.profile [--seconds 20] [--concurrency 16] [--raw out.txt] [--cache]
                                 [--envoy] [--perf]

Prints a table: part | share of the samples | µs of CPU per call (the share of
the process's measured CPU time per call; grpc's C-core work lands in the Python
frames that wait for it). ``--envoy`` profiles the adapter behind Envoy as
``python -m bench.peer.front`` runs it: there the Python parts share the time
py-spy saw in Python frames, and Envoy's own C++ thread and the kernel are the
"not in Python frames" row. py-spy is a dev dependency (``pip install py-spy``);
it needs ptrace rights (root, or ``kernel.yama.ptrace_scope=0``).

``--perf`` samples the whole process tree with Linux ``perf`` instead (every thread,
C and kernel frames included, Python 3.11's frames as the interpreter's own) and prints
the CPU per call by shared object, then the hottest symbols: the view py-spy cannot
give of Envoy, pyvoy, grpc core and the kernel. It needs ``perf`` and
``kernel.perf_event_paranoid`` <= 1 (or root).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.peer.__main__ import BODY, adapter_env, build, ghz, wait_serving
from bench.peer.processes import Started, process_tree, python, started, tree_cpu_seconds
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
                 "--output", str(out), "--full-filenames", *(NATIVE or ["--nonblocking"]),
                 *(["--subprocesses"] if envoy else [])],  # behind Envoy the adapter is its child
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1.0)  # py-spy attaches
            cpu_before = tree_cpu_seconds(arm.pid)
            row = ghz(tools, arm, concurrency, seconds, 1)
            cpu_per_call = (tree_cpu_seconds(arm.pid) - cpu_before) / (row.rps * seconds)
            spy_proc.send_signal(2)  # SIGINT: py-spy writes its output and exits
            spy_proc.wait(30)
    samples: collections.Counter[str] = collections.Counter()
    unreadable = 0
    # py-spy can write a stack it caught mid-change as a broken line (a frame without
    # its name, bytes that are not text, no count): counted and left out.
    for line in out.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        # --subprocesses (behind Envoy) roots each stack at a "process ..." frame, and
        # samples Envoy's threads that run no Python: those are not Python's time.
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        if frames and count.isdigit():
            samples[part_of(frames)] += int(count)
        elif stack and count.isdigit():
            continue
        elif line:
            unreadable += 1
    total = sum(samples.values())
    what = ("GetDevice (cache hits)" if cache else "GetDevice") + (f" [{tree}]" if tree else "")
    what += " behind Envoy" if envoy else ""
    print(
        f"\n{what} at c={concurrency}, {row.rps:.0f} req/s, {row.cpu:.0%} of a core, "
        f"{cpu_per_call * 1e6:.0f} µs CPU per call; {total} py-spy samples ({out})"
        f"{f'; {unreadable} unreadable lines left out' if unreadable else ''}\n"
    )
    # Behind Envoy, CPU outside Python frames (Envoy's C++ worker, the kernel) is a share
    # py-spy cannot see: the Python parts get the time py-spy saw (samples / rate), the
    # rest its own row. On grpc.aio every part is scaled to the whole, as before.
    in_python = min(cpu_per_call, total / _RATE / (row.rps * seconds)) if envoy else cpu_per_call
    print(f"| {'part of the call':<36} | {'samples':>7} | {'µs/call':>7} |")
    print(f"|{'-' * 38}|{'-' * 8}:|{'-' * 8}:|")
    for part, n in samples.most_common():
        print(f"| {part:<36} | {n / total:>7.1%} | {n / total * in_python * 1e6:>7.0f} |")
    if envoy:
        outside = "not in Python frames (Envoy, kernel)"
        print(f"| {outside:<36} | {'':>7} | {(cpu_per_call - in_python) * 1e6:>7.0f} |")


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
    cpu_before = tree_cpu_seconds(arm.pid)
    row = ghz(tools, arm, concurrency, seconds, 1)
    cpu_per_call = (tree_cpu_seconds(arm.pid) - cpu_before) / (row.rps * seconds)
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
