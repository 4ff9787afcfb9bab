"""What the spool's SQLite side costs a record, alone on one thread: appends in
groups of 1-120 records (as the writer's group commits form them) with the
acknowledged records of earlier groups removed in the same transactions, into a
spool whose dedupe memory holds a full window of the shipped size (200,000), as
one that has run for a while does. The figures are the thread's CPU a record, the
bytes it wrote (the write-ahead log: the database file is written by checkpoints,
which this leaves to SQLite's automatic one), and how many times a commit gives the
GIL up (in the adapter the writer must win it back from the event loop each time:
GIL_STEPS in ``adapter/events/spool_store.py``), counted beside a thread that never
gives it back of its own accord.

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
import gc, json, random, statistics, sys, tempfile, time, uuid
from dataclasses import replace
from pathlib import Path
from adapter.events.spool_store import SpoolStore
from bench import spool_throughput as st

def written_bytes():  # what this process handed to write(2): the WAL, and checkpoints
    with open("/proc/self/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("wchar:"))

count, window = int(float(sys.argv[2])), 200_000
rnd = random.Random(1)
# Vendors' event ids are unrelated to each other: random ids, as uuid4s.
records = [replace(r, ce_id=str(uuid.uuid4())) for r in st.make_records("bench-store", count + 240)]
records, extra = records[:count], records[count:]
with tempfile.TemporaryDirectory(prefix="store-cost-") as tmp:
    store = SpoolStore(Path(tmp) / "s.db", synchronous="normal", dedupe_window=window, clock=time.time)
    store.open()
    # A spool that has run a while: its dedupe memory holds a full window.
    store.remember(["bench-store" + chr(0) + str(uuid.uuid4()) for _ in range(window)])
    # As the adapter freezes what it holds once started (adapter/gc_tuning.py): without it
    # the collector scanned the prebuilt records again and again, 8-14% of the thread's CPU.
    gc.collect()
    gc.freeze()
    pending, done = [], 0
    began, written = time.thread_time(), written_bytes()
    while done < count:
        group = records[done : done + rnd.randint(1, 120)]
        done += len(group)
        acked = pending[: rnd.randint(0, len(pending))]
        pending = pending[len(acked):]
        outcome = store.append_groups([(group, None)], max_records=10**9, max_bytes=2**50, delivered=acked)
        pending += [seq for seq, _, _ in outcome.stored]
    cpu, written = time.thread_time() - began, written_bytes() - written
    # The times a commit gives the GIL up (GIL_STEPS in spool_store.py): beside a thread
    # that never gives it back of its own accord, each release costs the commit one
    # switch interval, so its wall time counts them (steadier than any timing on this host).
    import threading
    sys.setswitchinterval(0.002)
    spinning = True
    def spin():
        while spinning:
            pass
    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    walls = []
    for n in range(15):  # 16 records appended, 8 acknowledged (a run): the drainer's usual
        group = [(extra[n * 16 : (n + 1) * 16], None)]
        start = time.perf_counter()
        outcome = store.append_groups(group, max_records=10**9, max_bytes=2**50, delivered=pending[:8])
        walls.append(time.perf_counter() - start)
        pending = pending[8:] + [seq for seq, _, _ in outcome.stored]
    spinning = False
    spinner.join()
    store.close()
releases = statistics.median(walls) / 0.002
print(json.dumps({"cpu_us": cpu / count * 1e6, "bytes": written / count, "releases": releases}))
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
    print(
        f"{'path':<30} {'CPU us a record':>16} {'bytes written a record':>23} {'GIL releases a commit':>22}"
    )
    if args.before is None:
        for _ in range(args.rounds):
            got = one_side(ROOT, SIDE, 0.0, args.records)
            print(
                f"{'spool store, append + ack':<30} {got['cpu_us']:>16.2f} {got['bytes']:>23,.0f}"
                f" {got['releases']:>22.1f}"
            )
        return 0
    ratios: list[float] = []
    for round_, first, before, after in alternating(args.before, args.rounds, SIDE, 0.0, args.records):
        ratios.append(after["cpu_us"] / before["cpu_us"])
        print(
            f"round {round_}: before {before['cpu_us']:6.2f} us {before['bytes']:6,.0f} B"
            f" {before['releases']:4.1f} releases   after {after['cpu_us']:6.2f} us"
            f" {after['bytes']:6,.0f} B {after['releases']:4.1f} releases  ({first} first)"
        )
    print(
        f"CPU a record, after / before {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
