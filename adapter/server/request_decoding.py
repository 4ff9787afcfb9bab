"""Requests that do not deserialize answer INVALID_ARGUMENT, for every service.

When a handler's ``request_deserializer`` raises, grpc-python answers
``UNKNOWN: Unexpected <class 'DecodeError'>`` and logs a traceback: the
deserializer runs before any handler and has no context to abort with.
:class:`RequestDecodingInterceptor` therefore wraps each handler's deserializer
so that it returns an :class:`UndecodableRequest` instead of raising, and wraps
the handler so that it answers INVALID_ARGUMENT with a BadRequest naming the
field (:mod:`adapter.server.wire_diagnosis`) when it receives one. It applies to
every handler of the server: the upstream-backed RPCs, EventService, health and
reflection.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf import descriptor as _d
from google.rpc import status_pb2
from grpc import aio
from grpc_status import rpc_status

from adapter.status.call_ending import end_call
from adapter.status.mapping import to_rpc_status
from adapter.telemetry.repeated_lines import RepeatedLines
from adapter.transcoding.errors import BindingError

from .wire_diagnosis import locate_decode_failure

__all__ = [
    "RequestDecodingInterceptor",
    "UndecodableRequest",
    "refuse_undecodable",
    "refuses_undecodable",
    "tolerant_deserializer",
]

logger = logging.getLogger(__name__)
#: One line per request type, then one per 10 s with a count: a caller can send these
#: in a loop.
_REFUSAL_LINES = RepeatedLines(logger)

Deserializer = Callable[[bytes], Any]


@dataclass(frozen=True, slots=True)
class UndecodableRequest:
    """What a handler receives instead of a request that did not parse."""

    type_name: str
    field: str
    problem: str

    def error(self) -> BindingError:
        what = f"the request is not a valid {self.type_name or 'message'}"
        return BindingError(self.field, f"{what}: {self.problem}" if not self.field else self.problem)


def _descriptor(deserialize: Deserializer) -> _d.Descriptor | None:
    # Generated code passes ``SomeRequest.FromString``, bound to the message class.
    owner = getattr(deserialize, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return descriptor if isinstance(descriptor, _d.Descriptor) else None


def tolerant_deserializer(deserialize: Deserializer) -> Deserializer:
    """``deserialize`` returning an UndecodableRequest where it would raise."""
    descriptor = _descriptor(deserialize)
    type_name = descriptor.full_name if descriptor is not None else ""

    def run(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # DecodeError, RecursionError, a custom parser's own errors
            found = locate_decode_failure(descriptor, data)
            field, problem = found if found is not None else ("", _reason(exc))
            return UndecodableRequest(type_name=type_name, field=field, problem=problem)

    return run


def _reason(exc: Exception) -> str:
    text = str(exc).rsplit(": ", 1)[-1]  # "Error parsing message with type 'x': <reason>"
    return text[:200] or type(exc).__name__


def _refusal(request: UndecodableRequest) -> status_pb2.Status:
    status = to_rpc_status(request.error())
    _REFUSAL_LINES.log(
        logging.INFO,
        request.type_name,
        "refused an undecodable %s: %s",
        request.type_name or "request",
        status.message,
    )
    return status


Behavior = Callable[..., Any]
B = TypeVar("B", bound=Behavior)

_REFUSES_ITSELF = "_refuses_undecodable_requests"


def refuses_undecodable(behavior: B) -> B:
    """Marks a unary coroutine behavior that answers an UndecodableRequest itself
    (``if type(request) is UndecodableRequest: return refuse_undecodable(context, request)``
    before anything else), so :func:`guarded_handler` leaves it unwrapped: the wrapper's
    coroutine cost ~1% of a call's CPU in place (docs/benchmarks.md)."""
    setattr(behavior, _REFUSES_ITSELF, True)
    return behavior


def refuse_undecodable(context: Any, request: UndecodableRequest) -> None:
    """Ends the call with the refusal of ``request`` (what the wrapper answers)."""
    end_call(context, _refusal(request))


def _guard_request(behavior: Behavior) -> Behavior:
    """Unary request: refuse an UndecodableRequest before ``behavior`` (an async
    generator or a coroutine function, see :func:`_is_async`) runs."""
    if getattr(behavior, _REFUSES_ITSELF, False) and inspect.iscoroutinefunction(behavior):
        return behavior
    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            if isinstance(request, UndecodableRequest):
                end_call(context, _refusal(request))
                return
            async for response in behavior(request, context):
                yield response

        return stream

    async def unary(request: Any, context: Any) -> Any:
        if isinstance(request, UndecodableRequest):
            end_call(context, _refusal(request))
            return None
        return await behavior(request, context)

    return unary


def _guard_requests(behavior: Behavior) -> Behavior:
    """Streamed requests: refuse at the first UndecodableRequest read."""

    async def checked(requests: Any, context: Any) -> AsyncIterator[Any]:
        async for request in requests:
            if isinstance(request, UndecodableRequest):
                # Mid-stream, the behavior reading these requests must be stopped, and
                # only abort does that: its connection may lose a stream to grpcio's
                # quirk (adapter/status/call_ending.py). Only reflection streams its
                # requests, and only a caller's own connection pays.
                await context.abort_with_status(rpc_status.to_status(_refusal(request)))
            yield request

    if inspect.isasyncgenfunction(behavior):

        async def stream(requests: Any, context: Any) -> AsyncIterator[Any]:
            async for response in behavior(checked(requests, context), context):
                yield response

        return stream

    async def unary(requests: Any, context: Any) -> Any:
        result = behavior(checked(requests, context), context)
        return await result if inspect.isawaitable(result) else result

    return unary


def _is_async(behavior: Behavior) -> bool:
    # UpstreamMethodHandler is an object with an async __call__.
    return (
        inspect.iscoroutinefunction(behavior)
        or inspect.isasyncgenfunction(behavior)
        or inspect.iscoroutinefunction(type(behavior).__call__)
    )


# The server resolves the same handler object on every call of a method: it is wrapped
# once, not per call (the wrapping cost ~15 µs a call in the peer bench's profile).
@functools.lru_cache(maxsize=1024)
def guarded_handler(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with a tolerant deserializer and the matching refusal."""
    if handler.request_deserializer is None:
        return handler
    deserializer = tolerant_deserializer(handler.request_deserializer)
    serializer = handler.response_serializer
    if handler.unary_unary is not None and _is_async(handler.unary_unary):
        return grpc.unary_unary_rpc_method_handler(
            _guard_request(handler.unary_unary), deserializer, serializer
        )
    if handler.unary_stream is not None and _is_async(handler.unary_stream):
        return grpc.unary_stream_rpc_method_handler(
            _guard_request(handler.unary_stream), deserializer, serializer
        )
    if handler.stream_unary is not None and _is_async(handler.stream_unary):
        return grpc.stream_unary_rpc_method_handler(
            _guard_requests(handler.stream_unary), deserializer, serializer
        )
    if handler.stream_stream is not None and _is_async(handler.stream_stream):
        return grpc.stream_stream_rpc_method_handler(
            _guard_requests(handler.stream_stream), deserializer, serializer
        )
    return handler  # a synchronous handler: left as it is (the adapter registers none)


class RequestDecodingInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Applies :func:`guarded_handler` to every method the server resolves."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        return handler if handler is None else guarded_handler(handler)
