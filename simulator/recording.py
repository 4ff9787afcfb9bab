"""The log of requests the simulator saw, for tests to assert on (`sim.requests`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from multidict import CIMultiDict

from simulator.config import Vendor
from simulator.wire import JsonObject


@dataclass
class RequestRecord:
    """One request, recorded when it arrives and completed when it is answered.

    `route` is the path template (e.g. ``/v1/alerts/{alert_id}``; ``""`` when no route
    matched). `status` stays None until answered; `cancelled` is True when the client went
    away first (the handler was cancelled). `fault` names the fault applied, if any.
    """

    vendor: Vendor
    method: str
    path: str
    route: str
    query: list[tuple[str, str]]
    headers: CIMultiDict[str]
    body: bytes
    request_id: str
    started: float
    ended: float | None = None
    status: int | None = None
    cancelled: bool = False
    fault: str | None = None
    credential: str | None = None

    @property
    def done(self) -> bool:
        """Whether the request was answered or cancelled."""
        return self.ended is not None

    def to_json(self) -> JsonObject:
        """A summary for the admin API (no headers or body: they hold credentials)."""
        return {
            "vendor": self.vendor,
            "method": self.method,
            "path": self.path,
            "route": self.route,
            "query": [list(pair) for pair in self.query],
            "request_id": self.request_id,
            "status": self.status,
            "cancelled": self.cancelled,
            "fault": self.fault,
            "started": self.started,
            "ended": self.ended,
        }


@dataclass
class RequestLog:
    """Requests in arrival order, both vendors."""

    records: list[RequestRecord] = field(default_factory=list)

    def add(self, record: RequestRecord) -> None:
        """Appends a new record."""
        self.records.append(record)

    def select(
        self,
        *,
        vendor: Vendor | None = None,
        method: str | None = None,
        route: str | None = None,
        path: str | None = None,
    ) -> list[RequestRecord]:
        """Records matching every given criterion. `route` also accepts ``{alert.id}`` style."""
        wanted_route = normalize_route(route) if route is not None else None
        return [
            r
            for r in self.records
            if (vendor is None or r.vendor == vendor)
            and (method is None or r.method == method.upper())
            and (wanted_route is None or r.route == wanted_route)
            and (path is None or r.path == path)
        ]

    def clear(self, vendor: Vendor | None = None) -> None:
        """Forgets the records (of one vendor, or all)."""
        self.records[:] = [r for r in self.records if vendor is not None and r.vendor != vendor]


def normalize_route(route: str) -> str:
    """Proto-style templates to the simulator's: ``/v1/alerts/{alert.id}`` -> ``{alert_id}``."""
    out = []
    depth = 0
    for char in route:
        depth += char == "{"
        depth -= char == "}"
        out.append("_" if char == "." and depth else char)
    return "".join(out)
