"""``grpc.health.v1.Health``: Check and Watch, with a cap on Watch streams.

Written here rather than taken from grpcio-health-checking, whose asyncio servicer
(1.75.1, and still in 1.85) has two faults that matter to this adapter:

- when one ``Watch`` of a service ends, it drops the condition every other watcher
  of that service waits on, so they never hear another change: after one client
  left, the others were not told NOT_SERVING when the adapter drained, and kept
  sending it calls (grpc/grpc pull request 43403 proposes a fix; not released);
- nothing bounds ``Watch`` streams. Health is public (probes), each open stream
  holds ~22 KB of the server, and a caller needing no identity opened 20,000 on four
  connections: +450 MB.

Every watcher has its own event, set when its service's status changes, so one
leaving cannot silence another. Past ``max_watchers`` a Watch is refused with
RESOURCE_EXHAUSTED (``ErrorInfo`` reason ``TOO_MANY_HEALTH_WATCHERS``, ``RetryInfo``);
gRFC A17 clients then treat this server as unhealthy and retry with backoff, which is
what a server at its limit wants. ``Check`` is never capped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import metrics

from adapter.status.call_ending import end_call
from adapter.status.mapping import ERROR_DOMAIN

__all__ = ["HealthService"]

logger = logging.getLogger(__name__)

_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
_RETRY_AFTER_SECONDS = 5


class HealthService(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """Statuses by service name (``""`` is the whole server); ``set`` tells every
    watcher of that name. ``max_watchers`` 0 = no cap. Metrics:
    ``meshadapter.health.watchers`` (open Watch streams) and
    ``meshadapter.health.watch_refusals``."""

    def __init__(self, *, max_watchers: int, meter_provider: metrics.MeterProvider | None = None) -> None:
        self.max_watchers = max_watchers
        self.refused = 0
        meter = metrics.get_meter("adapter.server", meter_provider=meter_provider)
        self._watchers_metric = meter.create_up_down_counter(
            "meshadapter.health.watchers",
            unit="{stream}",
            description="Open grpc.health.v1.Health/Watch streams",
        )
        self._refusals_metric = meter.create_counter(
            "meshadapter.health.watch_refusals",
            unit="{call}",
            description="Health Watch calls refused at security.limits.max_health_watchers",
        )
        self._status: dict[str, health_pb2.HealthCheckResponse.ServingStatus.ValueType] = {
            "": health_pb2.HealthCheckResponse.SERVING
        }
        self._watchers: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._watching = 0
        self._draining = False
        self._at_cap = False

    @property
    def watching(self) -> int:
        """Open Watch streams."""
        return self._watching

    def set(self, service: str, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        """Ignored once :meth:`enter_graceful_shutdown` ran."""
        if not self._draining:
            self._set(service, status)

    def enter_graceful_shutdown(self) -> None:
        """Every service NOT_SERVING for good, and every watcher told."""
        if self._draining:
            return
        self._draining = True
        for service in list(self._status):
            self._set(service, _NOT_SERVING)

    def _set(self, service: str, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        self._status[service] = status
        for changed in self._watchers.get(service, ()):
            changed.set()

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: Any
    ) -> health_pb2.HealthCheckResponse:
        status = self._status.get(request.service)
        if status is None:
            context.set_code(grpc.StatusCode.NOT_FOUND)
            context.set_details(f"no health status for service {request.service!r}")
            return health_pb2.HealthCheckResponse()  # not sent: the code is not OK
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: Any) -> None:
        if self.max_watchers and self._watching >= self.max_watchers:
            self._refuse_watch()
            end_call(context, self._refusal())
            return
        changed = asyncio.Event()
        watchers = self._watchers[request.service]
        watchers.add(changed)
        self._watching += 1
        self._watchers_metric.add(1)
        try:
            sent = None
            while True:
                changed.clear()
                status = self._status.get(request.service, _SERVICE_UNKNOWN)
                if status != sent:  # only the latest status matters to a watcher (gRFC A17)
                    await context.write(health_pb2.HealthCheckResponse(status=status))
                    sent = status
                await changed.wait()
        finally:
            self._watching -= 1
            self._watchers_metric.add(-1)
            watchers.discard(changed)
            if not watchers:
                self._watchers.pop(request.service, None)
            if self._at_cap:
                self._at_cap = False
                logger.info("health: Watch streams below their cap (%d) again", self.max_watchers)

    def _refuse_watch(self) -> None:
        # Logged when the cap is reached, not per refusal: a flood of Watch calls must
        # not become a flood of log lines (``refused`` counts them all).
        self.refused += 1
        self._refusals_metric.add(1)
        if not self._at_cap:
            self._at_cap = True
            logger.warning(
                "health: %d Watch streams open, the cap (security.limits.max_health_watchers); "
                "further Watch calls are refused until one ends",
                self.max_watchers,
            )

    def _refusal(self) -> status_pb2.Status:
        packed = status_pb2.Status(
            code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0],
            message=(
                f"the adapter has {self.max_watchers} health Watch streams open, its limit "
                "(security.limits.max_health_watchers); Check still answers"
            ),
        )
        packed.details.add().Pack(
            error_details_pb2.ErrorInfo(
                reason="TOO_MANY_HEALTH_WATCHERS",
                domain=ERROR_DOMAIN,
                metadata={"limit": str(self.max_watchers)},
            )
        )
        packed.details.add().Pack(
            error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=_RETRY_AFTER_SECONDS))
        )
        return packed
