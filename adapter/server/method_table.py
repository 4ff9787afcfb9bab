"""Every method the server serves, wrapped once by the interceptors that decide per method.

grpc.aio runs each server interceptor's ``intercept_service`` for every call: a
coroutine, a ``functools.partial`` and an await for each, even when an interceptor
hands the same handler on (about 6 µs a call for one pass-through interceptor,
docs/benchmarks.md). Of the adapter's interceptors, only the authorization gate and
the cap on calls in flight decide per call; tracing, ``rpc.server.duration`` and
request decoding read nothing of a call but its method name. So those are applied
here, once per method when the server starts, and the server runs only the per-call
ones (none by default). grpc.aio has no hook for this (its
``add_registered_method_handlers`` is a no-op on aio), hence this table.

:class:`MethodTable` stands in for the server while services register: the
generated ``add_*Servicer_to_server`` functions, grpc_health and grpc_reflection
call ``add_generic_rpc_handlers`` and ``add_registered_method_handlers`` on it.
:meth:`MethodTable.resolve` then runs each method through the interceptors, and
:class:`MethodHandlers` answers grpc.aio with one dictionary lookup a call (instead
of asking each service's generic handler in turn).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

__all__ = ["MethodHandlers", "MethodTable", "PerCallInterceptor"]

# grpc-stubs types RpcMethodHandler as an ABC; at run time it is a namedtuple.
Handler = Any


class PerCallInterceptor(TypeError):
    """An interceptor applied per method read a call's metadata: it decides per call."""


@dataclass(frozen=True)
class _MethodOnly:
    """The call details an interceptor sees at start-up: the method, and no metadata
    to read. One that reads it decides per call and belongs on the server instead:
    refused at start-up rather than served with the first call's answer."""

    method: str

    @property
    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        raise PerCallInterceptor(
            f"an interceptor applied once per method read the metadata of a call to {self.method}"
        )


async def _resolve_method(interceptors: Sequence[Any], method: str, handler: Handler) -> Handler:
    """``handler`` as the ``interceptors`` (outermost first) make it for ``method``."""
    seen = _MethodOnly(method)

    async def through(at: int, call: Any) -> Handler:
        if at == len(interceptors):
            return handler if call.method == method else None
        continuation: Callable[[Any], Awaitable[Handler]] = lambda inner: through(at + 1, inner)  # noqa: E731
        return await interceptors[at].intercept_service(continuation, call)

    return await through(0, seen)


class MethodTable:
    """The methods services register, by full name (``/package.Service/Method``)."""

    def __init__(self) -> None:
        self._methods: dict[str, Handler] = {}
        self._listed: set[str] = set()  # services whose methods were listed
        self._generic: set[str] = set()  # services registered by a generic handler

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, Handler]
    ) -> None:
        for name, handler in method_handlers.items():
            method = f"/{service_name}/{name}"
            if method in self._methods:
                raise ValueError(f"{method} is registered twice")
            self._methods[method] = handler
        self._listed.add(service_name)

    def add_generic_rpc_handlers(
        self, generic_rpc_handlers: Sequence[grpc.GenericRpcHandler[Any, Any]]
    ) -> None:
        # Generated code registers each service both ways; the methods come from
        # add_registered_method_handlers. A handler that is not a whole service's,
        # or whose service never lists its methods, would be served unwrapped or
        # not at all: refused at start-up, not found at the first call.
        for generic in generic_rpc_handlers:
            name = generic.service_name() if isinstance(generic, grpc.ServiceRpcHandler) else None
            if name is None:
                raise TypeError(
                    f"{generic!r} does not name its service: the method table cannot list its methods"
                )
            self._generic.add(name)

    async def resolve(self, interceptors: Sequence[Any]) -> MethodHandlers:
        """Each method's handler as the ``interceptors`` make it."""
        unlisted = self._generic - self._listed
        if unlisted:
            raise TypeError(f"services registered without their methods: {', '.join(sorted(unlisted))}")
        resolved: dict[str, Handler] = {}
        for method, handler in self._methods.items():
            made = await _resolve_method(interceptors, method, handler)
            if made is not None:
                resolved[method] = made
        return MethodHandlers(resolved)


class MethodHandlers(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    """All of the server's methods in one generic handler."""

    def __init__(self, handlers: Mapping[str, Handler]) -> None:
        self._handlers = dict(handlers)

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Handler:
        return self._handlers.get(handler_call_details.method)

    def get(self, method: str) -> Handler:
        return self._handlers.get(method)

    def __contains__(self, method: object) -> bool:
        return method in self._handlers

    @property
    def methods(self) -> list[str]:
        return list(self._handlers)
