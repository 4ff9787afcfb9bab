"""Draws docs/img/operator-view.png: the panels of docs/grafana/mesh-adapter.json,
from ``/metrics`` samples of a running ``make run`` (Grafana itself does not
install from the package sources this project may use).

While it samples, it drives a little traffic so the panels have something to
show: gRPC calls (ListDevices, some cache hits; GetAlert of missing alerts, so
NOT_FOUND) and simulator events (alerts pushed over the WebSocket).

    make run                      # in one terminal
    .venv/bin/python scripts/operator_chart.py --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import time
from collections import defaultdict
from pathlib import Path

import aiohttp
import grpc
from openframe.v1 import alerts_pb2, alerts_pb2_grpc, devices_pb2, devices_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
Sample = dict[str, dict[tuple[tuple[str, str], ...], float]]


async def scrape(http: aiohttp.ClientSession, url: str) -> Sample:
    async with http.get(url) as answer:
        text = await answer.text()
    out: Sample = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name][tuple(sorted(s.labels.items()))] = s.value
    return out


async def traffic(target: str, sim: str, stop: asyncio.Event) -> None:
    async with grpc.aio.insecure_channel(target) as channel, aiohttp.ClientSession() as http:
        devices = devices_pb2_grpc.DeviceServiceStub(channel)
        alerts = alerts_pb2_grpc.AlertServiceStub(channel)
        n = 0
        while not stop.is_set():
            n += 1
            await devices.ListDevices(devices_pb2.ListDevicesRequest(page_size=10), timeout=10)
            if n % 3 == 0:
                with contextlib.suppress(grpc.aio.AioRpcError):  # NOT_FOUND: the error series
                    await alerts.GetAlert(alerts_pb2.GetAlertRequest(alert_id=f"alt_none_{n}"), timeout=10)
            if n % 10 == 0:
                await http.post(f"{sim}/_sim/events", json={"kind": "alert", "count": 5})
            await asyncio.sleep(0.05)


def rate(
    series: list[tuple[float, Sample]], name: str, match: dict[str, str]
) -> tuple[list[float], list[float]]:
    def total(sample: Sample) -> float:
        return sum(
            v for labels, v in sample.get(name, {}).items() if all((k, m) in labels for k, m in match.items())
        )

    xs, ys = [], []
    for (t0, a), (t1, b) in itertools.pairwise(series):
        xs.append(t1 - series[0][0])
        ys.append(max(0.0, total(b) - total(a)) / (t1 - t0))
    return xs, ys


def gauge(
    series: list[tuple[float, Sample]], name: str, match: dict[str, str]
) -> tuple[list[float], list[float]]:
    xs = [t - series[0][0] for t, _ in series]
    ys = [
        sum(v for labels, v in s.get(name, {}).items() if all((k, m) in labels for k, m in match.items()))
        for _, s in series
    ]
    return xs, ys


def quantile(series: list[tuple[float, Sample]], q: float) -> tuple[list[float], list[float]]:
    """The q-quantile of rpc.server.duration over each interval, from the histogram buckets."""
    name = "rpc_server_duration_milliseconds_bucket"
    xs, ys = [], []
    for (_, a), (t1, b) in itertools.pairwise(series):
        buckets: dict[float, float] = defaultdict(float)
        for labels, value in b.get(name, {}).items():
            le = float(dict(labels)["le"])
            buckets[le] += value - a.get(name, {}).get(labels, 0.0)
        if not buckets or buckets[float("inf")] <= 0:
            continue
        want, previous_le, previous_count = q * buckets[float("inf")], 0.0, 0.0
        for le in sorted(buckets):
            if buckets[le] >= want:
                if le == float("inf"):
                    value = previous_le
                else:  # linear inside the bucket, as Prometheus' histogram_quantile does
                    inside = buckets[le] - previous_count
                    value = previous_le + (le - previous_le) * (
                        (want - previous_count) / inside if inside else 1
                    )
                xs.append(t1 - series[0][0])
                ys.append(value)
                break
            previous_le, previous_count = le, buckets[le]
    return xs, ys


def draw(series: list[tuple[float, Sample]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5))
    fig.suptitle("mesh-adapter: operator's view (docs/grafana/mesh-adapter.json), from /metrics of make run")
    ax = axes[0][0]
    for method, code in (("ListDevices", "0"), ("GetAlert", "5")):
        ax.plot(
            *rate(
                series,
                "rpc_server_duration_milliseconds_count",
                {"rpc_method": method, "rpc_grpc_status_code": code},
            ),
            label=f"{method} code={code}",
        )
    ax.set_title("RPC rate by method and code (/s)")
    ax.legend()
    ax = axes[0][1]
    for q in (0.5, 0.99):
        ax.plot(*quantile(series, q), label=f"p{int(q * 100)}")
    ax.set_title("RPC latency (ms)")
    ax.legend()
    ax = axes[0][2]
    ax.plot(*rate(series, "http_client_request_duration_seconds_count", {}), label="upstream requests/s")
    ax.plot(
        *rate(series, "meshadapter_upstream_cache_lookups_total", {"result": "hit"}), label="cache hits/s"
    )
    ax.set_title("Upstream requests and cache hits (/s)")
    ax.legend()
    ax = axes[1][0]
    ax.plot(
        *gauge(
            series, "meshadapter_upstream_rate_limit_remaining", {"upstream": "openframe", "quota": "rest"}
        ),
        label="openframe",
    )
    ax.plot(
        *gauge(
            series, "meshadapter_upstream_rate_limit_remaining", {"upstream": "octospine", "quota": "rest"}
        ),
        label="octospine",
    )
    ax.set_title("Vendor quota remaining (requests)")
    ax.legend()
    ax = axes[1][1]
    ax.plot(*gauge(series, "meshadapter_spool_depth", {}), label="spool depth")
    ax.plot(*rate(series, "meshadapter_delivery_delivered_total", {}), label="delivered/s")
    ax.set_title("Event spool and delivery")
    ax.legend()
    ax = axes[1][2]
    for upstream in ("openframe", "octospine"):
        ax.step(
            *gauge(series, "meshadapter_websocket_state", {"upstream": upstream, "state": "streaming"}),
            label=f"{upstream} streaming",
        )
    ax.set_ylim(-0.1, 1.1)
    ax.set_title("WebSocket streams (1 = streaming)")
    ax.legend()
    for row in axes:
        for each in row:
            each.set_xlabel("s")
            each.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--metrics", default="http://127.0.0.1:9464/metrics")
    parser.add_argument("--grpc", default="127.0.0.1:50051")
    parser.add_argument("--simulator", default="http://127.0.0.1:8081")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "operator-view.png")
    args = parser.parse_args()
    stop = asyncio.Event()
    driver = asyncio.create_task(traffic(args.grpc, args.simulator, stop))
    series: list[tuple[float, Sample]] = []
    async with aiohttp.ClientSession() as http:
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            series.append((time.monotonic(), await scrape(http, args.metrics)))
            await asyncio.sleep(args.every)
    stop.set()
    await driver
    draw(series, args.out)


if __name__ == "__main__":
    asyncio.run(main())
