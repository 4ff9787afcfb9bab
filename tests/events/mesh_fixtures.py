"""Helpers of the end-to-end event tests (their fixtures are in conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from simulator import Simulator

from ..conftest import adapter_settings
from .kafka_fixtures import BOOTSTRAP

__all__ = ["WEBHOOK_SECRET", "headers", "health_of", "mesh_settings"]

WEBHOOK_SECRET = "whsec-test-secret"


def mesh_settings(sim: Simulator, tmp_path: Path, prefix: str, **events: Any) -> Any:
    return adapter_settings(
        sim,
        events={
            "kafka": {"bootstrap_servers": BOOTSTRAP},
            "spool": {"path": str(tmp_path / "spool" / "events.db")},
            "topic_prefix": prefix,
            "webhook": {"port": 0, "secrets": [WEBHOOK_SECRET]},
            "websockets": {
                name: {
                    "ping_interval_seconds": 0.5,
                    "stall_timeout_seconds": 1.0,
                    "backoff_initial_seconds": 0.1,
                    "backoff_max_seconds": 0.5,
                }
                for name in ("openframe", "octospine")
            },
            **events,
        },
    )


def headers(record: Any) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


async def health_of(port: int, service: str) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=2
        )
        return int(answer.status)
