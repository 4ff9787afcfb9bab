"""The OCTOSPINE health report (`GET /api/health`) and its `system.status` events."""

from __future__ import annotations

import time

from simulator.events import EventHub
from simulator.wire import JsonObject, now_timestamp

HEALTH_STATUSES = ("healthy", "degraded", "unhealthy")
VERSION = "2.4.1"


class HealthModel:
    """Per-component health; the overall status is the worst component's.

    Tests degrade a component with `set_component`, which also pushes `system.status`.
    """

    def __init__(self, hub: EventHub) -> None:
        self._hub = hub
        self._started = time.monotonic()
        self._components: dict[str, JsonObject] = {}
        self.reset()

    def reset(self) -> None:
        """Every component healthy again."""
        self._components = {
            "database": {"status": "healthy", "latency_ms": 3.2, "message": "primary reachable"},
            "queue": {"status": "healthy", "latency_ms": 1.1, "message": "0 messages lagging"},
            "storage": {"status": "healthy", "latency_ms": 7.5, "message": "92% free"},
            "scheduler": {"status": "healthy", "latency_ms": 0.4, "message": "12 jobs scheduled"},
        }

    def report(self) -> JsonObject:
        """The Health resource."""
        worst = max((HEALTH_STATUSES.index(c["status"]) for c in self._components.values()), default=0)
        return {
            "status": HEALTH_STATUSES[worst],
            "version": VERSION,
            "uptime_seconds": int(time.monotonic() - self._started),
            "components": {name: dict(c) for name, c in self._components.items()},
            "timestamp": now_timestamp(),
        }

    def set_component(self, name: str, status: str, message: str = "") -> JsonObject:
        """Changes one component's health and pushes the new report as `system.status`."""
        if status not in HEALTH_STATUSES:
            raise ValueError(f"status must be one of {HEALTH_STATUSES}")
        component = self._components.setdefault(name, {"latency_ms": 0.0})
        component["status"] = status
        component["message"] = message or status
        report = self.report()
        self._hub.publish("system.status", "system.status", report)
        return report
