"""Event generators: state changes made through the same services as REST calls.

So a generated alert is stored, listed by REST, pushed on the WebSocket and (on OCTOSPINE)
sent as a webhook, exactly like one created by a client.

| vendor    | kinds                                                          |
|-----------|----------------------------------------------------------------|
| openframe | `alert`, `alert_update`, `device`, `security_event`            |
| octospine | `task`, `alert.new`, `automation.triggered`, `system.status`   |
"""

from __future__ import annotations

import asyncio
import random
import time

from simulator.config import Vendor
from simulator.octospine.services import OctospineServices
from simulator.openframe.services import SECURITY_CATEGORIES, OpenFrameServices
from simulator.schemas import SEVERITIES
from simulator.wire import JsonObject, now_timestamp

OPENFRAME_KINDS = ("alert", "alert_update", "device", "security_event")
OCTOSPINE_KINDS = ("task", "alert.new", "automation.triggered", "system.status")
KINDS: dict[Vendor, tuple[str, ...]] = {"openframe": OPENFRAME_KINDS, "octospine": OCTOSPINE_KINDS}

_NEXT_ALERT_STATUS = {"open": "acknowledged", "acknowledged": "resolved"}


class EventGenerator:
    """Makes state changes of a given kind, one at a time or at a rate."""

    def __init__(self, openframe: OpenFrameServices, octospine: OctospineServices, *, seed: int) -> None:
        self._openframe = openframe
        self._octospine = octospine
        self._rng = random.Random(seed + 1)
        self._count = 0

    async def run(
        self, vendor: Vendor, kind: str, count: int, rate_per_s: float | None = None
    ) -> list[JsonObject]:
        """Makes `count` changes, paced at `rate_per_s` (None: as fast as possible)."""
        if kind not in KINDS[vendor]:
            raise ValueError(f"unknown {vendor} event kind {kind!r}; known: {KINDS[vendor]}")
        results = []
        started = time.monotonic()
        for index in range(count):
            if rate_per_s:
                # Pace against the start time so the rate holds on average.
                delay = started + index / rate_per_s - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            results.append(self.one(vendor, kind))
            if not rate_per_s and index % 100 == 99:
                await asyncio.sleep(0)  # let WebSocket senders run during big bursts
        return results

    def one(self, vendor: Vendor, kind: str) -> JsonObject:
        """Makes one change and returns the resource (or event data) it produced."""
        self._count += 1
        if vendor == "openframe":
            return self._openframe_change(kind)
        return self._octospine_change(kind)

    def _openframe_change(self, kind: str) -> JsonObject:
        rng, services = self._rng, self._openframe
        devices = services.stores.devices.all()
        if kind == "alert" or (kind == "alert_update" and not _open_alerts(services.stores.alerts.all())):
            return services.alerts.create(
                {
                    "title": f"Generated alert {self._count}",
                    "severity": rng.choice(SEVERITIES),
                    "device_id": rng.choice(devices)["id"] if devices else "",
                    "description": "Made by the simulator's event generator",
                    "metadata": {"generated": True},
                }
            )
        if kind == "alert_update":
            alert = rng.choice(_open_alerts(services.stores.alerts.all()))
            return services.alerts.update(alert["id"], {"status": _NEXT_ALERT_STATUS[alert["status"]]})
        device = rng.choice(devices)
        if kind == "device":
            status = "offline" if device.get("status") == "online" else "online"
            return services.devices.update(device["id"], {"status": status, "last_seen": now_timestamp()})
        category = rng.choice(SECURITY_CATEGORIES)
        return services.security_events.detect(
            device_id=device["id"],
            severity=rng.choice(SEVERITIES),
            category=category,
            description=f"Generated {category.replace('_', ' ')} detection",
        )

    def _octospine_change(self, kind: str) -> JsonObject:
        rng, services = self._rng, self._octospine
        if kind == "task":
            return services.tasks.create(
                {
                    "name": f"Generated task {self._count}",
                    "type": "data_sync",
                    "parameters": {"generated": True},
                }
            )
        if kind == "alert.new":
            return services.alerts.raise_alert(
                title=f"Generated platform alert {self._count}",
                severity=rng.choice(SEVERITIES),
                source=rng.choice(("scheduler", "queue", "storage")),
                message="Made by the simulator's event generator",
            )
        if kind == "automation.triggered":
            enabled = [a for a in services.stores.automations.all() if a.get("status") == "enabled"]
            if not enabled:
                raise ValueError("no enabled automation to trigger")
            automation = rng.choice(enabled)
            trigger_type = ((automation.get("triggers") or [{}])[0]).get("type", "webhook")
            return services.trigger_automation(
                automation["id"], {"generated": self._count}, trigger_type=trigger_type
            )
        component = rng.choice(("database", "queue", "storage", "scheduler"))
        status = rng.choice(("healthy", "healthy", "degraded"))
        return services.health.set_component(component, status, f"generated change {self._count}")


def _open_alerts(alerts: list[JsonObject]) -> list[JsonObject]:
    return [a for a in alerts if a.get("status") in _NEXT_ALERT_STATUS]
