"""The peer bench's one table, the goal ratios under it, and the chart."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ADAPTER = "mesh-adapter"
CACHE = "mesh-adapter, cache hits"
VANGUARD = "vanguard-go"
CEILING = "grpc.aio ceiling"
FLOOR = "grpc.aio + aiohttp floor"
AIOHTTP = "aiohttp -> upstream"
HTTPX = "httpx(-aiohttp) -> upstream"
ENVOY = "mesh-adapter behind Envoy"
ENVOY_CACHE = "behind Envoy, cache hits"
GRPC_ARMS = (ADAPTER, CACHE, ENVOY, ENVOY_CACHE, VANGUARD, CEILING, FLOOR)
#: The adapter's fronts: (arm, its cache-hit arm, how the ratio rows name it).
FRONTS = ((ADAPTER, CACHE, "adapter"), (ENVOY, ENVOY_CACHE, "behind Envoy"))
HTTP_ARMS = (AIOHTTP, HTTPX)
ARMS = (*GRPC_ARMS, *HTTP_ARMS)


@dataclass
class Row:
    arm: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu: float  # share of its core the system under test used (1.0 = the whole core)
    errors: int = 0

    @property
    def per_core(self) -> float:
        return self.rps / self.cpu if self.cpu > 0 else float("nan")


def median_rows(runs: Sequence[Row]) -> Row:
    """The run with the median req/s (its own latencies and CPU, not a mix)."""
    ordered = sorted(runs, key=lambda r: r.rps)
    chosen = ordered[(len(ordered) - 1) // 2]
    return Row(**{**asdict(chosen), "errors": sum(r.errors for r in runs)})


def median_events(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The median of each events figure over ``runs`` (the throughput ratio as the
    median of each run's own ratio); every run's figures stay under ``"runs"``.

    One run's p99 can be a single stall of the broker or of this shared machine, so the
    goals are judged on the median of several, as the unary rows are."""
    merged: dict[str, Any] = {
        key: statistics.median(run[key] for run in runs)
        for key, value in runs[0].items()
        if isinstance(value, int | float)
    }
    merged["rate_ratio"] = statistics.median(run["adapter_rate"] / run["raw_rate"] for run in runs)
    merged["runs"] = list(runs)
    return merged


def table(rows: Sequence[Row]) -> str:
    lines = [
        f"| {'arm':<28} | {'conc':>4} | {'req/s':>7} | {'p50 ms':>7} | {'p99 ms':>7} | "
        f"{'CPU':>5} | {'req/s per core':>14} |",
        f"|{'-' * 30}|{'-' * 5}:|{'-' * 8}:|{'-' * 8}:|{'-' * 8}:|{'-' * 6}:|{'-' * 15}:|",
    ]
    for r in rows:
        flag = f" ({r.errors} errors)" if r.errors else ""
        lines.append(
            f"| {r.arm + flag:<28} | {r.concurrency:>4} | {r.rps:>7.0f} | {r.p50_ms:>7.2f} | "
            f"{r.p99_ms:>7.2f} | {r.cpu:>5.0%} | {r.per_core:>14.0f} |"
        )
    return "\n".join(lines)


def _find(rows: Sequence[Row], arm: str, c: int) -> Row | None:
    return next((r for r in rows if r.arm == arm and r.concurrency == c), None)


def ratios(rows: Sequence[Row], events: dict[str, Any] | None) -> list[tuple[str, float, str, bool | None]]:
    """(what, value, goal, met) for every goal of issue 11 the rows can answer."""
    out: list[tuple[str, float, str, bool | None]] = []
    levels = sorted({r.concurrency for r in rows})
    for arm, cache_arm, name in FRONTS:
        for c in (lv for lv in levels if lv > 1):
            adapter, ceiling, vanguard, cache = (
                _find(rows, a, c) for a in (arm, CEILING, VANGUARD, cache_arm)
            )
            if adapter and ceiling:
                if arm == ADAPTER:
                    v = adapter.rps / ceiling.rps
                    out.append((f"adapter / ceiling, req/s (reference), c={c}", v, ">= 0.5", v >= 0.5))
                v = adapter.per_core / ceiling.per_core
                out.append((f"{name} / ceiling, per core, c={c}", v, ">= 0.5", v >= 0.5))
            if adapter and vanguard:
                v = adapter.per_core / vanguard.per_core
                out.append((f"{name} / vanguard-go, per core, c={c}", v, ">= 0.6", v >= 0.6))
            floor = _find(rows, FLOOR, c)
            if adapter and floor and arm == ADAPTER:
                v = adapter.per_core / floor.per_core
                out.append((f"adapter / floor, per core, c={c}", v, "(context)", None))
            if cache and ceiling:
                v = cache.per_core / ceiling.per_core
                what = "cache hits" if arm == ADAPTER else f"{name}, cache hits"
                out.append((f"{what} / ceiling, per core, c={c}", v, ">= 0.8", v >= 0.8))
        adapter, ceiling = _find(rows, arm, 1), _find(rows, CEILING, 1)
        if adapter and ceiling:
            p50 = adapter.p50_ms - ceiling.p50_ms
            p99 = adapter.p99_ms - ceiling.p99_ms
            where = "" if arm == ADAPTER else f", {name}"
            out.append((f"added latency p50 at c=1 (ms){where}", p50, "<= 0.35", p50 <= 0.35))
            out.append((f"added latency p99 at c=1 (ms){where}", p99, "<= 0.80", p99 <= 0.8))
    if events:
        v = events["rate_ratio"]  # from median_events: each run's own ratio, the median of them
        out.append(("events: spool+drainer / raw producer", v, ">= 0.6", v >= 0.6))
        bound = events["linger_ms"] + 15
        out.append(
            (
                f"events: receipt->ack p99 at {events['half_rate']:.0f}/s (ms)",
                events["ack_p99_ms"],
                f"<= {bound:g}",
                events["ack_p99_ms"] <= bound,
            )
        )
    return out


def ratio_table(items: Sequence[tuple[str, float, str, bool | None]]) -> str:
    lines = [
        f"| {'ratio':<52} | {'value':>7} | {'goal':<14} | met |",
        f"|{'-' * 54}|{'-' * 8}:|{'-' * 16}|-----|",
    ]
    lines += [
        f"| {w:<52} | {v:>7.2f} | {g:<14} | {'-' if m is None else 'yes' if m else 'NO':<3} |"
        for w, v, g, m in items
    ]
    return "\n".join(lines)


def events_table(events: dict[str, Any]) -> str:
    text = "\n".join(
        [
            f"| {'events path':<46} | {'events/s':>9} |",
            f"|{'-' * 48}|{'-' * 10}:|",
            f"| {'spool + drainer -> Kafka (adapter)':<46} | {events['adapter_rate']:>9.0f} |",
            f"| {'raw AIOKafkaProducer, same broker':<46} | {events['raw_rate']:>9.0f} |",
            f"| {'receipt -> ack p50 / p99 ms at half rate':<46} | "
            f"{events['ack_p50_ms']:>4.1f}/{events['ack_p99_ms']:<4.1f} |",
            f"| {'  the same, raw producer at that rate (floor)':<46} | "
            f"{events['raw_ack_p50_ms']:>4.1f}/{events['raw_ack_p99_ms']:<4.1f} |",
        ]
    )
    runs = events.get("runs", [])
    if len(runs) > 1:
        each = ", ".join(
            f"{run['adapter_rate'] / run['raw_rate']:.2f}x {run['ack_p99_ms']:.1f} ms"
            f" (floor {run['raw_ack_p99_ms']:.1f}{', raw first' if run.get('order') == 'raw first' else ''})"
            for run in runs
        )
        text += f"\n\n(median of {len(runs)} runs; each run's ratio and p99: {each})"
    return text


def chart(rows: Sequence[Row], path: Path, title: str, *, arms: Sequence[str] = ARMS) -> None:
    """Grouped bars per arm (in the order of ``arms``) and concurrency: req/s, req/s per
    core (the goals are per core) and p99."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = sorted({r.concurrency for r in rows})
    arms = [a for a in arms if any(r.arm == a for r in rows)]
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(17, 4.8))
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        xs = [j + i * width for j in range(len(levels))]
        found = [_find(rows, arm, c) for c in levels]
        left.bar(xs, [r.rps if r else 0 for r in found], width, label=arm)
        middle.bar(xs, [r.per_core if r else 0 for r in found], width, label=arm)
        right.bar(xs, [r.p99_ms if r else 0 for r in found], width, label=arm)
    for ax, label in (
        (left, "requests/s (higher is better)"),
        (middle, "requests/s per core = req/s / CPU (higher is better)"),
        (right, "p99 latency, ms (log; lower is better)"),
    ):
        ax.set_xticks([j + width * (len(arms) - 1) / 2 for j in range(len(levels))])
        ax.set_xticklabels([f"c={c}" for c in levels])
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    right.set_yscale("log")
    left.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
