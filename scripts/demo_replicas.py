"""``make run REPLICAS=3``: the simulator, Kafka and N adapter processes coordinated
through Kafka (events.coordination): gRPC on 50051.., webhooks on 8090.., operator
ports 9464..; prints which replica owns which stream and its quota share, as the
replicas report it. Full logs: var/log/replica-<n>.log."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from pathlib import Path

from simulator import Simulator, SimulatorConfig, WebhookTarget

ROOT = Path(__file__).resolve().parents[1]
#: Moves every port (to try this beside a running `make run`); 0 for the documented ones.
OFFSET = int(os.environ.get("MESH_DEMO_PORT_OFFSET", "0"))
_SHOWN = re.compile(r"replica \S+ (owns|stopped|assigned|uses)|ERROR|Traceback")


def replica_environment(
    index: int, sim: Simulator, bootstrap: str, keys: tuple[str, str, str]
) -> dict[str, str]:
    openframe_key, octospine_key, webhook_secret = keys
    return {
        **os.environ,
        "MESH_LOG_FORMAT": "text",
        "MESH_GRPC__PORT": str(OFFSET + 50050 + index),
        "MESH_TELEMETRY__OPS_PORT": str(OFFSET + 9463 + index),
        "MESH_UPSTREAMS__OPENFRAME__BASE_URL": sim.openframe_url,
        "MESH_UPSTREAMS__OPENFRAME__AUTH__API_KEY": openframe_key,
        "MESH_UPSTREAMS__OCTOSPINE__BASE_URL": sim.octospine_url,
        "MESH_UPSTREAMS__OCTOSPINE__AUTH__API_KEY": octospine_key,
        "MESH_EVENTS__KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "MESH_EVENTS__SPOOL__PATH": str(ROOT / "var" / "spool" / f"replica-{index}" / "events.db"),
        "MESH_EVENTS__WEBHOOK__PORT": str(OFFSET + 8089 + index),
        "MESH_EVENTS__WEBHOOK__SOURCES__OCTOSPINE__SECRETS": f'["{webhook_secret}"]',
        "MESH_EVENTS__COORDINATION__ENABLED": "true",
        "MESH_EVENTS__COORDINATION__REPLICA_ID": f"replica-{index}",
        # One process per replica (not one per core): the demo kills and adds processes,
        # and each replica's operator port is its own.
        "MESH_WORKERS": "1",
    }


async def _relay(name: str, stream: asyncio.StreamReader, log: Path) -> None:
    """Writes the replica's output to its log; shows the coordination lines."""
    with open(log, "ab") as out:  # noqa: ASYNC230 (a local log file; a demo)
        while line := await stream.readline():
            out.write(line)
            out.flush()
            text = line.decode(errors="replace").rstrip()
            if _SHOWN.search(text):
                print(f"  [{name}] {text.split(': ', 1)[-1]}", flush=True)


async def run_replicas(
    count: int, bootstrap: str, keys: tuple[str, str, str], say: object, run_for: float | None = None
) -> None:
    announce = say if callable(say) else print
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if run_for is not None:
        loop.call_later(run_for, stop.set)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    openframe_key, octospine_key, webhook_secret = keys
    sim = Simulator(
        SimulatorConfig(
            openframe_api_key=openframe_key,
            octospine_api_key=octospine_key,
            openframe_port=OFFSET + 8081,
            octospine_port=OFFSET + 8082,
            webhook_targets=(
                WebhookTarget(
                    url=f"http://127.0.0.1:{OFFSET + 8090}/webhooks/octospine", secret=webhook_secret
                ),
            ),
        )
    )
    await sim.start()
    announce(f"simulator: OpenFrame {sim.openframe_url}, OCTOSPINE {sim.octospine_url}")
    (ROOT / "var" / "log").mkdir(parents=True, exist_ok=True)
    processes: list[asyncio.subprocess.Process] = []
    relays: list[asyncio.Task[None]] = []
    try:
        for index in range(1, count + 1):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "adapter",
                cwd=ROOT,
                env=replica_environment(index, sim, bootstrap, keys),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            processes.append(process)
            assert process.stdout is not None
            log = ROOT / "var" / "log" / f"replica-{index}.log"
            relays.append(asyncio.create_task(_relay(f"replica-{index}", process.stdout, log)))
            announce(
                f"replica-{index}: gRPC 127.0.0.1:{OFFSET + 50050 + index}, "
                f"webhooks :{OFFSET + 8089 + index}, operator :{OFFSET + 9463 + index} "
                f"(pid {process.pid}, log {log.relative_to(ROOT)})"
            )
        announce("streams go to the oldest replicas; kill -9 a pid and watch the takeover; Ctrl-C stops all")
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5)
            if not stop.is_set():
                await sim.generate_events("openframe", "alert")
    finally:
        announce("stopping the replicas")
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 40)
            if process.returncode is None:
                process.kill()
        for relay in relays:
            relay.cancel()
        await sim.stop()
