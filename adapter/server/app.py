"""Assembles the gRPC server: every upstream-backed service found in the protos,
health checking, reflection, tracing, graceful shutdown.

Example::

    async with AdapterServer(settings) as server:
        print("listening on", server.port)
        await server.wait_for_termination()
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType

import grpc
import httpx
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.trace import TracerProvider

from adapter.assembly.callers import build_credentials, build_upstream_caller
from adapter.config.settings import Settings
from adapter.descriptors.catalog import proto_files
from adapter.descriptors.loader import ServiceSpec, load_service_specs
from adapter.descriptors.method_spec import SpecError
from adapter.telemetry.rpc_spans import skip_self_traced
from adapter.transcoding.json_codec import JsonCodec
from adapter.transcoding.page_tokens import PageTokenSigner
from adapter.upstream.caller import UpstreamCaller

from .grpc_options import server_options
from .method_handlers import method_handler
from .reflection import enable_reflection
from .request_decoding import RequestDecodingInterceptor

__all__ = ["AdapterServer", "ExtraService"]

#: A servicer the adapter serves beside the upstream-backed ones:
#: (full service name, function registering it on a server).
ExtraService = tuple[str, Callable[[aio.Server], None]]

logger = logging.getLogger(__name__)


class AdapterServer:
    """The gRPC face of the adapter. ``start()`` / ``stop()``, or ``async with``."""

    def __init__(
        self,
        settings: Settings,
        *,
        tracer_provider: TracerProvider | None = None,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
        callers: Mapping[str, UpstreamCaller] | None = None,
        extra_services: Sequence[ExtraService] = (),
    ) -> None:
        """``callers`` lets the owner share upstream callers (e.g. with event
        backfill); missing ones are built from configuration and closed on stop."""
        self.settings = settings
        self.specs: list[ServiceSpec] = load_service_specs(
            files=proto_files(settings.descriptors.descriptor_sets)
        )
        missing = sorted({s.upstream for s in self.specs} - set(settings.upstreams))
        if missing:
            users = {m: [s.name for s in self.specs if s.upstream == m] for m in missing}
            raise SpecError(
                "; ".join(
                    f"upstream {m!r} (used by {', '.join(users[m])}) is not configured: "
                    f"set MESH_UPSTREAMS__{m.upper()}__BASE_URL and "
                    f"MESH_UPSTREAMS__{m.upper()}__AUTH__API_KEY"
                    for m in missing
                )
            )
        self._tracer_provider = tracer_provider
        self._transports = dict(transports or {})
        self._shared_callers = dict(callers or {})
        self._callers: dict[str, UpstreamCaller] = {}
        self._extra_services = list(extra_services)
        self._server: aio.Server | None = None
        self._health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self.port = 0

    @property
    def service_names(self) -> list[str]:
        return [s.name for s in self.specs]

    async def start(self) -> int:
        """Binds and starts serving; returns the bound port."""
        codec = JsonCodec()
        page_tokens = PageTokenSigner.from_settings(self.settings.page_tokens)
        grpc_settings = self.settings.grpc
        server = aio.server(
            interceptors=[
                # Upstream-backed services make their own spans (adapter/telemetry/rpc_spans.py).
                aio_server_interceptor(  # type: ignore[no-untyped-call]
                    tracer_provider=self._tracer_provider, filter_=skip_self_traced(self.service_names)
                ),
                # Inside tracing: a refused request to the services the interceptor traces is
                # still a span (upstream-backed ones start theirs in the handler, after decoding).
                RequestDecodingInterceptor(),
            ],
            options=server_options(grpc_settings),
        )
        for spec in self.specs:
            caller = self._shared_callers.get(spec.upstream)
            if caller is None:
                caller = self._callers.get(spec.upstream)
            if caller is None:
                upstream = self.settings.upstreams[spec.upstream]
                caller = build_upstream_caller(
                    spec.upstream,
                    upstream,
                    credentials=build_credentials(spec.upstream, upstream),
                    tracer_provider=self._tracer_provider,
                    transport=self._transports.get(spec.upstream),
                    methods=[m for s in self.specs if s.upstream == spec.upstream for m in s.methods],
                )
                self._callers[spec.upstream] = caller
            upstream_settings = self.settings.upstreams[spec.upstream]
            handlers = {
                m.name: grpc.unary_unary_rpc_method_handler(
                    method_handler(
                        m,
                        codec,
                        upstream_settings,
                        caller,
                        page_tokens=page_tokens,
                        tracer_provider=self._tracer_provider,
                    ).handle,
                    request_deserializer=m.input_type.FromString,
                    response_serializer=m.output_type.SerializeToString,
                )
                for m in spec.methods
            }
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(spec.name, handlers),))
        for _, register in self._extra_services:
            register(server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = [*self.service_names, *(name for name, _ in self._extra_services), health.SERVICE_NAME]
        if grpc_settings.reflection:
            names.append(reflection.SERVICE_NAME)
            enable_reflection(names, server)
        address = f"{grpc_settings.host}:{grpc_settings.port}"
        self.port = server.add_insecure_port(address)
        if not self.port:
            raise OSError(f"cannot listen on {address}")
        await server.start()
        self._server = server
        for name in ("", *self.service_names):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        logger.info(
            "serving %d services (%d methods) on %s:%d",
            len(self.specs),
            sum(len(s.methods) for s in self.specs),
            grpc_settings.host,
            self.port,
        )
        return self.port

    async def set_serving(self, service: str, serving: bool) -> None:
        """Reports ``service`` (any health name) as SERVING or NOT_SERVING."""
        if self._server is not None:
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if serving
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            await self._health.set(service, status)

    async def stop(self, grace: float | None = None) -> None:
        """Health goes NOT_SERVING, in-flight calls get ``grace`` seconds, then
        upstream pools close. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            await self._health.enter_graceful_shutdown()
            grace = self.settings.grpc.grace_period_seconds if grace is None else grace
            logger.info("shutting down: in-flight calls have %.1fs", grace)
            await server.stop(grace)
        callers, self._callers = self._callers, {}
        for caller in callers.values():
            await caller.aclose()

    async def wait_for_termination(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()

    async def __aenter__(self) -> AdapterServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop(0)
