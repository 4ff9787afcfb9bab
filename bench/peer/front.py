"""What the Envoy front buys: the adapter's own handlers served by grpc.aio
(``grpc.front = "grpcio"``, the default) and behind Envoy (``grpc.front = "envoy"``,
docs/envoy-front.md), side by side with vanguard-go and with each front's ceiling
(a fixed Device: ``bench/peer/ceiling.py`` on grpc.aio, ``bench/peer/envoy_front.py``
under pyvoy), in one run.

    python -m bench.peer.front [--rounds 3] [--seconds 5] [--concurrency 1,16,64]
                               [--cache] [--chart PNG]

Every arm runs pinned to the same core (ghz, the compiled upstream and the OTLP sink
on the other), as ``python -m bench.peer`` runs them; the arms take turns in an
order that rotates every round, each row is the round with the median req/s, and
CPU is each arm's process tree (behind Envoy: ``python -m adapter`` and its Envoy).
Both adapter arms are ``python -m adapter`` with the same settings: tracing exported
over OTLP, retries, deadlines, rich errors, the interceptors; ``--cache`` turns the
response cache on in both (every call a hit). Every arm must answer the identical
Device before anything is measured, and both adapter arms the same refusal.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from google.rpc import (
    error_details_pb2,  # noqa: F401  (a Status's details decode as dicts)
    status_pb2,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc
from openframe.v1 import devices_pb2, devices_pb2_grpc

from bench.peer import report
from bench.peer.__main__ import (
    BODY,
    REQUEST,
    adapter_env,
    build,
    check_identical,
    ghz,
    peer_arms,
    wait_serving,
)
from bench.peer.processes import ROOT, Started, python, started
from bench.ports import listen_port

HERE = Path(__file__).resolve().parent
ADAPTER_AIO = "mesh-adapter on grpc.aio"
ADAPTER_ENVOY = "mesh-adapter behind Envoy"
CEILING_ENVOY = "Envoy front ceiling"
ARMS = (ADAPTER_AIO, ADAPTER_ENVOY, report.VANGUARD, report.CEILING, CEILING_ENVOY)


def answering(channel: grpc.Channel) -> bool:
    """A GetDevice answered (the Envoy front's ceiling serves no health service)."""
    devices_pb2_grpc.DeviceServiceStub(channel).GetDevice(REQUEST, timeout=1)
    return True


def failure(arm: Started) -> tuple[str, str, dict[str, Any], list[str]]:
    """What ``arm`` answers a call its upstream refuses (ListDevices: the compiled upstream
    serves only GetDevice's path, so HTTP 404): code, message, rich details, trailer names."""
    with grpc.insecure_channel(arm.address) as channel:
        try:
            devices_pb2_grpc.DeviceServiceStub(channel).ListDevices(
                devices_pb2.ListDevicesRequest(), timeout=5
            )
        except grpc.RpcError as exc:
            call: Any = exc  # a grpc.Call too: grpc-stubs types the error without it
            trailers: dict[str, str | bytes] = dict(call.trailing_metadata() or ())
            details = trailers.get("grpc-status-details-bin", b"")
            assert isinstance(details, bytes)  # a -bin key's value
            # As dicts: a map field's entries are serialized in no fixed order.
            status = json_format.MessageToDict(status_pb2.Status.FromString(details))
            return call.code().name, call.details() or "", status, sorted(trailers)
    raise SystemExit(f"{arm.name} answered a ListDevices its upstream refused")


def check_same_failure(grpc_aio: Started, envoy: Started) -> None:
    """Both adapter arms end a refused call with the same status, message and details."""
    on_aio, behind_envoy = failure(grpc_aio), failure(envoy)
    if on_aio != behind_envoy or not on_aio[2]:
        raise SystemExit(f"a refused call differs:\n{grpc_aio.name}: {on_aio}\n{envoy.name}: {behind_envoy}")
    print(f"same {on_aio[0]} (message, rich details) from both adapter arms: {on_aio[1]}", flush=True)


def check_routed(arm: Started) -> None:
    """Health ``Check`` and the first answer of a ``Watch`` stream through Envoy, from the
    adapter's grpc.aio server behind it: the routes carry unary calls and streams."""
    with grpc.insecure_channel(arm.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        checked = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
        watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=5)
        watched = next(iter(watch)).status
        watch.cancel()
    if checked != watched or checked != health_pb2.HealthCheckResponse.SERVING:
        raise SystemExit(f"{arm.name}: health through Envoy read {checked} / {watched}, not SERVING")
    print(f"{arm.name}: health Check and Watch (a stream) SERVING through Envoy from grpc.aio", flush=True)


def envoy_argv(port: int, env: dict[str, str], workdir: Path) -> list[str]:
    """pyvoy serving the Envoy front's ceiling on ``port`` with one Envoy worker
    thread (the shipped front's), run as pyvoy's own entrypoint runs it: pyvoy's
    command line has no flag for Envoy's ``--concurrency``, whose default is one
    worker per core of the host, not of the process's CPU set."""
    pyvoy = str(Path(sys.executable).with_name("pyvoy"))
    app = [pyvoy, "bench.peer.envoy_front:app", "--port", str(port), "--lifespan"]
    env = {**os.environ, **env}  # the entrypoint sets PYTHONPATH from the one it is made with
    config = subprocess.run([*app, "--print-envoy-config"], check=True, capture_output=True, text=True).stdout
    entrypoint = workdir / f"envoy-{port}.sh"
    script = subprocess.run(
        [*app, "--print-envoy-entrypoint"], check=True, capture_output=True, text=True, env=env
    ).stdout
    entrypoint.write_text(script)
    entrypoint.chmod(0o755)
    return [str(entrypoint), "--config-yaml", config, "--concurrency", "1", "--disable-hot-restart",
            "--log-level", "warning"]  # fmt: skip


def ratio_lines(rows: list[report.Row], *, cache: bool) -> list[str]:
    """Issue 11's goals the rows answer (cache hits: >= 0.8x the ceiling, no vanguard goal)."""
    ceiling_goal, vanguard_goal = ("0.8", "none") if cache else ("0.5", "0.6")

    def find(arm: str, c: int) -> report.Row | None:
        return next((r for r in rows if r.arm == arm and r.concurrency == c), None)

    lines = []
    for c in sorted({r.concurrency for r in rows}):
        ceiling, vanguard = find(report.CEILING, c), find(report.VANGUARD, c)
        for arm in (ADAPTER_AIO, ADAPTER_ENVOY):
            row = find(arm, c)
            if row is None or ceiling is None or vanguard is None:
                continue
            if c == 1:
                lines.append(
                    f"c=1   {arm:<26} added p50 {row.p50_ms - ceiling.p50_ms:+.2f} ms (goal <= 0.35), "
                    f"added p99 {row.p99_ms - ceiling.p99_ms:+.2f} ms (goal <= 0.8) over the grpc.aio ceiling"
                )
            else:
                lines.append(
                    f"c={c:<3} {arm:<26} per core: {row.per_core / ceiling.per_core:.2f}x "
                    f"the grpc.aio ceiling (goal {ceiling_goal}), "
                    f"{row.per_core / vanguard.per_core:.2f}x vanguard-go (goal {vanguard_goal}); "
                    f"{1e6 / row.per_core:.0f} us of CPU a call"
                )
    return lines


def run(args: argparse.Namespace) -> int:
    tools = build()
    levels = [int(c) for c in args.concurrency.split(",")]
    sut, load = args.sut_cpu, args.load_cpu
    runs: dict[tuple[str, int], list[report.Row]] = {}
    load_avg = os.getloadavg()
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="envoy-front-")))
        up = stack.enter_context(started("upstream", [str(tools / "upstream"), "-body", str(BODY)], cpu=load))
        upstream = f"http://{up.address}"
        otlp = stack.enter_context(started("otlpsink", [str(tools / "otlpsink")], cpu=load)).address
        arms: dict[str, Started] = {}
        for name, front in ((ADAPTER_AIO, "grpcio"), (ADAPTER_ENVOY, "envoy")):
            port = listen_port()
            env = adapter_env(upstream, port, cache=args.cache, otlp=otlp) | {"MESH_GRPC__FRONT": front}
            arms[name] = stack.enter_context(
                started(
                    name, python("-m", "adapter"), cpu=sut, ready="", env=env, address=f"127.0.0.1:{port}"
                )
            )
            wait_serving(arms[name])
        check_routed(arms[ADAPTER_ENVOY])
        check_same_failure(arms[ADAPTER_AIO], arms[ADAPTER_ENVOY])
        port = listen_port()
        env = {"PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'generated'}"}
        arms[CEILING_ENVOY] = stack.enter_context(
            started(CEILING_ENVOY, envoy_argv(port, env, workdir), cpu=sut, ready="", env=env,
                    address=f"127.0.0.1:{port}")
        )  # fmt: skip
        wait_serving(arms[CEILING_ENVOY], ready=answering)
        arms |= peer_arms(stack, tools, upstream, sut)
        check_identical(arms)
        names = list(ARMS)
        for round_ in range(args.rounds):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for c in levels:
                for name in order:
                    row = ghz(tools, arms[name], c, args.seconds, load)
                    runs.setdefault((name, c), []).append(row)
                    print(f"round {round_ + 1}: {name}, c={c}: {row.rps:.0f} req/s, "
                          f"{1e6 / row.per_core:.0f} us a call", flush=True)  # fmt: skip
    rows = [report.median_rows(runs[(a, c)]) for a in ARMS for c in levels]
    hits = ", every call a cache hit" if args.cache else ""
    title = (
        f"GetDevice{hits}, {args.seconds:g} s per run, median of {args.rounds}; "
        f"system under test on cpu {sut}, ghz + upstream on cpu {load}; "
        f"load average at start {load_avg[0]:.2f}"
    )
    print(f"\n{title}\n")
    print(report.table(rows))
    print()
    print("\n".join(ratio_lines(rows, cache=args.cache)))
    if args.chart:
        report.chart(rows, args.chart, title, arms=ARMS)
        print(f"\nchart: {args.chart}")
    errors = sum(r.errors for r in rows)
    if errors:
        print(f"\n{errors} calls failed")
    return 1 if errors else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--cache", action="store_true", help="the response cache on: every call a hit")
    parser.add_argument("--chart", type=Path, help="write a PNG of the rows here (docs/img/peer-front.png)")
    parser.add_argument("--sut-cpu", type=int, default=0)
    parser.add_argument("--load-cpu", type=int, default=1)
    return run(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
