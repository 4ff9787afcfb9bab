"""OpenFrame state changes and the WebSocket events they push."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.errors import ApiError
from simulator.events import EventHub
from simulator.resources import ResourceService
from simulator.schemas import (
    ALERT,
    ALERT_STATUSES,
    DEVICE,
    DEVICE_STATUSES,
    DEVICE_TYPES,
    SECURITY_EVENT,
    SEVERITIES,
)
from simulator.store import ResourceStore
from simulator.validation import validate_create
from simulator.wire import JsonObject, now_timestamp

# WebSocket topic per event type (clients subscribe to topics).
TOPICS = {"alert": "alerts", "device": "devices", "security_event": "security_events"}
SECURITY_CATEGORIES = ("malware", "intrusion", "policy_violation", "brute_force", "data_exfil")


@dataclass
class OpenFrameStores:
    """OpenFrame's stores: `sim.state.openframe`."""

    devices: ResourceStore
    alerts: ResourceStore
    security_events: ResourceStore

    @classmethod
    def empty(cls) -> OpenFrameStores:
        """Stores with nothing in them."""
        return cls(
            devices=ResourceStore("dev", width=3),
            alerts=ResourceStore("alt", width=4),
            security_events=ResourceStore("sec", width=4),
        )

    def clear(self) -> None:
        """Empties every store."""
        for store in (self.devices, self.alerts, self.security_events):
            store.clear()


class DeviceService(ResourceService):
    """Devices; an update pushes a `device` event on topic `devices`."""

    def __init__(self, store: ResourceStore, hub: EventHub) -> None:
        super().__init__(
            store=store,
            schema=DEVICE,
            filters={"status": DEVICE_STATUSES, "organization_id": (), "type": DEVICE_TYPES},
            time_filters={"updated_after": "updated_at"},
        )
        self.hub = hub

    def on_updated(self, before: JsonObject, after: JsonObject) -> None:
        self.hub.publish(TOPICS["device"], "device", after, action="updated")


class AlertService(ResourceService):
    """Alerts; a create or update pushes an `alert` event on topic `alerts`."""

    def __init__(self, store: ResourceStore, hub: EventHub) -> None:
        super().__init__(
            store=store,
            schema=ALERT,
            filters={"status": ALERT_STATUSES, "severity": SEVERITIES, "device_id": ()},
            time_filters={"updated_after": "updated_at"},
            defaults={"status": "open"},
        )
        self.hub = hub

    def on_created(self, resource: JsonObject) -> None:
        self.hub.publish(TOPICS["alert"], "alert", resource, action="created")

    def on_updated(self, before: JsonObject, after: JsonObject) -> None:
        self.hub.publish(TOPICS["alert"], "alert", after, action="updated")


class SecurityEventService(ResourceService):
    """Security events: listed by REST, detected by agents (here: `detect`), pushed live."""

    def __init__(self, store: ResourceStore, hub: EventHub) -> None:
        super().__init__(
            store=store,
            schema=SECURITY_EVENT,
            filters={"device_id": (), "severity": SEVERITIES},
            time_filters={"detected_after": "detected_at"},
        )
        self.hub = hub

    def detect(
        self,
        *,
        device_id: str,
        severity: str,
        category: str,
        description: str = "",
        details: JsonObject | None = None,
    ) -> JsonObject:
        """Records a security event and pushes it on topic `security_events`."""
        payload: JsonObject = {
            "device_id": device_id,
            "severity": severity,
            "category": category,
            "description": description,
        }
        if details is not None:
            payload["details"] = details
        body, issues = validate_create(self.schema, payload)
        if issues:
            raise ApiError.invalid(self.kind, issues)
        event: JsonObject = {"id": self.store.new_id(), **body, "detected_at": now_timestamp()}
        event = self.store.add(self._ordered(event))
        self.hub.publish(TOPICS["security_event"], "security_event", event, action="detected")
        return event


class OpenFrameServices:
    """OpenFrame's services over its stores: `sim.openframe`."""

    def __init__(self, stores: OpenFrameStores, hub: EventHub) -> None:
        self.stores = stores
        self.hub = hub
        self.devices = DeviceService(stores.devices, hub)
        self.alerts = AlertService(stores.alerts, hub)
        self.security_events = SecurityEventService(stores.security_events, hub)
