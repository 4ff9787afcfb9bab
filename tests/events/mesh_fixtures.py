"""Helpers of the end-to-end event tests (their fixtures are in conftest.py)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from adapter.config.settings import EventsSettings
from adapter.descriptors.loader import import_generated_modules, load_service_specs
from adapter.events.declarations import EventSourceDeclarations, load_event_sources
from adapter.events.routing import load_event_routes
from simulator import Simulator

from ..conftest import adapter_settings
from .kafka_fixtures import BOOTSTRAP

__all__ = ["WEBHOOK_SECRET", "declared", "headers", "health_of", "mesh_settings"]

WEBHOOK_SECRET = "whsec-test-secret"


@functools.cache
def declared() -> EventSourceDeclarations:
    """The streams and webhooks the generated protos declare."""
    return load_event_sources(
        import_generated_modules(),
        specs=load_service_specs(),
        routes=load_event_routes(EventsSettings()),
    )


def mesh_settings(sim: Simulator, tmp_path: Path, prefix: str, **events: Any) -> Any:
    return adapter_settings(
        sim,
        events={
            "kafka": {"bootstrap_servers": BOOTSTRAP},
            "spool": {"path": str(tmp_path / "spool" / "events.db")},
            "topic_prefix": prefix,
            "webhook": {"port": 0, "sources": {"octospine": {"secrets": [WEBHOOK_SECRET]}}},
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
