"""``helper_threads = "batch"`` against ``"normal"``, in one adapter process: what
the scheduling policy of the threads beside the event loop does to a call's CPU.

    python -m bench.peer.helper_threads [--front envoy | --ceiling] [--concurrency 16] [--rounds 4]

``side_by_side`` cannot measure this: it runs two adapters on one core at once, so
each loop is preempted by the other process whatever its own threads' policy. Here
one adapter runs alone on its core (``helper_threads = "normal"``, pinned, the
compiled upstream and ghz on the other core, as ``python -m bench.peer`` runs it)
and the bench itself switches its threads between rounds: every thread of the
process tree but the busiest (the event loop's, found by its CPU time in a first
round) to ``SCHED_BATCH``, then back to ``SCHED_OTHER``, alternating which comes
first. Each round prints req/s, CPU a call, p50 / p99 and the loop thread's
involuntary context switches a call; the medians of the ratios end it.
``--ceiling`` does the same to the peer bench's plain grpc.aio ceiling: what the policy
would give any grpc.aio server, so the adapter's ratio to the ceiling can be read
against a ceiling that has it too.
"""

from __future__ import annotations

import argparse
import os
import statistics

from bench.peer.__main__ import BODY, adapter_env, build, ghz, wait_serving
from bench.peer.processes import python, started, tree_thread_times
from bench.ports import listen_port

Thread = tuple[int, int]  # (process, thread)


def _threads(root: int) -> dict[Thread, tuple[float, int]]:
    """Each thread of ``root``'s tree: its CPU seconds and involuntary switches."""
    return {thread: (times.cpu, times.involuntary) for thread, times in tree_thread_times(root).items()}


def _set_policy(root: int, loop: Thread, policy: int) -> None:
    for thread in _threads(root):
        if thread != loop:
            try:
                os.sched_setscheduler(thread[1], policy, os.sched_param(0))
            except OSError:
                continue  # ended meanwhile


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--front", choices=("grpcio", "envoy"), default="grpcio")
    parser.add_argument("--ceiling", action="store_true", help="the plain grpc.aio ceiling, not the adapter")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    tools = build()
    with (
        started("upstream", [str(tools / "upstream"), "-body", str(BODY)], cpu=1) as up,
        started("otlpsink", [str(tools / "otlpsink")], cpu=1) as otlp,
    ):
        port = listen_port()
        env = adapter_env(f"http://{up.address}", port, cache=False, otlp=otlp.address)
        env |= {"MESH_HELPER_THREADS": "normal", "MESH_GRPC__FRONT": args.front}
        address = f"127.0.0.1:{port}"
        if args.ceiling:  # it prints its address when it listens
            ceiling = python("-m", "bench.peer.ceiling", "--body", str(BODY))
            measured = started("grpc.aio ceiling", ceiling, cpu=0)
        else:
            adapter = python("-m", "adapter")
            measured = started("mesh-adapter", adapter, cpu=0, ready="", env=env, address=address)
        with measured as arm:
            if not args.ceiling:  # the ceiling serves no health; started() waited for its line
                wait_serving(arm)
            before = _threads(arm.pid)
            ghz(tools, arm, args.concurrency, 2.0, 1)  # warm up, and find the loop's thread
            after = _threads(arm.pid)
            loop = max((t for t in after if t in before), key=lambda t: after[t][0] - before[t][0])
            what = "the grpc.aio ceiling" if args.ceiling else f"{args.front} front"
            print(f"{what}, c={args.concurrency}; the event loop's thread: {loop[1]}")
            ratios: dict[str, list[float]] = {"req/s": [], "CPU a call": [], "p50": [], "p99": []}
            for round_ in range(1, args.rounds + 1):
                seen = {}
                for policy in (os.SCHED_OTHER, os.SCHED_BATCH)[:: 1 if round_ % 2 else -1]:
                    _set_policy(arm.pid, loop, policy)
                    switches = _threads(arm.pid)[loop][1]
                    row = ghz(tools, arm, args.concurrency, args.seconds, 1)
                    # The measured run's CPU (ghz's half-second warm-up before it is not).
                    per_call = row.cpu / row.rps * 1e6
                    calls = row.rps * (args.seconds + 0.5)  # the switches count the warm-up's too
                    preempted = (_threads(arm.pid)[loop][1] - switches) / calls
                    name = "batch " if policy == os.SCHED_BATCH else "normal"
                    seen[name] = (row.rps, per_call, row.p50_ms, row.p99_ms)
                    print(f"round {round_} {name} {row.rps:7.0f} req/s {per_call:5.0f} us/call "
                          f"p50 {row.p50_ms:6.2f} p99 {row.p99_ms:6.2f} ms, "
                          f"loop preempted {preempted:4.2f}/call", flush=True)  # fmt: skip
                for i, key in enumerate(ratios):
                    ratios[key].append(seen["batch "][i] / seen["normal"][i])
            _set_policy(arm.pid, loop, os.SCHED_OTHER)
    print("batch / normal, medians of the rounds: " + ", ".join(
        f"{key} {statistics.median(v):.3f}" for key, v in ratios.items()))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
