"""Adapter replicas as real processes (``python -m adapter``), configured through
the environment like a deployment, coordinated through the test broker."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from simulator import Simulator

from ..adapter_process import listen_port, wait_serving
from ..conftest import OCTOSPINE_KEY, OPENFRAME_KEY
from ..events.kafka_fixtures import BOOTSTRAP

__all__ = ["QUICK_QUOTA", "QUOTA_WINDOW", "Replica", "session_overlaps", "usable_slices"]

ROOT = Path(__file__).resolve().parents[2]
SESSION_TIMEOUT = 6.0  # the broker's smallest allowed (group.min.session.timeout.ms)
QUOTA_WINDOW = 4.0
QUICK_QUOTA = {
    "MESH_EVENTS__COORDINATION__QUOTA_GRACE_SECONDS": "1",
    **{
        f"MESH_UPSTREAMS__{vendor}__{key}__WINDOW_SECONDS": str(QUOTA_WINDOW)
        for vendor in ("OPENFRAME", "OCTOSPINE")
        for key in ("RESILIENCE__RATE_LIMIT", "GRAPHQL__RATE_LIMIT")
    },
}
_OWNERSHIP = re.compile(r"replica (\S+) (owns|stopped) stream (\w+)")
_SHARE = re.compile(r"replica (\S+) uses (\d+)/(\d+) of each upstream quota")


class Replica:
    """One adapter process; its log file tells which streams it runs."""

    def __init__(self, name: str, sim: Simulator, tmp_path: Path, prefix: str, **env: str) -> None:
        self.name = name
        self.grpc_port = listen_port()
        self.log = tmp_path / f"{name}.log"
        self._env = {
            **os.environ,
            "MESH_LOG_FORMAT": "text",
            "MESH_WORKERS": "1",  # one replica, one process (workers: test_workers.py)
            "MESH_GRPC__PORT": str(self.grpc_port),
            "MESH_TELEMETRY__OPS_PORT": "0",
            "MESH_UPSTREAMS__OPENFRAME__BASE_URL": sim.openframe_url,
            "MESH_UPSTREAMS__OPENFRAME__AUTH__API_KEY": OPENFRAME_KEY,
            "MESH_UPSTREAMS__OCTOSPINE__BASE_URL": sim.octospine_url,
            "MESH_UPSTREAMS__OCTOSPINE__AUTH__API_KEY": OCTOSPINE_KEY,
            "MESH_EVENTS__KAFKA__BOOTSTRAP_SERVERS": BOOTSTRAP,
            "MESH_EVENTS__SPOOL__PATH": str(tmp_path / name / "spool" / "events.db"),
            "MESH_EVENTS__TOPIC_PREFIX": prefix,
            "MESH_EVENTS__WEBHOOK__PORT": "0",
            "MESH_EVENTS__COORDINATION__ENABLED": "true",
            "MESH_EVENTS__COORDINATION__REPLICA_ID": name,
            "MESH_EVENTS__COORDINATION__SESSION_TIMEOUT_SECONDS": str(SESSION_TIMEOUT),
            "MESH_EVENTS__COORDINATION__HEARTBEAT_INTERVAL_SECONDS": "1",
            "MESH_EVENTS__COORDINATION__CONFIRM_INTERVAL_SECONDS": "0.5",
            "MESH_EVENTS__COORDINATION__WATERMARK_INTERVAL_SECONDS": "0.5",
            # Short quota windows: a quota slice that moves waits out one window (quota_share.py).
            **QUICK_QUOTA,
            **{
                f"MESH_EVENTS__WEBSOCKETS__{vendor}__{key}": value
                for vendor in ("OPENFRAME", "OCTOSPINE")
                for key, value in (
                    ("PING_INTERVAL_SECONDS", "0.5"),
                    ("STALL_TIMEOUT_SECONDS", "1"),
                    ("BACKOFF_INITIAL_SECONDS", "0.1"),
                    ("BACKOFF_MAX_SECONDS", "0.5"),
                )
            },
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "adapter"], cwd=ROOT, env=self._env, stdout=out, stderr=out
            )

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)  # no shutdown code runs
        assert await asyncio.to_thread(self.process.wait, 10) == -signal.SIGKILL

    async def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 30)
        except subprocess.TimeoutExpired:
            process.kill()

    def owned(self) -> set[str]:
        """The streams this process runs now, by its log (empty once it is dead)."""
        if self.process is None or self.process.poll() is not None or not self.log.exists():
            return set()
        running: set[str] = set()
        for who, what, stream in _OWNERSHIP.findall(self.log.read_text(errors="replace")):
            if who != self.name:
                continue
            if what == "owns":
                running.add(stream)
            else:
                running.discard(stream)
        return running

    def usable_slices(self) -> int:
        """Quota slices this process may use now, by its log (0 once it is dead)."""
        if self.process is None or self.process.poll() is not None or not self.log.exists():
            return 0
        found = [
            int(n) for who, n, _ in _SHARE.findall(self.log.read_text(errors="replace")) if who == self.name
        ]
        return found[-1] if found else 0

    async def wait_serving(self, within: float = 30.0) -> None:
        await wait_serving(self.grpc_port, within=within, process=self.process, log=self.log, name=self.name)


def usable_slices(log: Path, replica: str) -> int:
    """The quota slices ``replica`` last said it may use, by ``log``."""
    found = [int(n) for who, n, _ in _SHARE.findall(log.read_text(errors="replace")) if who == replica]
    return found[-1] if found else 0


def session_overlaps(log: list[dict[str, Any]], now: float) -> list[tuple[str, str, float]]:
    """Pairs of subscribed sessions alive at the same time, with how long they overlapped."""
    spans = [
        (s["id"], s["subscribed"], s["closed"] if s["closed"] is not None else now)
        for s in log
        if s["subscribed"] is not None
    ]
    overlaps = []
    for i, (a, a_start, a_end) in enumerate(spans):
        for b, b_start, b_end in spans[i + 1 :]:
            both = min(a_end, b_end) - max(a_start, b_start)
            if both > 0:
                overlaps.append((a, b, both))
    return overlaps
