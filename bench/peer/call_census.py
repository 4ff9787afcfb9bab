"""How many functions a call runs on the adapter's event loop thread, counted.

    python -m bench.peer.call_census [--cache] [--calls 2000] [--concurrency 16] [--top 40]

The sampling profile (``bench.peer.profile``) says where time goes, but its rows
are estimates (py-spy charges a sample to the innermost Python frame, and C code
called from a frame to that frame), and they move with the machine. This counts
instead: the adapter runs as in the peer bench (the compiled upstream, spans and
metrics exported over OTLP to the sink), under :mod:`bench.peer.census_hook`,
which counts every Python function call and every C function call on the loop's
thread while ghz makes exactly ``--calls`` calls. The counts do not drift with the
machine, so a change to the call path shows in them exactly: what a cut removed,
and where the calls that are left are. A coroutine resumed after an ``await`` that
waited counts as a call again (so ``UpstreamMethodHandler.handle`` at 2.0 a call means
it waited once). Counting slows the adapter several times over: nothing is timed.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from bench.peer.__main__ import BODY, adapter_env, build, ghz_argv, wait_serving
from bench.peer.processes import ROOT, python, started
from bench.peer.profile import part_of
from bench.ports import listen_port

Row = tuple[str, str, bool, int]  # file, qualified name, a C function, calls


def _short(file: str) -> str:
    for prefix in ("site-packages/", f"{ROOT}/"):
        at = file.find(prefix)
        if at >= 0:
            return file[at + len(prefix) :]
    return Path(file).name if file.startswith("/") else file


def count_calls(*, cache: bool, calls: int, concurrency: int) -> list[Row]:
    """The census of ``calls`` GetDevice calls (each row: the calls of one function)."""
    tools = build()
    out = Path(tempfile.mkdtemp(prefix="call-census-")) / "calls.json"
    with (
        started("upstream", [str(tools / "upstream"), "-body", str(BODY)], cpu=1) as up,
        started("otlpsink", [str(tools / "otlpsink")], cpu=1) as otlp,
    ):
        port = listen_port()
        env = adapter_env(f"http://{up.address}", port, cache=cache, otlp=otlp.address)
        env["CENSUS_OUT"] = str(out)
        hooked = python("-m", "bench.peer.census_hook")
        with started("mesh-adapter", hooked, cpu=0, ready="", env=env, address=f"127.0.0.1:{port}") as arm:
            wait_serving(arm)
            # Warm: connections, caches, the first call's lazy imports are not a call's.
            subprocess.run(ghz_argv(tools, arm.address, concurrency, 0.5, 1), check=True, capture_output=True)
            os.kill(arm.pid, signal.SIGUSR1)
            time.sleep(0.5)  # the handler runs at the loop's next bytecode; the loop is idle
            done = subprocess.run(
                ghz_argv(tools, arm.address, concurrency, 0, 1, calls=calls),
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            answered = json.loads(done.stdout).get("statusCodeDistribution", {})
            if answered != {"OK": calls}:
                raise RuntimeError(f"expected {calls} OK answers, got {answered}")
            time.sleep(0.5)  # the last calls' after-reply work (spans ended, metrics recorded)
            os.kill(arm.pid, signal.SIGUSR1)
            deadline = time.monotonic() + 30
            while not out.exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("the adapter wrote no census")
                time.sleep(0.1)
    return [(file, name, c_function, n) for file, name, c_function, n in json.loads(out.read_text())]


def print_census(rows: list[Row], calls: int, top: int, title: str) -> None:
    python_calls = sum(n for _, _, c_function, n in rows if not c_function)
    c_calls = sum(n for _, _, c_function, n in rows if c_function)
    print(
        f"\n{title}: {python_calls / calls:.1f} Python function calls and {c_calls / calls:.1f} calls of C "
        f"functions a call on the event loop's thread ({calls} calls)\n"
    )
    parts: collections.Counter[tuple[str, bool]] = collections.Counter()
    for file, name, c_function, n in rows:
        parts[(part_of([f"{name} ({file})"]), c_function)] += n
    print(f"| {'part of the call (by the calling code for C)':<44} | Python a call | C a call |")
    print(f"|{'-' * 46}|--------------:|---------:|")
    for part in sorted({p for p, _ in parts}, key=lambda p: -(parts[(p, False)] + parts[(p, True)])):
        print(f"| {part:<44} | {parts[(part, False)] / calls:13.1f} | {parts[(part, True)] / calls:8.1f} |")
    print(f"\n| {'function (C functions marked [C], under their caller)':<90} | a call |")
    print(f"|{'-' * 92}|-------:|")
    for file, name, c_function, n in sorted(rows, key=lambda r: -r[3])[:top]:
        label = f"{'[C] ' if c_function else ''}{name} ({_short(file)})"
        print(f"| {label[:90]:<90} | {n / calls:6.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", action="store_true", help="every call a cache hit")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    rows = count_calls(cache=args.cache, calls=args.calls, concurrency=args.concurrency)
    title = f"GetDevice{' (cache hits)' if args.cache else ''} at c={args.concurrency}"
    print_census(rows, args.calls, args.top, title)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
