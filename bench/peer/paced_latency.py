"""The adapter's latency at c=1 with its calls back to back, as the peer bench measures
issue 11's c=1 goal (ghz calls again as soon as an answer is in), and with the calls
paced further apart: is the added latency a queue behind the last call's work (the
telemetry recorded after each reply, grpc's completion events), or what one call
costs on a core that went cold since the last one?

    python -m bench.peer.paced_latency [--front envoy] [--rates 0,800,400] [--rounds 2]

The adapter runs as ``python -m bench.peer`` runs it (pinned to one core, the
compiled upstream and ghz on the other, OTLP to the sink). Each round measures every
rate (0: back to back) in turn, rotating which goes first; each line prints req/s,
p50 / p99 and the CPU a call; the medians per rate end it. A queue would make the
paced calls faster (nothing left to wait for); a cold core makes them slower.
"""

from __future__ import annotations

import argparse
import statistics

from bench.peer.__main__ import BODY, adapter_env, build, ghz, wait_serving
from bench.peer.processes import python, started
from bench.ports import listen_port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--front", choices=("grpcio", "envoy"), default="grpcio")
    parser.add_argument("--rates", default="0,800,400", help="calls a second (0: back to back)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    tools = build()
    seen: dict[int, list[tuple[float, float, float]]] = {rate: [] for rate in rates}
    with (
        started("upstream", [str(tools / "upstream"), "-body", str(BODY)], cpu=1) as up,
        started("otlpsink", [str(tools / "otlpsink")], cpu=1) as otlp,
    ):
        port = listen_port()
        env = adapter_env(f"http://{up.address}", port, cache=False, otlp=otlp.address)
        env["MESH_GRPC__FRONT"] = args.front
        adapter = python("-m", "adapter")
        with started("mesh-adapter", adapter, cpu=0, ready="", env=env, address=f"127.0.0.1:{port}") as arm:
            wait_serving(arm)
            ghz(tools, arm, 1, 2.0, 1)  # warm up
            print(f"{args.front} front, c=1")
            for round_ in range(1, args.rounds + 1):
                order = rates[(round_ - 1) % len(rates) :] + rates[: (round_ - 1) % len(rates)]
                for rate in order:
                    row = ghz(tools, arm, 1, args.seconds, 1, rps=rate)
                    cpu = row.cpu / row.rps * 1e6
                    seen[rate].append((row.p50_ms, row.p99_ms, cpu))
                    pace = f"{rate}/s" if rate else "as fast"
                    print(f"round {round_} {pace:>8} {row.rps:7.0f} req/s p50 {row.p50_ms:5.2f} "
                          f"p99 {row.p99_ms:5.2f} ms {cpu:5.0f} us/call", flush=True)  # fmt: skip
    for rate, rows in seen.items():
        p50, p99, cpu = (statistics.median(r[i] for r in rows) for i in range(3))
        pace = f"{rate}/s" if rate else "as fast"
        print(f"median {pace:>8} p50 {p50:5.2f} p99 {p99:5.2f} ms {cpu:5.0f} us/call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
