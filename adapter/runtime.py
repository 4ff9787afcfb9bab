"""The whole adapter as one object: everything ``python -m adapter`` runs.

:class:`MeshAdapter` is the composition root's runner: it reads the protos once
(:mod:`adapter.assembly`), builds every part once, and runs them as one
:class:`~adapter.lifecycle.LifecycleGroup` in this order:

    upstream callers -> large payload worker -> event spool -> Kafka sink -> drainer
    -> webhook receiver -> WebSocket streams -> gRPC server -> operator port

A part that fails to start stops the ones before it. Stop is the reverse: the
gRPC server drains in-flight calls first, sources stop, the drainer gets its
grace period to empty the spool into Kafka, and what remains stays spooled for the
next start. Background tasks are supervised; health is pushed by the parts to one
:class:`~adapter.lifecycle.HealthBoard` that gRPC health and ``/readyz`` follow.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

from meshadapter.v1 import events_pb2_grpc
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider
from prometheus_client import CollectorRegistry

from adapter.assembly.catalog import Catalog, load_catalog
from adapter.assembly.rpc import build_transcoders, rest_transcoders, upstream_services
from adapter.assembly.upstream_files import check_upstream_files
from adapter.config.settings import Settings
from adapter.descriptors.permissions import REFLECTION_SERVICES, served_permissions
from adapter.events.pipeline import EventPipeline
from adapter.events.routing import topic_name
from adapter.lifecycle import HealthBoard, LifecycleGroup, Part, Supervisor, part
from adapter.resilience.rate_limiter import UpstreamRateLimiter
from adapter.server.app import AdapterServer, ServedService
from adapter.server.descriptor_limit import RESERVED_DESCRIPTORS, ensure_descriptors
from adapter.server.event_service import EventStreamServicer
from adapter.server.grpc_options import limit_options
from adapter.server.health_service import HealthService
from adapter.server.large_payloads import LargePayloadWorker
from adapter.server.reply_spin import ReplySpin
from adapter.telemetry.metrics import build_meter_provider
from adapter.telemetry.ops_server import OpsServer
from adapter.telemetry.repeated_lines import flush_held_lines
from adapter.transcoding.json_codec import JsonCodec
from adapter.transcoding.page_tokens import PageTokenSigner
from adapter.upstream.caller import UpstreamCaller
from adapter.upstream.credentials import CredentialProvider

from .assembly.callers import build_callers, default_stack
from .assembly.event_parts import EVENT_SERVICE, build_event_pipeline, event_parts
from .assembly.security_parts import (
    SUBSCRIBE_METHOD,
    GrpcSecurity,
    build_grpc_security,
    build_policy,
    subscribe_permissions,
)
from .assembly.server_parts import server_interceptors
from .helper_threads import HelperThreadPolicy

__all__ = ["MeshAdapter"]

logger = logging.getLogger(__name__)


class MeshAdapter:
    """Everything ``python -m adapter`` runs. ``start()`` / ``stop()`` or ``async with``.

    Without a ``meter_provider``, it builds one from ``settings.telemetry`` (the
    Prometheus registry ``/metrics`` serves, OTLP when configured).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self._tracer_provider = tracer_provider
        if meter_provider is None and metrics_registry is None:
            meter_provider, metrics_registry = build_meter_provider(settings.telemetry)
        self._meter_provider = meter_provider
        self._registry = metrics_registry
        self.board = HealthBoard()
        self.supervisor = Supervisor(self.board, on_fatal=self._fatal, policy=settings.on_task_death)
        self.catalog: Catalog | None = None
        self.credentials: dict[str, CredentialProvider] = {}
        self.callers: dict[str, UpstreamCaller] = {}
        self.events: EventPipeline | None = None
        self.server: AdapterServer | None = None
        self.security: GrpcSecurity | None = None
        self.ops: OpsServer | None = None
        self._group: LifecycleGroup | None = None
        self._fatal_event = asyncio.Event()
        self._stopped = asyncio.Event()
        self.fatal: str = ""

    # -- assembly ------------------------------------------------------------------------

    def _assemble(self) -> list[Part]:
        settings = self.settings
        catalog = self.catalog = load_catalog(settings)
        codec = JsonCodec()
        page_tokens = PageTokenSigner.from_settings(settings.page_tokens)
        # Read first: the callers route by its tenant bindings, the gate checks its grants.
        policy = build_policy(settings)
        check_upstream_files(settings)
        self.limiters: list[UpstreamRateLimiter] = []
        self.credentials, self.callers = build_callers(
            settings,
            catalog.methods_by_upstream(),
            tracer_provider=self._tracer_provider,
            meter_provider=self._meter_provider,
            policy=policy.current if policy is not None else None,
            limiters=self.limiters,
        )
        transcoders = build_transcoders(catalog, settings, codec=codec, page_tokens=page_tokens)
        large_payloads = LargePayloadWorker(meter_provider=self._meter_provider)
        services = upstream_services(
            catalog,
            transcoders=transcoders,
            callers=self.callers,
            tracer_provider=self._tracer_provider,
            meter_provider=self._meter_provider,
            large_payloads=large_payloads,
            failure_log_interval=settings.telemetry.failure_log_interval_seconds,
            reply_spin=reply_spin(settings),
        )
        parts: list[Part] = [
            part("upstream callers", _nothing, self._close_callers),
            part("large payload worker", _nothing, large_payloads.aclose),
        ]
        if settings.events.enabled:
            self.events = build_event_pipeline(
                catalog,
                settings,
                codec=codec,
                transcoders=rest_transcoders(transcoders),
                callers={name: default_stack(caller) for name, caller in self.callers.items()},
                credentials=self.credentials,
                board=self.board,
                supervisor=self.supervisor,
                tracer_provider=self._tracer_provider,
                meter_provider=self._meter_provider,
                limiters=self.limiters,
            )
            servicer = self.events.subscriptions
            assert servicer is not None
            services.append(
                ServedService(
                    EVENT_SERVICE,
                    register=lambda server: events_pb2_grpc.add_EventServiceServicer_to_server(
                        servicer, server
                    ),
                )
            )
            dead_letters = topic_name(settings.events.dead_letter_topic, settings.events)
            topics = [*sorted({t for r in catalog.routes for t in r.topics}), dead_letters]
            parts.extend(event_parts(self.events, topics))
        # Every served method's permission, read before anything listens (SpecError
        # when one lacks it); reflection's is included whether or not it is served.
        permissions = served_permissions([s.name for s in services] + [REFLECTION_SERVICES[0]])
        request_permissions = {}
        if self.events is not None and isinstance(self.events.subscriptions, EventStreamServicer):
            request_permissions[SUBSCRIBE_METHOD] = subscribe_permissions(self.events.subscriptions.topics)
        security = self.security = build_grpc_security(
            settings, permissions=permissions, policy=policy, request_permissions=request_permissions
        )
        limits = settings.security.limits
        interceptors = server_interceptors(
            tracer_provider=self._tracer_provider,
            meter_provider=self._meter_provider,
            self_traced=[s.name for s in catalog.specs],
            authorizer=security.authorizer,
            max_concurrent_rpcs=limits.max_concurrent_rpcs,
        )
        self.server = AdapterServer(
            settings.grpc,
            services=services,
            board=self.board,
            interceptors=interceptors.per_call,
            method_interceptors=interceptors.per_method,
            credentials=security.credentials,
            reflection_enabled=security.reflection,
            health_service=HealthService(
                max_watchers=limits.max_health_watchers, meter_provider=self._meter_provider
            ),
            extra_options=limit_options(limits),
        )
        parts.append(self.server)
        if settings.telemetry.ops_enabled:
            self.ops = OpsServer(
                host=settings.telemetry.ops_host,
                port=settings.telemetry.ops_port,
                registry=self._registry,
                readiness=self.board.snapshot,
                why=self.board.why,
            )
            parts.append(part("operator port", self.ops.start, self.ops.stop))
        return parts

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Builds every part, then starts them in order (unwinding on failure)."""
        ensure_descriptors(self._connection_caps() + RESERVED_DESCRIPTORS)
        self._group = LifecycleGroup(self._assemble())
        await self._group.start()
        if self.settings.helper_threads == "batch":  # the parts' threads exist now
            # restart, whatever on_task_death says: the process serves as well without it
            self.supervisor.spawn("helper thread policy", HelperThreadPolicy().run, policy="restart")

    def _connection_caps(self) -> int:
        """Connections the ports may hold open at once: the gRPC port's cap (0: none
        set) and the webhook port's, when it serves."""
        caps = self.settings.security.limits.max_connections
        events = self.settings.events
        if events.enabled and events.webhook.enabled:
            caps += events.webhook.max_connections
        return caps

    async def stop(self, grace: float | None = None, *, drain: float | None = None) -> None:
        """Stops in reverse order of start; idempotent. ``drain``: seconds health reads
        NOT_SERVING while calls are still served (``grpc.drain_seconds`` by default
        when ``grace`` is None, else none); ``grace``: seconds in-flight calls then get
        (``grpc.grace_period_seconds`` by default). ``stop(0)`` stops now."""
        try:
            if self.server is not None:
                await self.server.stop(grace, drain=drain)  # first, with the caller's bounds
            group, self._group = self._group, None
            if group is not None:
                await group.stop()
        finally:
            # Whatever ended the parts' stop, the supervisor stops too: left running, it
            # restarts the tasks asyncio.run cancels on its way out, and the process hangs.
            await self.supervisor.stop()
            flush_held_lines()  # an outage's last lines held back, before the process ends
            self._stopped.set()

    async def _close_callers(self) -> None:
        callers, self.callers = self.callers, {}
        for caller in callers.values():
            await caller.aclose()

    def _fatal(self, task: str, cause: str) -> None:
        self.fatal = f"task {task} died ({cause})"
        logger.critical("exiting: %s (on_task_death = exit)", self.fatal)
        self._fatal_event.set()

    @property
    def grpc_port(self) -> int:
        return self.server.port if self.server is not None else 0

    @property
    def port(self) -> int:
        return self.grpc_port

    @property
    def service_names(self) -> list[str]:
        """The upstream-backed services served (from the protos)."""
        return [s.name for s in self.catalog.specs] if self.catalog is not None else []

    async def wait_for_termination(self) -> None:
        """Returns once the adapter stopped, or when a supervised task made it exit.
        (Not grpc's own wait: cancelling that one cancels the server's shutdown too.)"""
        stopped = asyncio.ensure_future(self._stopped.wait())
        fatal = asyncio.ensure_future(self._fatal_event.wait())
        try:
            await asyncio.wait([stopped, fatal], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            fatal.cancel()

    async def __aenter__(self) -> MeshAdapter:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop(0)


async def _nothing() -> None:
    return None


def reply_spin(settings: Settings) -> ReplySpin | None:
    """The handlers' spin after a lone call's reply: on grpc.aio's front only, where the
    next call reaches the loop through grpc's threads (adapter/server/reply_spin.py)."""
    microseconds = settings.grpc.reply_spin_microseconds
    if settings.grpc.front != "grpcio" or microseconds <= 0:
        return None
    return ReplySpin(microseconds / 1e6)
