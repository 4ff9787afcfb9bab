"""``python -m bench.peer``: see the package docstring."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from openframe.v1 import devices_pb2, devices_pb2_grpc

from bench.peer import report
from bench.peer.ceiling import fixed_device
from bench.peer.processes import ROOT, Started, pinned, python, started, tree_cpu_seconds
from bench.ports import listen_port

HERE = Path(__file__).resolve().parent
BODY = HERE / "device.json"
METHOD = "openframe.v1.DeviceService.GetDevice"
REQUEST = devices_pb2.GetDeviceRequest(device_id="dev_001")
KEY = "bench-key"
ARM_OF_CLIENT = {"aiohttp": report.AIOHTTP, "httpx-aiohttp": report.HTTPX}
SHORT_NAMES = {
    "adapter": report.ADAPTER,
    "cache": report.CACHE,
    "envoy": report.ENVOY,
    "envoy-cache": report.ENVOY_CACHE,
    "vanguard": report.VANGUARD,
    "ceiling": report.CEILING,
    "floor": report.FLOOR,
    "aiohttp": report.AIOHTTP,
    "httpx": report.HTTPX,
}


def build() -> Path:
    out = subprocess.run([str(HERE / "setup.sh")], check=True, capture_output=True, text=True)
    sys.stderr.write(out.stderr)
    return Path(out.stdout.strip().splitlines()[-1])


def adapter_env(upstream: str, port: int, *, cache: bool, otlp: str) -> dict[str, str]:
    env = {
        "MESH_LOG_LEVEL": "WARNING",
        "MESH_GRPC__HOST": "127.0.0.1",
        "MESH_GRPC__PORT": str(port),
        "MESH_TELEMETRY__OPS_PORT": "0",
        "MESH_EVENTS__ENABLED": "false",
        "MESH_WORKERS": "1",  # one process on its pinned core (auto would find one core too)
        # Spans and metrics go to a real OTLP exporter (the sink on the load core).
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{otlp}",
    }
    for name in ("OPENFRAME", "OCTOSPINE"):
        prefix = f"MESH_UPSTREAMS__{name}__"
        env |= {
            prefix + "BASE_URL": upstream,
            prefix + "AUTH__API_KEY": KEY,
            # The upstream has no quota: the limiter would only measure itself.
            prefix + "RESILIENCE__RATE_LIMIT__ENABLED": "false",
            prefix + "RESILIENCE__CACHE__ENABLED": str(cache).lower(),
        }
    return env


def wait_serving(
    arm: Started, timeout: float = 60.0, *, ready: Callable[[grpc.Channel], bool] | None = None
) -> None:
    """Until ``arm``'s health reads SERVING (or ``ready(channel)`` is true); at once when
    its process has exited (a bad setting, a refused environment: its own error is
    above, on stderr)."""

    def serving(channel: grpc.Channel) -> bool:
        request = health_pb2.HealthCheckRequest()
        return bool(health_pb2_grpc.HealthStub(channel).Check(request, timeout=1).status == 1)

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(arm.address) as channel:
        while True:
            with contextlib.suppress(grpc.RpcError):
                if (ready or serving)(channel):
                    return
            if (code := arm.process.poll()) is not None:
                raise RuntimeError(f"{arm.name} on {arm.address} exited ({code}) before serving")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{arm.name} on {arm.address} not serving after {timeout:.0f} s")
            time.sleep(0.1)


def check_identical(arms: dict[str, Started]) -> None:
    """Every gRPC arm must answer the same message (and the one device.json describes)."""
    expected = fixed_device(BODY).SerializeToString(deterministic=True)
    for name, arm in arms.items():
        with grpc.insecure_channel(arm.address) as channel:
            got = devices_pb2_grpc.DeviceServiceStub(channel).GetDevice(REQUEST, timeout=10)
        if got.SerializeToString(deterministic=True) != expected:
            raise SystemExit(f"{name} answered a different Device:\n{got}\nexpected:\n{fixed_device(BODY)}")
    print(f"identical Device ({len(expected)} bytes) from: {'; '.join(arms)}", flush=True)


def ghz_argv(
    tools: Path, address: str, concurrency: int, seconds: float, cpu: int, *, rps: int = 0, calls: int = 0
) -> list[str]:
    """ghz calling GetDevice at ``address`` over one connection, pinned to ``cpu``; JSON
    out. ``rps``: at most that many calls a second in all (0: each worker calls again as
    soon as its answer is in). ``calls``: that many calls, not ``seconds`` of them."""
    length = ["-n", str(calls)] if calls else ["-z", f"{seconds}s", "--duration-stop", "ignore"]
    return pinned(cpu, [
        str(tools / "ghz"), "--insecure", *(["--rps", str(rps)] if rps else []),
        "--protoset", str(tools / "protos.pb"), "--call", METHOD,
        "-d", '{"device_id":"dev_001"}', "-c", str(concurrency), "--connections", "1",
        *length, "--cpus", "1", "-O", "json", address,
    ])  # fmt: skip


def ghz(
    tools: Path, arm: Started, concurrency: int, seconds: float, cpu: int, *, rps: int = 0, calls: int = 0
) -> report.Row:
    """``seconds`` of calls (or ``calls`` calls: a smoke run's rows then always hold
    answered calls, however loaded the machine) after a warm-up."""
    warm_up = ghz_argv(tools, arm.address, concurrency, min(seconds, 0.5), cpu, rps=rps)
    subprocess.run(warm_up, check=True, capture_output=True)
    before = tree_cpu_seconds(arm.pid)  # a process tree: an arm may run its server as a child
    measured = ghz_argv(tools, arm.address, concurrency, seconds, cpu, rps=rps, calls=calls)
    done = subprocess.run(measured, check=True, capture_output=True, text=True)
    used = tree_cpu_seconds(arm.pid) - before
    result = json.loads(done.stdout)
    codes = result.get("statusCodeDistribution", {})
    latency = {p["percentage"]: p["latency"] / 1e6 for p in result.get("latencyDistribution") or []}
    wall = result["total"] / 1e9
    return report.Row(
        arm.name, concurrency, codes.get("OK", 0) / wall, latency.get(50, float("nan")),
        latency.get(99, float("nan")), used / wall, sum(n for c, n in codes.items() if c != "OK"),
    )  # fmt: skip


def direct(client: str, upstream: str, concurrency: int, seconds: float, cpu: int) -> report.Row:
    argv = python(
        "-m", "bench.peer.direct_client", "--client", client, "--url", f"{upstream}/v1/devices/dev_001",
        "--concurrency", str(concurrency), "--seconds", str(seconds),
    )  # fmt: skip
    done = subprocess.run(pinned(cpu, argv), cwd=ROOT, check=True, capture_output=True, text=True)
    r = json.loads(done.stdout.strip().splitlines()[-1])
    name = report.AIOHTTP if client == "aiohttp" else report.HTTPX
    return report.Row(name, concurrency, r["rps"], r["p50_ms"], r["p99_ms"], r["cpu"])


def kafka_port() -> int:
    return int(os.environ.get("BENCH_KAFKA_PORT") or os.environ.get("KAFKA_TEST_PORT") or 19092)


def events(seconds: float, paced_seconds: float, records: int, repeat: int) -> dict[str, Any]:
    """``bench.peer.events`` ``repeat`` times on one broker; the median of each figure."""
    port = kafka_port()
    env = {**os.environ, "KAFKA_PORT": str(port), "BENCH_KAFKA_PORT": str(port)}
    kafka = [str(ROOT / "scripts" / "kafka")]
    ours = subprocess.run([*kafka, "status"], env=env, capture_output=True, check=False).returncode != 0
    if ours:
        subprocess.run([*kafka, "start"], env=env, check=True, capture_output=True)
    try:
        argv = python(
            "-m", "bench.peer.events", "--seconds", str(seconds), "--paced-seconds", str(paced_seconds),
            "--records", str(records),
        )  # fmt: skip
        runs = []
        for i in range(repeat):
            order = ["--raw-first"] if i % 2 else []  # alternated: see bench.peer.events.main
            done = subprocess.run(
                [*argv, *order], cwd=ROOT, env=env, check=True, capture_output=True, text=True
            )
            runs.append(dict(json.loads(done.stdout.strip().splitlines()[-1])))
        return report.median_events(runs)
    finally:
        if ours:
            subprocess.run([*kafka, "stop"], env=env, capture_output=True, check=False)


def peer_arms(stack: contextlib.ExitStack, tools: Path, upstream: str, cpu: int) -> dict[str, Started]:
    """vanguard-go and the grpc.aio ceiling on core ``cpu`` until ``stack`` closes."""
    vanguard = [str(tools / "vanguard"), "-descriptors", str(tools / "protos.pb"), "-upstream", upstream]
    ceiling = python("-m", "bench.peer.ceiling", "--body", str(BODY))
    return {
        report.VANGUARD: stack.enter_context(started(report.VANGUARD, vanguard, cpu=cpu)),
        report.CEILING: stack.enter_context(started(report.CEILING, ceiling, cpu=cpu)),
    }


def run(args: argparse.Namespace) -> int:
    tools = build()
    sut, load = args.sut_cpu, args.load_cpu
    levels = [int(c) for c in args.concurrency.split(",")]
    runs: dict[tuple[str, int], list[report.Row]] = {}
    load_avg = os.getloadavg()
    with contextlib.ExitStack() as stack:
        up = stack.enter_context(started("upstream", [str(tools / "upstream"), "-body", str(BODY)], cpu=load))
        upstream = f"http://{up.address}"
        otlp = stack.enter_context(started("otlpsink", [str(tools / "otlpsink")], cpu=load)).address
        arms: dict[str, Started] = {}
        adapters = [(report.ADAPTER, False, "grpcio"), (report.CACHE, True, "grpcio")]
        adapters += [(report.ENVOY, False, "envoy"), (report.ENVOY_CACHE, True, "envoy")]
        for name, cache, front in [a for a in adapters if a[0] in args.arms]:
            port = listen_port()
            env = adapter_env(upstream, port, cache=cache, otlp=otlp) | {"MESH_GRPC__FRONT": front}
            arms[name] = stack.enter_context(
                started(
                    name, python("-m", "adapter"), cpu=sut, ready="", env=env, address=f"127.0.0.1:{port}"
                )
            )
            wait_serving(arms[name])
        arms |= peer_arms(stack, tools, upstream, sut)
        floor = python("-m", "bench.peer.ceiling", "--body", str(BODY), "--upstream", upstream)
        arms[report.FLOOR] = stack.enter_context(started(report.FLOOR, floor, cpu=sut))
        check_identical(arms)
        for name in [n for n in arms if n not in args.arms]:
            del arms[name]
        for repeat in range(args.repeat):
            # Rotate the order each round so slow drift of the machine's load spreads evenly.
            names = list(arms)[repeat % len(arms) :] + list(arms)[: repeat % len(arms)]
            for name in names:
                for c in levels:
                    row = ghz(tools, arms[name], c, args.seconds, load, calls=args.calls)
                    runs.setdefault((name, c), []).append(row)
            for client in [c for c in ("aiohttp", "httpx-aiohttp") if ARM_OF_CLIENT[c] in args.arms]:
                for c in levels:
                    row = direct(client, upstream, c, args.seconds, sut)
                    runs.setdefault((row.arm, c), []).append(row)
    rows = [report.median_rows(runs[(a, c)]) for a in report.ARMS for c in levels if (a, c) in runs]
    event_figures = None
    if not args.no_events:
        paced = args.events_paced_seconds
        event_figures = events(args.events_seconds, paced, args.events_records, args.repeat)

    title = (
        f"GetDevice, {f'{args.calls} calls per gRPC run' if args.calls else f'{args.seconds:g} s per run'}, "
        f"median of {args.repeat}; system under test on cpu {sut}, "
        f"ghz + upstream on cpu {load}; load average at start {load_avg[0]:.2f}"
    )
    print(f"\n{title}\n")
    print(report.table(rows))
    if event_figures:
        print()
        print(report.events_table(event_figures))
    print()
    print(report.ratio_table(report.ratios(rows, event_figures)))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"title": title, "rows": [r.__dict__ for r in rows], "events": event_figures}, indent=1
            )
        )
    if args.chart:
        report.chart(rows, args.chart, title)
        print(f"\nchart: {args.chart}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="per run (default 5)")
    parser.add_argument("--calls", type=int, default=0, help="per gRPC run, instead of --seconds")
    parser.add_argument("--repeat", type=int, default=3, help="runs per arm and level; the median is shown")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--sut-cpu", type=int, default=0, help="core of the system under test")
    parser.add_argument("--load-cpu", type=int, default=1, help="core of ghz and the upstream")
    parser.add_argument("--no-events", action="store_true", help="skip the Kafka rows")
    parser.add_argument("--events-seconds", type=float, default=5.0, help="each saturated events run")
    parser.add_argument("--events-paced-seconds", type=float, default=20.0, help="each run at half the rate")
    parser.add_argument("--events-records", type=int, default=200_000)
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--chart", type=Path, help="PNG to write (default docs/img/peer-bench.png)")
    parser.add_argument("--smoke", action="store_true", help="seconds-long run that checks the bench works")
    parser.add_argument(
        "--arms",
        default=",".join(SHORT_NAMES),
        help=f"measure only these (default all: {','.join(SHORT_NAMES)})",
    )
    args = parser.parse_args()
    args.arms = {SHORT_NAMES[a] for a in args.arms.split(",")}
    if args.smoke or os.environ.get("BENCH_SMOKE") == "1":
        args.seconds, args.repeat, args.events_seconds, args.events_records = 0.3, 1, 0.5, 5_000
        # A count, not 0.3 s: on a loaded CI machine a window that short once ended before
        # any call behind Envoy at c=64 was answered (a row of 0 req/s).
        args.calls = 200
        args.events_paced_seconds = 0.5
        # A smoke run's figures mean nothing: never over the documented chart.
        args.chart = args.chart or Path(tempfile.mkdtemp(prefix="peer-bench-")) / "peer-bench.png"
    args.chart = args.chart or ROOT / "docs" / "img" / "peer-bench.png"
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
