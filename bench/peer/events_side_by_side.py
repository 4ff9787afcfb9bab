"""The events path of two revisions, round after round: the CPU an event costs the
spool + drainer + Kafka sink, and the rate, of this tree against ``--before REV``.

    BENCH_KAFKA_PORT=19392 python -m bench.peer.events_side_by_side --before HEAD~2

Why not one run of each: on this shared 2-core machine (the broker on it too) the
path's rate moves by ±30% between runs minutes apart, far more than a change
worth making. Each round runs both sides one after the other, in fresh
interpreters, in alternating order, each importing only its own tree (its own
``bench.spool_throughput`` harness too: the path as that revision wired it), and
prints both and their ratio; the median ratio is the figure. CPU is the whole
process's (loop, spool writer, checkpointer, producer), per event acknowledged.
Tracing is on as the adapter ships it (an SDK tracer provider, no exporter).
The broker must be running, as for ``bench.peer.events``.

With ``--paced RATE`` each side instead runs ``bench.peer.events``' paced run (its
sources at ``RATE`` records/s for ``--seconds``) and the figure is the receipt ->
Kafka ack p99 (p50 beside it): the latency goal's own measurement, A/B.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from bench.peer.processes import ROOT
from bench.peer.side_by_side import own_tree, work_tree

# Runs in the side's own tree (``python -c``: nothing of this checkout on its path).
_ONE_SIDE = """
import asyncio, json, sys, tempfile, time, uuid
from pathlib import Path
from adapter.config.settings import TelemetrySettings
try:
    from adapter.gc_tuning import tune_collector_for_serving
except ImportError:  # a tree from before the fortieth stop
    from adapter.gc_tuning import freeze_startup_heap as tune_collector_for_serving
from adapter.telemetry.tracing import build_tracer_provider
from bench import spool_throughput as st

seconds, count = float(sys.argv[1]), int(sys.argv[2])
build_tracer_provider(TelemetrySettings(otlp_enabled=False))

async def main():
    topic = f"bench-sbs-{uuid.uuid4().hex[:8]}"
    records = st.make_records(topic, count)
    tune_collector_for_serving()
    await st.topic_admin("create", topic)
    try:
        with tempfile.TemporaryDirectory(prefix="events-sbs-") as tmp:
            began = time.process_time()
            result = await st.bench_end_to_end(Path(tmp), records, seconds)
            cpu = time.process_time() - began
    finally:
        await st.topic_admin("delete", topic)
    print(json.dumps({"events": result.events, "rate": result.events / result.seconds,
                      "cpu_us": cpu / max(result.events, 1) * 1e6}))

asyncio.run(main())
"""

# The paced run of ``bench.peer.events`` at a fixed rate, in the side's own tree.
_ONE_PACED_SIDE = """
import asyncio, json, sys, tempfile, uuid
from pathlib import Path
from adapter.config.settings import TelemetrySettings
try:
    from adapter.gc_tuning import tune_collector_for_serving
except ImportError:  # a tree from before the fortieth stop
    from adapter.gc_tuning import freeze_startup_heap as tune_collector_for_serving
from adapter.telemetry.tracing import build_tracer_provider
from bench import spool_throughput as st
from bench.peer import events

seconds, rate = float(sys.argv[1]), float(sys.argv[2])
build_tracer_provider(TelemetrySettings(otlp_enabled=False))

async def main():
    topic = f"bench-sbs-{uuid.uuid4().hex[:8]}"
    records = st.make_records(topic, int(rate * seconds) + 1_000)
    tune_collector_for_serving()
    await st.topic_admin("create", topic)
    try:
        with tempfile.TemporaryDirectory(prefix="events-sbs-") as tmp:
            latencies = await events.paced(Path(tmp), records, rate, seconds)
    finally:
        await st.topic_admin("delete", topic)
    print(json.dumps({"p50_ms": events.quantile(latencies, 0.5) * 1e3,
                      "p99_ms": events.quantile(latencies, 0.99) * 1e3, "acked": len(latencies)}))

asyncio.run(main())
"""


def one_side(tree: Path, script: str, seconds: float, argument: float) -> dict[str, float]:
    """``script`` (one of the sides above) run in ``tree``'s own tree; its JSON figures."""
    done = subprocess.run(
        [sys.executable, "-c", script, str(seconds), str(argument)],
        cwd=ROOT, env={**os.environ, **own_tree(tree)}, capture_output=True, text=True, check=False,
        timeout=120 + 6 * seconds,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"the side in {tree} failed:\n{done.stderr[-4000:]}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


Figures = dict[str, float]


def alternating(
    before_rev: str, rounds: int, script: str, seconds: float, argument: float
) -> Iterator[tuple[int, str, Figures, Figures]]:
    """Both sides, round after round, in alternating order: ``(round, first, before, after)``."""
    with work_tree(before_rev) as before:
        sides = {"before": before, "after": ROOT}
        for round_ in range(1, rounds + 1):
            order = ["before", "after"] if round_ % 2 else ["after", "before"]
            got = {side: one_side(sides[side], script, seconds, argument) for side in order}
            yield round_, order[0], got["before"], got["after"]


def main() -> int:
    smoke = os.environ.get("BENCH_SMOKE") == "1"
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", default="HEAD", help="the revision to compare this tree with")
    parser.add_argument("--rounds", type=int, default=1 if smoke else 5)
    parser.add_argument("--seconds", type=float, default=1.0 if smoke else 8.0, help="each side's run")
    parser.add_argument("--records", type=int, default=20_000 if smoke else 300_000)
    parser.add_argument(
        "--paced", type=float, metavar="RATE", help="compare receipt -> ack latency at RATE records/s"
    )
    args = parser.parse_args()
    if args.paced is not None:
        return compare_paced(args.before, args.rounds, args.seconds, args.paced)
    ratios: list[float] = []
    rate_ratios: list[float] = []
    for round_, first, b, a in alternating(args.before, args.rounds, _ONE_SIDE, args.seconds, args.records):
        ratios.append(a["cpu_us"] / b["cpu_us"])
        rate_ratios.append(a["rate"] / b["rate"])
        print(
            f"round {round_}: before {b['rate']:7.0f} events/s {b['cpu_us']:6.1f} us/event   "
            f"after {a['rate']:7.0f} events/s {a['cpu_us']:6.1f} us/event   "
            f"({first} first)",
            flush=True,
        )
    print(
        f"CPU per event, after / before {statistics.median(ratios):.3f} "
        f"(rounds {min(ratios):.3f}-{max(ratios):.3f}); "
        f"rate, after / before {statistics.median(rate_ratios):.3f} "
        f"(rounds {min(rate_ratios):.3f}-{max(rate_ratios):.3f})"
    )
    return 0


def compare_paced(before_rev: str, rounds: int, seconds: float, rate: float) -> int:
    """Receipt -> ack latency of both sides at ``rate``, round after round."""
    ratios: list[float] = []
    for round_, first, b, a in alternating(before_rev, rounds, _ONE_PACED_SIDE, seconds, rate):
        ratios.append(a["p99_ms"] / b["p99_ms"])
        print(
            f"round {round_}: before p50 {b['p50_ms']:5.2f} p99 {b['p99_ms']:6.2f} ms   "
            f"after p50 {a['p50_ms']:5.2f} p99 {a['p99_ms']:6.2f} ms   ({first} first)",
            flush=True,
        )
    print(
        f"receipt -> ack p99 at {rate:.0f}/s, after / before {statistics.median(ratios):.3f} "
        f"(rounds {min(ratios):.3f}-{max(ratios):.3f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
