"""What the spool's SQLite side costs a record, alone on one thread: appends in
groups of 1-120 records (as the writer's group commits form them) with the
acknowledged records of earlier groups removed in the same transactions, into a
spool with the shipped dedupe window. The figure is the thread's CPU a record.

    python -m bench.spool_store_cost                   # this tree
    python -m bench.spool_store_cost --before HEAD~1   # side by side, alternating rounds

Why alone: in the adapter this work runs on the spool's writer thread, and what
of it holds the GIL (the Python side, and a statement's preparation and binding)
is taken from the event loop, so it shows up in the events path's CPU and
latency. Measured here without the loop and the broker, it is steady enough to
resolve a few percent on this shared machine (``bench.peer.events_side_by_side``
measures the whole path, and moves far more between rounds).
"""

from __future__ import annotations

import argparse
import os
import statistics

from bench.peer.events_side_by_side import alternating, one_side
from bench.peer.processes import ROOT

# Runs in the side's own tree (``python -c``): only what every revision has.
SIDE = """
import json, random, sys, tempfile, time
from pathlib import Path
from adapter.events.spool_store import SpoolStore
from bench import spool_throughput as st

count = int(float(sys.argv[2]))
rnd = random.Random(1)
records = st.make_records("bench-store", count)
with tempfile.TemporaryDirectory(prefix="store-cost-") as tmp:
    store = SpoolStore(Path(tmp) / "s.db", synchronous="normal", dedupe_window=200_000, clock=time.time)
    store.open()
    pending, done = [], 0
    began, wall = time.thread_time(), time.perf_counter()
    while done < count:
        group = records[done : done + rnd.randint(1, 120)]
        done += len(group)
        acked = pending[: rnd.randint(0, len(pending))]
        pending = pending[len(acked):]
        outcome = store.append_groups([(group, None)], max_records=10**9, max_bytes=2**50, delivered=acked)
        pending += [seq for seq, _, _ in outcome.stored]
    cpu, wall = time.thread_time() - began, time.perf_counter() - wall
    store.close()
print(json.dumps({"cpu_us": cpu / count * 1e6, "wall_us": wall / count * 1e6}))
"""


def main() -> int:
    smoke = os.environ.get("BENCH_SMOKE") == "1"
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", help="a revision to compare this tree with, side by side")
    parser.add_argument("--rounds", type=int, default=1 if smoke else 5)
    parser.add_argument("--records", type=int, default=3_000 if smoke else 60_000)
    args = parser.parse_args()
    print(f"{'path':<40} {'CPU us a record':>16} {'wall us':>9}")
    if args.before is None:
        for _ in range(args.rounds):
            got = one_side(ROOT, SIDE, 0.0, args.records)
            print(f"{'spool store, append + ack':<40} {got['cpu_us']:>16.2f} {got['wall_us']:>9.2f}")
        return 0
    ratios: list[float] = []
    for round_, first, before, after in alternating(args.before, args.rounds, SIDE, 0.0, args.records):
        ratios.append(after["cpu_us"] / before["cpu_us"])
        print(
            f"round {round_}: before {before['cpu_us']:6.2f}  after {after['cpu_us']:6.2f} us a record"
            f"  ({first} first)"
        )
    print(
        f"CPU a record, after / before {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
