"""``rpc.server.duration`` for the services whose handlers do not record it
themselves (health, reflection, EventService): upstream-backed handlers record it
with their span (rpc_spans.py), so every RPC is counted once, by method and code.

A small interceptor of our own because opentelemetry-instrumentation-grpc's
server interceptor records spans only, no metrics.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any

import grpc
from grpc import aio
from opentelemetry.metrics import MeterProvider

from .rpc_spans import RPC_METHOD, RPC_SERVICE, RPC_STATUS, RPC_SYSTEM, rpc_duration_histogram

__all__ = ["RpcDurationInterceptor"]

# grpc-stubs types RpcMethodHandler as an ABC; at run time it is a namedtuple (_replace).
Handler = Any


def _code_of(exc: BaseException) -> grpc.StatusCode:
    return grpc.StatusCode.CANCELLED if isinstance(exc, asyncio.CancelledError) else grpc.StatusCode.UNKNOWN


class RpcDurationInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(self, meter_provider: MeterProvider | None, *, self_recorded: Collection[str] = ()) -> None:
        self._duration = rpc_duration_histogram(meter_provider)
        self._skipped = frozenset(self_recorded)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler: Handler = await continuation(details)
        service, _, method = (details.method or "").lstrip("/").partition("/")
        if handler is None or service in self._skipped:
            return handler
        attributes = {RPC_SYSTEM: "grpc", RPC_SERVICE: service, RPC_METHOD: method}
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=self._unary(handler.unary_unary, attributes))
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=self._streaming(handler.unary_stream, attributes))
        if handler.stream_unary is not None:
            return handler._replace(stream_unary=self._unary(handler.stream_unary, attributes))
        if handler.stream_stream is not None:
            return handler._replace(stream_stream=self._streaming(handler.stream_stream, attributes))
        return handler

    def _record(
        self, started: float, attributes: dict[str, str], context: Any, fallback: grpc.StatusCode
    ) -> None:
        # An abort sets the context's code; an exception that escaped did not.
        code = context.code() if hasattr(context, "code") else None
        if code is None:
            code = fallback
        elif isinstance(code, int):  # grpc.aio reports the numeric value
            code = next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
        self._duration.series({**attributes, RPC_STATUS: code.value[0]}).record(
            (time.perf_counter() - started) * 1000.0
        )

    def _unary(
        self, behavior: Callable[..., Awaitable[Any]], attributes: dict[str, str]
    ) -> Callable[..., Awaitable[Any]]:
        async def measured(request: Any, context: Any) -> Any:
            started, fallback = time.perf_counter(), grpc.StatusCode.OK
            try:
                return await behavior(request, context)
            except BaseException as exc:
                fallback = _code_of(exc)
                raise
            finally:
                self._record(started, attributes, context, fallback)

        return measured

    def _streaming(self, behavior: Callable[..., Any], attributes: dict[str, str]) -> Callable[..., Any]:
        if not inspect.isasyncgenfunction(behavior):
            # A streaming handler that writes with ``context.write`` (grpc_health's
            # Watch) is a coroutine function: wrapped as one, not as a generator.
            return self._unary(behavior, attributes)

        async def measured(request: Any, context: Any) -> AsyncIterator[Any]:
            started, fallback = time.perf_counter(), grpc.StatusCode.OK
            try:
                async for item in behavior(request, context):
                    yield item
            except BaseException as exc:
                fallback = _code_of(exc)
                raise
            finally:
                self._record(started, attributes, context, fallback)

        return measured
