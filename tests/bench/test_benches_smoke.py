"""Every bench in bench/ runs once in its seconds-long smoke mode and prints a
well-formed table with every row it promises. Figures are not checked: benchmarks
are never timed assertions (their numbers live in docs/benchmarks.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import BENCHES
from bench.peer import report
from bench.peer.side_by_side import own_tree

pytest_plugins = ["tests.events.kafka_fixtures"]
# On one pytest-xdist worker, one after another: the side-by-side benches each add a git
# worktree of HEAD, and a bench's smoke run is a burst of CPU that needs no company.
pytestmark = pytest.mark.xdist_group("benches")

ROOT = Path(__file__).resolve().parents[2]
LEVELS = (1, 16, 64)

# Row labels each bench's table must show.
EXPECTED_ROWS = {
    "codec": ["decode 1 alert", "encode 1 alert", "decode 50-alert page", "encode 50-alert page"],
    "intake_tracing": ["tracing off", "one span per event (SDK", "one span per event (lean"],
    "span_cost": ["SDK spans (Tracer.start_span)", "lean spans (LeanTracer)"],
    "histogram_cost": ["SDK histograms (Histogram.record)", "lean histograms (series.record)"],
    "failure_log_cost": ["every failure logged", "repeated lines once per 10 s"],
    "graphql_overview": ["GraphQL: GetPipelineOverview", "REST: Get + ListTasks + ListAutos"],
    "adapter_vs_direct": [
        "direct httpx -> upstream",
        "gRPC -> adapter[aiohttp] -> upstream",
        "gRPC -> adapter[httpx] -> upstream",
        "gRPC -> adapter[aiohttp, cache hits] -> upstream",
    ],
    "caller_security": [
        "plaintext, no caller auth",
        "mTLS + policy",
        "mTLS + JWT + policy",
        "mTLS + JWT + policy + tenant + share",
    ],
    "spool_store_cost": ["spool store, append + ack"],
    "websocket_intake": [
        "websockets client, frames parsed (floor)",
        "WebSocketSource -> spool, tracing off",
        "WebSocketSource -> spool, a span per event",
    ],
    "large_payloads": [
        f"{payload}, on the {where}"
        for payload in (
            "bind CreateAlert, list items",
            "bind CreateAlert, map entries",
            "bind CreateAlert, within limit",
            "decode ListDevices page",
        )
        for where in ("loop", "worker")
    ],
    "spool_throughput": [
        "spool append, normal, 1/call",
        "spool append, full, 100/call",
        "spool(normal) + drainer -> Kafka",
        "KafkaSink.send_batch",
        "raw AIOKafkaProducer",
    ],
}


def run_smoke(name: str, kafka_port: int, timeout: float) -> str:
    env = {**os.environ, "BENCH_SMOKE": "1", "BENCH_KAFKA_PORT": str(kafka_port)}
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"bench.{name} failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    return done.stdout


def test_every_bench_is_covered() -> None:
    assert set(BENCHES) == {*EXPECTED_ROWS, "peer"}


@pytest.mark.kafka
@pytest.mark.parametrize("name", sorted(EXPECTED_ROWS))
def test_bench_smoke(name: str, kafka_bootstrap: str) -> None:
    out = run_smoke(name, int(kafka_bootstrap.rsplit(":", 1)[1]), timeout=150)
    for label in EXPECTED_ROWS[name]:
        assert re.search(rf"^{re.escape(label)}.*\d", out, re.M), f"no {label!r} row in:\n{out}"


def _table(out: str, first_header: str) -> list[list[str]]:
    """The rows of the markdown table whose first header cell is ``first_header``."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} "))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


@pytest.mark.kafka
@pytest.mark.timeout(900)  # the first run builds the Go programs and ghz (stamped after)
def test_peer_bench_smoke(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = run_smoke("peer", int(kafka_bootstrap.rsplit(":", 1)[1]), timeout=880)
    identical = re.search(r"^identical Device \(\d+ bytes\) from: (.+)$", out, re.M)
    assert identical is not None and set(identical.group(1).split("; ")) == set(report.GRPC_ARMS), out
    rows = _table(out, "arm")
    seen = {(r[0], int(r[1])) for r in rows}
    assert seen == {(arm, c) for arm in report.ARMS for c in LEVELS}, out
    for arm, conc, rps, p50, p99, cpu, per_core in rows:
        assert "errors" not in arm, out
        assert float(rps) > 0 and float(p50) > 0 and float(p99) >= float(p50), (arm, conc, out)
        assert 0 < int(cpu.rstrip("%")) <= 200 and float(per_core) > 0, (arm, conc, out)
    events = {r[0]: r[1] for r in _table(out, "events path")}
    assert float(events["spool + drainer -> Kafka (adapter)"]) > 0
    assert float(events["raw AIOKafkaProducer, same broker"]) > 0
    for row in ("receipt -> ack p50 / p99 ms at half rate", "the same, raw producer at that rate (floor)"):
        p50, p99 = map(float, events[row].split("/"))
        assert 0 < p50 <= p99, (row, out)
    ratios = {r[0] for r in _table(out, "ratio")}
    for c in (16, 64):
        assert f"adapter / ceiling, per core, c={c}" in ratios
        assert f"adapter / vanguard-go, per core, c={c}" in ratios
        assert f"cache hits / ceiling, per core, c={c}" in ratios
    assert {"added latency p50 at c=1 (ms)", "added latency p99 at c=1 (ms)"} <= ratios
    for c in (c for c in LEVELS if c > 1):  # the same goals for the adapter behind Envoy
        assert f"behind Envoy / ceiling, per core, c={c}" in ratios
        assert f"behind Envoy / vanguard-go, per core, c={c}" in ratios
        assert f"behind Envoy, cache hits / ceiling, per core, c={c}" in ratios
    assert "added latency p50 at c=1 (ms), behind Envoy" in ratios
    assert "events: spool+drainer / raw producer" in ratios
    chart = Path(re.search(r"^chart: (.+)$", out, re.M).group(1))  # type: ignore[union-attr]
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_side_imports_its_own_tree(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "adapter").mkdir(parents=True)
    (tree / "adapter" / "__init__.py").write_text("")
    found = subprocess.run(
        [sys.executable, "-c", "import adapter; print(adapter.__file__)"],
        cwd=ROOT, env={**os.environ, **own_tree(tree)}, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert found == str(tree / "adapter" / "__init__.py")


def _peer_tool(module: str, *args: str) -> str:
    """``python -m module *args`` to its end (exit 0), its output."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=880, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.mark.timeout(900)  # the first run builds the Go programs and ghz (stamped after)
def test_side_by_side_smoke() -> None:
    out = _peer_tool("bench.peer.side_by_side", "--before", "HEAD", "--rounds", "1", "--seconds", "1")
    assert re.search(r"^round 1: before +\d+ req/s +\d+ us/call +after +\d+ req/s +\d+ us/call", out, re.M)
    assert re.search(r"after / before \d+\.\d{3} \(rounds", out), out


@pytest.mark.timeout(900)  # the first run builds the Go programs and ghz (stamped after)
def test_helper_threads_bench_smoke() -> None:
    out = _peer_tool("bench.peer.helper_threads", "--rounds", "1", "--seconds", "1", "--concurrency", "4")
    for policy in ("normal", "batch "):
        row = rf"^round 1 {policy} +\d+ req/s +\d+ us/call p50 +[\d.]+ p99 +[\d.]+ ms, "
        row += r"loop preempted [\d.]+/call"
        assert re.search(row, out, re.M), out
    result = r"^batch / normal, medians of the rounds: req/s \d+\.\d{3}, CPU a call \d+\.\d{3}"
    assert re.search(result, out, re.M), out


@pytest.mark.timeout(900)  # the first run builds the Go programs and ghz (stamped after)
def test_call_census_smoke() -> None:
    out = _peer_tool("bench.peer.call_census", "--calls", "200", "--concurrency", "4", "--top", "1000")
    summary = r"calls of C functions a call on the event loop's thread \(200 calls\)"
    assert re.search(rf"^GetDevice at c=4: [\d.]+ Python function calls and [\d.]+ {summary}$", out, re.M), (
        out
    )
    # Every call ran the handler (at least once: a resumption after an await counts too)
    # and sent one upstream request.
    handle = re.search(
        r"^\| UpstreamMethodHandler\.handle \(adapter/server/handlers\.py\) +\| +([\d.]+) \|$", out, re.M
    )
    assert handle is not None and float(handle.group(1)) >= 1.0, out
    assert re.search(r"^\| upstream client \(adapter code\) +\| +[1-9][\d.]* \|", out, re.M), out


@pytest.mark.timeout(900)  # the first run builds the Go programs and ghz (stamped after)
def test_paced_latency_bench_smoke() -> None:
    out = _peer_tool("bench.peer.paced_latency", "--rounds", "1", "--seconds", "1", "--rates", "0,400")
    for pace in ("as fast", "400/s"):
        line = rf"^round 1 +{pace} +\d+ req/s p50 +[\d.]+ p99 +[\d.]+ ms +\d+ us/call$"
        assert re.search(line, out, re.M), out
        assert re.search(rf"^median +{pace} p50 +[\d.]+ p99 +[\d.]+ ms +\d+ us/call$", out, re.M), out


@pytest.mark.timeout(900)  # the first run builds the Go programs and installs pyvoy (stamped after)
def test_front_bench_smoke(tmp_path: Path) -> None:
    from bench.peer import front

    chart = tmp_path / "front.png"
    out = _peer_tool(
        "bench.peer.front", "--rounds", "1", "--seconds", "1", "--concurrency", "1,16", "--chart", str(chart)
    )
    identical = re.search(r"^identical Device \(\d+ bytes\) from: (.+)$", out, re.M)
    assert identical is not None and set(identical.group(1).split("; ")) == set(front.ARMS), out
    routed = f"{front.ADAPTER_ENVOY}: health Check and Watch (a stream) SERVING through Envoy from grpc.aio"
    assert routed in out.splitlines(), out
    assert re.search(
        r"^same NOT_FOUND \(message, rich details\) from both adapter arms: openframe ", out, re.M
    ), out
    rows = _table(out, "arm")
    assert {(r[0], int(r[1])) for r in rows} == {(a, c) for a in front.ARMS for c in (1, 16)}, out
    for arm, conc, rps, p50, p99, cpu, per_core in rows:
        assert float(rps) > 0 and float(p50) > 0 and float(p99) >= float(p50), (arm, conc, out)
        assert 0 < int(cpu.rstrip("%")) <= 200 and float(per_core) > 0, (arm, conc, out)
    for arm in (front.ADAPTER_AIO, front.ADAPTER_ENVOY):
        assert re.search(rf"^c=1 +{arm} +added p50 [+-]\d+\.\d\d ms", out, re.M), out
        assert re.search(rf"^c=16 +{arm} +per core: \d+\.\d\dx the grpc.aio ceiling", out, re.M), out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.kafka
@pytest.mark.timeout(300)
def test_events_side_by_side_smoke(kafka_bootstrap: str) -> None:
    port = kafka_bootstrap.rsplit(":", 1)[1]
    done = subprocess.run(
        [sys.executable, "-m", "bench.peer.events_side_by_side", "--before", "HEAD"],
        cwd=ROOT, env={**os.environ, "BENCH_SMOKE": "1", "BENCH_KAFKA_PORT": port},
        capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-4000:]}"
    assert re.search(
        r"^round 1: before +\d+ events/s +[\d.]+ us/event +after +\d+ events/s +[\d.]+ us/event",
        done.stdout,
        re.M,
    ), done.stdout
    assert re.search(r"CPU per event, after / before \d+\.\d{3} \(rounds", done.stdout), done.stdout


@pytest.mark.kafka
@pytest.mark.timeout(300)
def test_events_side_by_side_paced_smoke(kafka_bootstrap: str) -> None:
    port = kafka_bootstrap.rsplit(":", 1)[1]
    done = subprocess.run(
        [sys.executable, "-m", "bench.peer.events_side_by_side", "--before", "HEAD", "--paced", "2000"],
        cwd=ROOT, env={**os.environ, "BENCH_SMOKE": "1", "BENCH_KAFKA_PORT": port},
        capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-4000:]}"
    assert re.search(
        r"^round 1: before p50 +[\d.]+ p99 +[\d.]+ ms +after p50 +[\d.]+ p99 +[\d.]+ ms", done.stdout, re.M
    ), done.stdout
    # Any size of ratio: a seconds-long round can meet one broker stall (CI once printed 12.474).
    summary = r"receipt -> ack p99 at 2000/s, after / before \d+\.\d{3} \(rounds"
    assert re.search(summary, done.stdout), done.stdout
