"""``make run``: the upstream simulator, a local Kafka broker and the adapter, in
the foreground until Ctrl-C, with a visible demo: a client lists devices and
creates an alert over gRPC, and the alert's event is read back from Kafka.

Ports (all on 127.0.0.1): gRPC 50051, simulator 8081 (OpenFrame) and 8082
(OCTOSPINE), webhook receiver 8090, Kafka 9092. ``KAFKA_BOOTSTRAP_SERVERS``
points at an existing cluster instead of starting the local broker.

``--secure`` (``make run SECURE=1``): the same demo with mTLS and an
authorization policy, dev certificates in var/dev-certs/ (scripts/demo_secure.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
from aiokafka import AIOKafkaConsumer
from openframe.v1 import alerts_pb2, alerts_pb2_grpc, devices_pb2, devices_pb2_grpc
from openframe.v1 import events_pb2 as openframe_events

from adapter.config.settings import Settings
from adapter.event_loop import run as run_event_loop
from adapter.runtime import MeshAdapter
from adapter.telemetry.shutdown import shut_down_telemetry
from adapter.telemetry.tracing import build_tracer_provider
from simulator import Simulator, SimulatorConfig, WebhookTarget

ROOT = Path(__file__).resolve().parents[1]
OPENFRAME_KEY = "demo-openframe-key"
OCTOSPINE_KEY = "demo-octospine-key"
WEBHOOK_SECRET = "demo-webhook-secret"
BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")

log = logging.getLogger("demo")


def say(text: str) -> None:
    print(f"{BOLD}==> {text}{RESET}", flush=True)


def start_local_kafka(replicas: int = 1) -> bool:
    """Starts scripts/kafka unless KAFKA_BOOTSTRAP_SERVERS names a cluster; True if started here.

    For several replicas, with Kafka's default initial rebalance delay (3 s) instead of the
    tests' 0: replicas started together then join one first generation of the quota group,
    whose slices no one held before, and serve at once instead of a quota window later."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        say(f"using the Kafka cluster at {os.environ['KAFKA_BOOTSTRAP_SERVERS']}")
        return False
    say("starting the local Kafka broker (scripts/kafka; first run fetches the jars from Maven Central)")
    env = {**os.environ, **({"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "3000"} if replicas > 1 else {})}
    subprocess.run([str(ROOT / "scripts" / "kafka"), "start"], check=True, env=env)
    return True


def settings(sim: Simulator, bootstrap: str, security: dict[str, Any] | None = None) -> Settings:
    return Settings(
        security=security or {},  # type: ignore[arg-type]  # validated by pydantic
        upstreams={
            "openframe": {"base_url": sim.openframe_url, "auth": {"api_key": OPENFRAME_KEY}},
            "octospine": {"base_url": sim.octospine_url, "auth": {"api_key": OCTOSPINE_KEY}},
        },
        events={
            "kafka": {"bootstrap_servers": bootstrap},
            "spool": {"path": str(ROOT / "var" / "spool" / "events.db")},
            "webhook": {"port": 8090, "sources": {"octospine": {"secrets": [WEBHOOK_SECRET]}}},
        },
    )


def client_channel(port: int, secure: bool) -> grpc.aio.Channel:
    if not secure:
        return grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    from demo_secure import secure_channel

    say("the client presents var/dev-certs/writer.pem (mTLS)")
    return secure_channel(ROOT, port, "writer")


async def show_calls(port: int, secure: bool = False) -> str:
    """The demo client: two gRPC calls, as any service owner would make them (with
    ``secure``, as the demo's ``writer``)."""
    async with client_channel(port, secure) as channel:
        devices = await devices_pb2_grpc.DeviceServiceStub(channel).ListDevices(
            devices_pb2.ListDevicesRequest(page_size=3, status=devices_pb2.DEVICE_STATUS_ONLINE), timeout=5
        )
        say(f"gRPC ListDevices(page_size=3, status=ONLINE) -> {len(devices.devices)} of {devices.total_size}")
        for device in devices.devices:
            print(f"    {device.id}  {device.hostname:<20} {devices_pb2.DeviceType.Name(device.type)}")
        alert = await alerts_pb2_grpc.AlertServiceStub(channel).CreateAlert(
            alerts_pb2.CreateAlertRequest(
                alert=alerts_pb2.Alert(
                    title="Disk almost full",
                    severity=alerts_pb2.SEVERITY_HIGH,
                    device_id=devices.devices[0].id if devices.devices else "dev_001",
                    description="C: at 97%",
                ),
                request_id="demo-alert-1",
            ),
            timeout=5,
        )
        say(
            f"gRPC CreateAlert -> {alert.id} ({alerts_pb2.Severity.Name(alert.severity)}, "
            f"{alerts_pb2.AlertStatus.Name(alert.status)})"
        )
        return alert.id


async def show_kafka(bootstrap: str, alert_id: str, stop: asyncio.Event) -> None:
    """Reads openframe.alerts and prints every event; the demo alert first."""
    consumer = AIOKafkaConsumer(
        "openframe.alerts", bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    headers = {k: v.decode() for k, v in record.headers}
                    event = openframe_events.AlertEvent.FromString(record.value)
                    mine = event.alert.id == alert_id
                    where = f"p{record.partition}@{record.offset}"
                    print(
                        f"    kafka openframe.alerts {where} key={record.key.decode()} {headers['ce_type']} "
                        f'"{event.alert.title}"' + ("  <- the alert created above" if mine else ""),
                        flush=True,
                    )
                    if mine:
                        print(f"{DIM}      ce_id={headers['ce_id']}")
                        print(f"      traceparent={headers.get('traceparent', '')}{RESET}", flush=True)
    finally:
        await consumer.stop()


async def trickle(sim: Simulator, stop: asyncio.Event) -> None:
    """A slow stream of vendor changes so events keep flowing while you watch."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5)
        if not stop.is_set():
            await sim.generate_events("openframe", "alert")


async def main(run_for: float | None, secure: bool = False, replicas: int = 1) -> None:
    started_kafka = start_local_kafka(replicas)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    if replicas > 1:
        from demo_replicas import run_replicas  # scripts/ is on sys.path when run as a script

        try:
            keys = (OPENFRAME_KEY, OCTOSPINE_KEY, WEBHOOK_SECRET)
            await run_replicas(replicas, bootstrap, keys, say, run_for)
        finally:
            if started_kafka:
                stop_kafka = [str(ROOT / "scripts" / "kafka"), "stop"]
                await asyncio.to_thread(subprocess.run, stop_kafka, check=False)
        return
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sim = Simulator(
        SimulatorConfig(
            openframe_api_key=OPENFRAME_KEY,
            octospine_api_key=OCTOSPINE_KEY,
            webhook_targets=(
                WebhookTarget(url="http://127.0.0.1:8090/webhooks/octospine", secret=WEBHOOK_SECRET),
            ),
        )
    )
    telemetry = Settings().telemetry
    tracer_provider = build_tracer_provider(telemetry)
    adapter: MeshAdapter | None = None
    try:
        await sim.start()
        say(f"simulator: OpenFrame {sim.openframe_url}, OCTOSPINE {sim.octospine_url}")
        security = None
        if secure:
            from demo_secure import prepare

            security = prepare(ROOT)
            say("security: mTLS with var/dev-certs/, policy var/dev-certs/policy.toml")
        adapter = MeshAdapter(settings(sim, bootstrap, security), tracer_provider=tracer_provider)
        await adapter.start()
        say(
            f"adapter: gRPC on 127.0.0.1:{adapter.grpc_port}, webhooks on http://127.0.0.1:8090/webhooks/octospine"
        )
        alert_id = await show_calls(adapter.grpc_port, secure)
        if secure:
            from demo_secure import GRPCURL, show_refusals

            await show_refusals(ROOT, adapter.grpc_port, say)
        say("events on Kafka (a new simulated alert every 5 s):")
        tasks = [
            asyncio.create_task(show_kafka(bootstrap, alert_id, stop)),
            asyncio.create_task(trickle(sim, stop)),
        ]
        if secure:
            say("try (Ctrl-C stops everything):")
            print(GRPCURL, flush=True)
        else:
            say("try: grpcurl -plaintext 127.0.0.1:50051 list   |   Ctrl-C stops everything")
        if run_for is not None:
            loop.call_later(run_for, stop.set)
        await stop.wait()
        say("stopping")
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        if adapter is not None:
            await adapter.stop()
        await sim.stop()
        shut_down_telemetry(tracer_provider, None, timeout_s=telemetry.flush_timeout_seconds)
        if started_kafka:
            await asyncio.to_thread(subprocess.run, [str(ROOT / "scripts" / "kafka"), "stop"], check=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--run-for", type=float, default=None, help="stop after this many seconds (for CI)")
    parser.add_argument("--secure", action="store_true", help="mTLS and a policy (make run SECURE=1)")
    parser.add_argument("--replicas", type=int, default=1, help="adapter processes coordinated through Kafka")
    args = parser.parse_args()
    log_format = f"{DIM}%(asctime)s %(levelname)s %(name)s: %(message)s{RESET}"
    logging.basicConfig(level=logging.INFO, format=log_format)
    # Right after the topics are created their leaders are still being elected;
    # aiokafka logs that at ERROR although it retries on its own.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("simulator").setLevel(logging.WARNING)
    # The loop the adapter serves on as shipped (`event_loop`, uvloop by default), which
    # `python -m adapter` uses too; the simulator shares it in this one process.
    run_event_loop(main(args.run_for, args.secure, args.replicas), Settings().event_loop)
