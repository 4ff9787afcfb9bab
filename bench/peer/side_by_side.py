"""Two versions of the adapter measured at the same time, on the same core: what a
change does to the CPU a call costs, on a machine whose speed drifts.

    python -m bench.peer.side_by_side --before REV [--after DIR] [--cache] [--rounds 6] [--front envoy]
    python -m bench.peer.side_by_side --before REV --latency [--concurrency 1]

Runs one after the other cannot show a 10% change on a shared virtual machine:
between two runs a minute apart its speed moved by up to 2x in this project's
measurements (steal time from other guests). Here both adapters run at once,
pinned to the same core, each under its own ghz (same concurrency, one
connection) against the peer bench's compiled upstream, exporting over OTLP to
its sink, as ``python -m bench.peer`` runs its adapter arm. Whatever slows the
machine slows both. Each round prints each side's CPU per call (its process's
user + system time over the calls it answered) and the ratio after / before; the
median of the rounds' ratios is the result. A/A runs (the same code on both
sides, ``--before HEAD``) gave ratios of 0.98-1.01: the method's resolution.

``--latency`` compares latency instead (issue 11's goals at c=1): both adapters
run, pinned to the same core, but ghz calls one at a time (two at once would
measure how they wait for each other), in an order that alternates between rounds;
each round prints each side's p50 and p99, and the result is the median of each.

``--before`` is a git revision, checked out into a temporary work tree; ``--after``
a directory (default: this checkout, with its uncommitted changes). Each side
imports only its own tree (``PYTHONSAFEPATH``: ``python -m`` would otherwise put
the working directory ahead of ``PYTHONPATH``, and both sides would run the same
code). Both share this checkout's virtualenv, so a change of dependencies is not
what this measures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.peer.__main__ import BODY, adapter_env, build, ghz_argv, wait_serving
from bench.peer.processes import ROOT, Started, started, tree_cpu_seconds
from bench.ports import listen_port


@contextlib.contextmanager
def work_tree(revision: str) -> Iterator[Path]:
    """``revision`` checked out (with its generated stubs, which are committed)."""
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as parent:
        tree = Path(parent) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), revision], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
        try:
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False,
                           capture_output=True)  # fmt: skip


def own_tree(tree: Path) -> dict[str, str]:
    """The environment that makes a Python started anywhere import ``tree``'s code."""
    return {"PYTHONPATH": f"{tree}:{tree / 'generated'}", "PYTHONSAFEPATH": "1"}


def ghz(
    tools: Path, address: str, concurrency: int, seconds: float, cpu: int, out: list[dict[str, Any]]
) -> None:
    argv = ghz_argv(tools, address, concurrency, seconds, cpu)
    out.append(json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout))


def latencies(tools: Path, arms: dict[str, Started], args: argparse.Namespace) -> dict[str, list[float]]:
    """p50 and p99 of each side, one side at a time (``--latency``); the p99s returned."""
    p50: dict[str, list[float]] = {name: [] for name in arms}
    p99: dict[str, list[float]] = {name: [] for name in arms}
    for round_ in range(args.rounds + 1):  # round 0 warms both up
        seconds = args.seconds if round_ else 1.0
        names = list(arms) if round_ % 2 else list(reversed(arms))
        line = []
        for name in names:
            out: list[dict[str, Any]] = []
            ghz(tools, arms[name].address, args.concurrency, seconds, args.load_cpu, out)
            latency = {p["percentage"]: p["latency"] / 1e6 for p in out[0].get("latencyDistribution") or []}
            if round_:
                p50[name].append(latency[50])
                p99[name].append(latency[99])
                line.append(f"{name} p50 {latency[50]:.3f} p99 {latency[99]:.3f} ms")
        if round_:
            print(f"round {round_}: {'   '.join(line)}", flush=True)
    for name in arms:
        print(f"{name}: p50 {statistics.median(p50[name]):.3f} ms, p99 {statistics.median(p99[name]):.3f} ms "
              f"(medians of {args.rounds} rounds)")  # fmt: skip
    return p99


def measure(trees: dict[str, Path], args: argparse.Namespace) -> dict[str, list[float]]:
    tools = build()
    per_call: dict[str, list[float]] = {name: [] for name in trees}
    with contextlib.ExitStack() as stack:
        up = stack.enter_context(
            started("upstream", [str(tools / "upstream"), "-body", str(BODY)], cpu=args.load_cpu)
        )
        otlp = stack.enter_context(started("otlpsink", [str(tools / "otlpsink")], cpu=args.load_cpu)).address
        arms: dict[str, Started] = {}
        for name, tree in trees.items():
            port = listen_port()
            env = adapter_env(f"http://{up.address}", port, cache=args.cache, otlp=otlp) | own_tree(tree)
            env["MESH_GRPC__FRONT"] = args.front
            arms[name] = stack.enter_context(
                started(name, [sys.executable, "-m", "adapter"], cpu=args.sut_cpu, ready="", env=env,
                        address=f"127.0.0.1:{port}")
            )  # fmt: skip
            wait_serving(arms[name])
        if args.latency:
            return latencies(tools, arms, args)
        for round_ in range(args.rounds + 1):  # round 0 warms both up
            seconds = args.seconds if round_ else 1.0
            results: dict[str, list[dict[str, Any]]] = {name: [] for name in arms}
            cpu_before = {name: tree_cpu_seconds(arm.pid) for name, arm in arms.items()}
            load = (args.concurrency, seconds, args.load_cpu)
            threads = [
                threading.Thread(target=ghz, args=(tools, arm.address, *load, results[name]))
                for name, arm in arms.items()
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if not round_:
                continue
            line = []
            for name, arm in arms.items():
                [result] = results[name]
                answered = result.get("statusCodeDistribution", {}).get("OK", 0)
                if not answered:
                    raise SystemExit(f"{name} answered no call: {result.get('errorDistribution')}")
                used = tree_cpu_seconds(arm.pid) - cpu_before[name]
                per_call[name].append(used / answered * 1e6)
                line.append(f"{name} {answered / seconds:7.0f} req/s {per_call[name][-1]:6.0f} us/call")
            ratio = per_call["after"][-1] / per_call["before"][-1]
            print(f"round {round_}: {'   '.join(line)}   after/before {ratio:.3f}", flush=True)
    return per_call


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="git revision")
    parser.add_argument("--after", type=Path, default=ROOT, help="a tree (default: this checkout)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=None, help="default 16 (1 with --latency)")
    parser.add_argument("--latency", action="store_true", help="p50 / p99, one side at a time")
    parser.add_argument("--cache", action="store_true", help="every call a cache hit")
    parser.add_argument(
        "--front", choices=("grpcio", "envoy"), default="grpcio", help="grpc.front of both (CPU of the tree)"
    )
    parser.add_argument("--sut-cpu", type=int, default=0)
    parser.add_argument("--load-cpu", type=int, default=1)
    args = parser.parse_args()
    if args.concurrency is None:
        args.concurrency = 1 if args.latency else 16
    with work_tree(args.before) as before:
        per_call = measure({"before": before, "after": args.after.resolve()}, args)
    ratios = [a / b for a, b in zip(per_call["after"], per_call["before"], strict=True)]
    if args.latency:
        print(f"\np99 after / before, median of {args.rounds} rounds: {statistics.median(ratios):.3f} "
              f"(rounds {min(ratios):.3f}-{max(ratios):.3f}), c={args.concurrency}")  # fmt: skip
        return 0
    print(
        f"\nCPU per call, median of {args.rounds} rounds: before ({args.before}) "
        f"{statistics.median(per_call['before']):.0f} us, after ({args.after}) "
        f"{statistics.median(per_call['after']):.0f} us; after / before {statistics.median(ratios):.3f} "
        f"(rounds {min(ratios):.3f}-{max(ratios):.3f}){', cache hits' if args.cache else ''}, "
        f"front {args.front}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
