"""The gRPC server: the services it is handed, health that follows the health
board, reflection, interceptors, graceful shutdown.

It builds nothing itself: the composition root (:mod:`adapter.assembly`) hands it
ready method handlers and servicers. Example::

    server = AdapterServer(settings.grpc, services=[...], board=board)
    await server.start()
    ...
    await server.stop()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from adapter.config.settings import GrpcSettings
from adapter.lifecycle.health import HealthBoard

from .accept_ahead import AcceptAhead
from .grpc_options import server_options
from .health_service import HealthService
from .method_table import MethodHandlers, MethodTable
from .reflection import enable_reflection

__all__ = ["AdapterServer", "Front", "ServedService"]

logger = logging.getLogger(__name__)

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Front(Protocol):
    """A second server of the same handlers (:class:`adapter.server.envoy_front.UnaryFront`)."""

    def close(self) -> None: ...

    async def wait_idle(self, within: float | None) -> bool: ...


@dataclass(frozen=True)
class ServedService:
    """One service of the server: generic method handlers by method name, or a
    function that registers a generated servicer (``EventService``) on what it is
    given (a :class:`~adapter.server.method_table.MethodTable`)."""

    name: str
    handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]] = field(default_factory=dict)
    register: Callable[[Any], None] | None = None


class AdapterServer:
    """The gRPC face of the adapter. ``start()`` / ``stop()`` (a lifecycle part)."""

    name = "grpc server"

    def __init__(
        self,
        settings: GrpcSettings,
        *,
        services: Sequence[ServedService],
        board: HealthBoard,
        interceptors: Sequence[Any] = (),
        method_interceptors: Sequence[Any] = (),
        credentials: grpc.ServerCredentials | None = None,
        reflection_enabled: bool = True,
        maximum_concurrent_rpcs: int | None = None,
        health_service: HealthService | None = None,
        extra_options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.settings = settings
        self.services = list(services)
        self._board = board
        self._interceptors = list(interceptors)
        self._method_interceptors = list(method_interceptors)
        self._methods = MethodHandlers({})
        self._credentials = credentials
        self._reflection = reflection_enabled
        self._extra_options = list(extra_options)
        self._max_rpcs = maximum_concurrent_rpcs
        self._server: aio.Server | None = None
        self._accept_ahead: AcceptAhead | None = None
        self.health = health_service if health_service is not None else HealthService(max_watchers=0)
        self.port = 0
        self._fronts: list[Front] = []

    @property
    def interceptors(self) -> list[Any]:
        """The interceptors run per call, outermost first (a front runs the same ones)."""
        return list(self._interceptors)

    @property
    def methods(self) -> MethodHandlers:
        """Every served method's handler as the per-method interceptors made it
        (empty until ``start()``; a front answers with these)."""
        return self._methods

    @property
    def accept_ahead(self) -> AcceptAhead | None:
        """The accept loops besides grpc.aio's (``grpc.accept_ahead``), once started."""
        return self._accept_ahead

    def attach_front(self, front: Front) -> None:
        """Another server answering these services' calls (the envoy front): the
        graceful stop closes it with grpc.aio's and waits for its calls too."""
        self._fronts.append(front)

    @property
    def service_names(self) -> list[str]:
        return [s.name for s in self.services]

    async def start(self) -> None:
        """Binds and starts serving; ``port`` is the bound port."""
        settings = self.settings
        table = MethodTable()
        for service in self.services:
            if service.register is not None:
                service.register(table)
            else:
                table.add_registered_method_handlers(service.name, service.handlers)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, table)
        names = [*self.service_names, health.SERVICE_NAME]
        if self._reflection:
            names.append(reflection.SERVICE_NAME)
            enable_reflection(names, table)
        # Resolved before grpc's server exists: a method interceptor that fails here
        # leaves nothing to close.
        self._methods = await table.resolve(self._method_interceptors)
        server = aio.server(
            interceptors=self._interceptors,
            options=[*server_options(settings), *self._extra_options],
            maximum_concurrent_rpcs=self._max_rpcs or None,
        )
        handlers = (self._methods,)  # the accept-ahead loops must serve these very ones
        server.add_generic_rpc_handlers(handlers)
        unix = settings.unix_socket
        address = f"unix:{unix}" if unix is not None else f"{settings.host}:{settings.port}"
        try:
            try:
                if self._credentials is None:
                    self.port = server.add_insecure_port(address)
                else:
                    self.port = server.add_secure_port(address, self._credentials)
            except RuntimeError:  # grpcio's "Failed to bind ...; set GRPC_VERBOSITY=debug"
                self.port = 0
            if not self.port:
                raise OSError(f"cannot listen on {address}: in use, or not an address of this host")
            await server.start()
        except BaseException:
            await server.stop(None)  # a server that never served still holds its queue's descriptors
            raise
        self._server = server
        # grpc's limiter (maximum_concurrent_rpcs) lives in grpc.aio's own accept loop only.
        if not self._max_rpcs:
            self._accept_ahead = AcceptAhead(
                server,
                handlers=handlers,
                interceptors=self._interceptors,
                extra=settings.accept_ahead - 1,
            )
            self._accept_ahead.start()
        for name in ("", *self.service_names):
            if self._board.serving(name) is None:
                self._board.set(name, True)
        self._board.listen(self._follow)
        logger.info(
            "serving %d services on %s (%s)",
            len(self.services),
            address if unix is not None else f"{settings.host}:{self.port}",
            "TLS" if self._credentials is not None else "plaintext",
        )

    def _follow(self, name: str, serving: bool) -> None:
        """Board -> gRPC health."""
        if self._server is not None:
            self.health.set(name, _SERVING if serving else _NOT_SERVING)

    async def stop(self, grace: float | None = None, *, drain: float | None = None) -> None:
        """Health goes NOT_SERVING; new calls are still served for ``drain`` seconds
        (``drain_seconds`` by default when ``grace`` is None, else none), so health-
        watching clients leave first; then in-flight calls get ``grace`` seconds
        (``grace_period_seconds`` by default). Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self.health.enter_graceful_shutdown()
        if drain is None:
            drain = self.settings.drain_seconds if grace is None else 0.0
        if drain > 0:
            logger.info("draining: health NOT_SERVING, still serving new calls for %.1fs", drain)
            await asyncio.sleep(drain)
        grace = self.settings.grace_period_seconds if grace is None else grace
        logger.info("shutting down: in-flight calls have %.1fs", grace)
        for front in self._fronts:
            front.close()
        idle = await asyncio.gather(server.stop(grace), *(f.wait_idle(grace) for f in self._fronts))
        if self._accept_ahead is not None:
            await self._accept_ahead.stop()
        if not all(idle[1:]):
            logger.warning("calls of the envoy front were still in flight after the %.1fs grace", grace)

    async def wait_for_termination(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()
