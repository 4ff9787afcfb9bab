"""The server-wide cap on concurrent RPCs (``security.limits.max_concurrent_rpcs``).

Not grpc's own ``maximum_concurrent_rpcs``: that one refuses with a bare
RESOURCE_EXHAUSTED "Concurrent RPC limit exceeded!" (no details, nothing naming
the setting) and counts health checks too, so a busy adapter would fail its
liveness probes and be restarted when it is merely full. This interceptor counts
the calls in flight (streams included, while open), leaves health alone, and
refuses the call past the cap with RESOURCE_EXHAUSTED, ``ErrorInfo`` reason
``SERVER_AT_CAPACITY`` and ``RetryInfo``.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc import aio
from grpc_status import rpc_status

from adapter.status.call_ending import end_call
from adapter.status.mapping import ERROR_DOMAIN

__all__ = ["ConcurrentCallCap"]

_UNCAPPED = ("/grpc.health.v1.Health/",)

# grpc-stubs lags behind grpc.aio (handler._replace, abort_with_status): loosely typed.
Handler = Any


class ConcurrentCallCap(aio.ServerInterceptor):  # type: ignore[type-arg]
    """At most ``limit`` calls in flight (0 = no cap)."""

    def __init__(self, limit: int, *, retry_after_seconds: float = 1.0) -> None:
        self.limit = limit
        self.in_flight = 0
        self.refused = 0
        self._retry_after = retry_after_seconds

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler: Handler = await continuation(details)
        if handler is None or not self.limit or details.method.startswith(_UNCAPPED):
            return handler
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=self._unary(handler.unary_unary))
        if handler.stream_unary is not None:
            return handler._replace(stream_unary=self._unary(handler.stream_unary))
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=self._streaming(handler.unary_stream))
        if handler.stream_stream is not None:
            return handler._replace(stream_stream=self._streaming(handler.stream_stream))
        return handler

    def _status(self) -> grpc.Status:
        message = (
            f"the adapter has {self.limit} calls in flight, its limit (max_concurrent_rpcs); retry shortly"
        )
        packed = status_pb2.Status(code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], message=message)
        info = error_details_pb2.ErrorInfo(
            reason="SERVER_AT_CAPACITY", domain=ERROR_DOMAIN, metadata={"limit": str(self.limit)}
        )
        retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=int(self._retry_after)))
        packed.details.add().Pack(info)
        packed.details.add().Pack(retry)
        return rpc_status.to_status(packed)

    def _unary(self, behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def capped(request: Any, context: Any) -> Any:
            if self.in_flight >= self.limit:
                self.refused += 1
                end_call(context, self._status())
                return None
            self.in_flight += 1
            try:
                return await behavior(request, context)
            finally:
                self.in_flight -= 1

        return capped

    def _streaming(self, behavior: Callable[..., Any]) -> Callable[..., Any]:
        if not inspect.isasyncgenfunction(behavior):  # a coroutine writing with context.write
            return self._unary(behavior)

        async def capped(request: Any, context: Any) -> AsyncIterator[Any]:
            if self.in_flight >= self.limit:
                self.refused += 1
                end_call(context, self._status())
                return
            self.in_flight += 1
            try:
                async for item in behavior(request, context):
                    yield item
            finally:
                self.in_flight -= 1

        return capped
