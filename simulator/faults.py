"""Fault switches: make chosen requests slow, fail or break on the wire.

A `Fault` matches requests by vendor, method and route (None matches any) and applies to the
next `times` matching attempts (None: until cleared)::

    sim.faults.add(Fault(vendor="openframe", method="GET", route="/v1/devices",
                         status=503, retry_after=2, times=1))

`latency` (seconds, cancellable) runs first and combines with any one answer fault. The
answer faults `status`, `redirect`, `content_type` and `expired_token` answer without running
the handler; `reset`, `truncated_json` and `malformed_json` run it (state changes happen)
and spoil its answer; `graphql_field` (``"Type.field"``, OCTOSPINE's `/graphql`) runs it with
that field's resolver failing with `graphql_code` (partial data). When several faults match,
the oldest one with attempts left applies.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from simulator.config import VENDORS, Vendor
from simulator.recording import normalize_route
from simulator.wire import JsonObject

_ids = itertools.count(1)

# In precedence order: `status` last, since it also sets the status of the others.
ANSWER_FAULTS = (
    "redirect",
    "content_type",
    "expired_token",
    "reset",
    "truncated_json",
    "malformed_json",
    "graphql_field",
    "status",
)


@dataclass(kw_only=True)
class Fault:
    """One fault switch. See the module docstring and docs/simulator.md for each kind."""

    vendor: Vendor
    method: str | None = None
    route: str | None = None
    times: int | None = None

    latency: float | None = None
    status: int | None = None
    retry_after: int | float | str | None = None
    body: Any = None
    headers: dict[str, str] | None = None
    reset: bool = False
    truncated_json: bool = False
    malformed_json: bool = False
    content_type: str | None = None
    redirect: str | None = None
    expired_token: bool = False
    graphql_field: str | None = None
    graphql_code: str = "INTERNAL_SERVER_ERROR"

    id: str = field(default_factory=lambda: f"flt_{next(_ids):04d}")
    hits: int = 0

    def __post_init__(self) -> None:
        if self.vendor not in VENDORS:
            raise ValueError(f"vendor must be one of {VENDORS}, got {self.vendor!r}")
        if self.method is not None:
            self.method = self.method.upper()
        if self.route is not None:
            self.route = normalize_route(self.route)
        if self.times is not None and self.times < 0:
            raise ValueError("times must be >= 0")
        if self.latency is not None and self.latency < 0:
            raise ValueError("latency must be >= 0")
        if self.graphql_field is not None and self.graphql_field.count(".") != 1:
            raise ValueError("graphql_field is a field coordinate such as 'Pipeline.automations'")
        if self.kind is None:
            raise ValueError("a fault needs latency or an answer fault (status, reset, ...)")

    @property
    def kind(self) -> str | None:
        """The answer fault's name (``"status"``, ``"reset"``...), else ``"latency"``."""
        for name in ANSWER_FAULTS:
            if getattr(self, name) not in (None, False):
                return name
        return "latency" if self.latency is not None else None

    @property
    def exhausted(self) -> bool:
        """Whether the fault used up its `times`."""
        return self.times is not None and self.hits >= self.times

    def matches(self, vendor: Vendor, method: str, route: str, path: str) -> bool:
        """Whether a request is targeted (the route may also be a concrete path)."""
        return (
            vendor == self.vendor
            and (self.method is None or self.method == method)
            and (self.route is None or self.route in (route, path))
        )

    def to_json(self) -> JsonObject:
        """The fault's settings (for the admin API)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, vendor: Vendor, data: JsonObject) -> Fault:
        """Builds a fault from admin-API JSON (the vendor comes from the port)."""
        known = {f.name for f in fields(cls)} - {"id", "hits", "vendor"}
        unknown = set(data) - known - {"vendor"}
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        return cls(vendor=vendor, **{k: v for k, v in data.items() if k in known})


class FaultSet:
    """The active faults of both vendors (`sim.faults`)."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        """Activates `fault` and returns it (its `hits` count its uses)."""
        self._faults.append(fault)
        return fault

    def remove(self, fault_id: str) -> bool:
        """Deactivates one fault; False when unknown."""
        before = len(self._faults)
        self._faults = [f for f in self._faults if f.id != fault_id]
        return len(self._faults) != before

    def clear(self, vendor: Vendor | None = None) -> None:
        """Deactivates every fault (of one vendor, or all)."""
        self._faults = [f for f in self._faults if vendor is not None and f.vendor != vendor]

    def take(self, vendor: Vendor, method: str, route: str, path: str) -> Fault | None:
        """The fault for this attempt, counting the use; None when nothing matches."""
        for fault in self._faults:
            if not fault.exhausted and fault.matches(vendor, method, route, path):
                fault.hits += 1
                return fault
        return None

    def __iter__(self) -> Iterator[Fault]:
        return iter(list(self._faults))

    def __len__(self) -> int:
        return len(self._faults)
