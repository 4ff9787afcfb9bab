"""The upstream-backed methods' handlers are made once by the interceptors below the
memo and reused; everything that decides per call stands above it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from openframe.v1 import devices_pb2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from adapter.assembly.server_parts import server_interceptors
from adapter.security.audit import AuditLog
from adapter.security.authorizer import CallAuthorizer
from adapter.server.call_cap import ConcurrentCallCap
from adapter.server.handler_memo import MethodHandlerMemo

SELF_TRACED = "openframe.v1.DeviceService"
GET_DEVICE = f"/{SELF_TRACED}/GetDevice"


async def _echo(request: Any, context: Any) -> Any:
    return request


HANDLER = grpc.unary_unary_rpc_method_handler(
    _echo,
    request_deserializer=devices_pb2.GetDeviceRequest.FromString,
    response_serializer=devices_pb2.Device.SerializeToString,
)


class Details(grpc.HandlerCallDetails):  # type: ignore[misc]  # grpc-stubs: an untyped base
    def __init__(self, method: str, metadata: Sequence[tuple[str, str]]) -> None:
        self.method = method
        self.invocation_metadata = tuple(metadata)


async def _through(interceptors: Sequence[Any], details: Details, found: list[str]) -> Any:
    """Resolves a handler the way grpc.aio does: each interceptor with the next as its continuation."""

    async def chain(index: int, d: grpc.HandlerCallDetails) -> Any:
        if index == len(interceptors):
            found.append(d.method)
            return HANDLER if d.method == GET_DEVICE else None
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]] = lambda d2: chain(index + 1, d2)  # noqa: E731
        return await interceptors[index].intercept_service(continuation, d)

    return await chain(0, details)


def _assembled() -> list[Any]:
    return server_interceptors(
        tracer_provider=TracerProvider(),
        meter_provider=MeterProvider([InMemoryMetricReader()]),
        self_traced=[SELF_TRACED],
        authorizer=CallAuthorizer(permissions={}, policy=None, jwt=None, audit=AuditLog()),
        max_concurrent_rpcs=8,
    )


async def test_below_the_memo_a_method_gets_one_handler_whatever_the_call() -> None:
    """What makes keeping the handler safe: each interceptor below the memo hands out
    the same handler for a self-traced method, whatever the call's metadata (a new
    interceptor that decided per call there would fail this)."""
    interceptors = _assembled()
    below = interceptors[[type(i) for i in interceptors].index(MethodHandlerMemo) + 1 :]
    assert below, "the memo is the last interceptor: nothing to keep"
    first = await _through(
        below, Details(GET_DEVICE, [("traceparent", "00-" + "1" * 32 + "-" + "2" * 16 + "-01")]), []
    )
    again = await _through(below, Details(GET_DEVICE, [("authorization", "Bearer x"), ("x-other", "y")]), [])
    assert first is not None and first is again


async def test_what_decides_per_call_stands_above_the_memo() -> None:
    kinds = [type(i) for i in _assembled()]
    memo = kinds.index(MethodHandlerMemo)
    assert kinds.index(CallAuthorizer) < memo and kinds.index(ConcurrentCallCap) < memo
    assert all(k not in (CallAuthorizer, ConcurrentCallCap) for k in kinds[memo + 1 :])


async def test_the_memo_answers_later_calls_of_its_services_without_the_chain() -> None:
    memo = MethodHandlerMemo([SELF_TRACED])
    found: list[str] = []
    first = await _through([memo], Details(GET_DEVICE, []), found)
    again = await _through([memo], Details(GET_DEVICE, []), found)
    assert first is HANDLER and again is HANDLER
    assert found == [GET_DEVICE]  # the chain ran once
    # Another service, or a method without a handler: resolved every time, never kept.
    other = "/grpc.health.v1.Health/Check"
    await _through([memo], Details(other, []), found)
    await _through([memo], Details(other, []), found)
    missing = f"/{SELF_TRACED}/Nope"
    await _through([memo], Details(missing, []), found)
    await _through([memo], Details(missing, []), found)
    assert found == [GET_DEVICE, other, other, missing, missing]
