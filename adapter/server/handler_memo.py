"""The handlers of the upstream-backed methods, as the interceptors make them, kept.

grpc.aio runs every server interceptor's ``intercept_service`` for every call, even
when all an interceptor does for a method is hand the same handler on. For the
services that trace themselves that is what the interceptors below this one do:
tracing and ``rpc.server.duration`` skip them, and request decoding wraps each
method's handler once (``guarded_handler`` is memoised). So their handler is a
function of the method alone: this interceptor keeps it the first time and answers
later calls with it, which saves the rest of the chain (cache hits: 427 -> 398 µs of
CPU a call, about 7%, docs/benchmarks.md).

It must stand *below* anything that decides per call (the authorization gate, the
cap on calls in flight); ``tests/server/test_handler_memo.py`` checks that each
interceptor below it returns one handler per method of these services, whatever
the call's metadata.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any

import grpc
from grpc import aio

__all__ = ["MethodHandlerMemo"]

# grpc-stubs types RpcMethodHandler as an ABC; at run time it is a namedtuple.
Handler = Any


class MethodHandlerMemo(aio.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(self, services: Collection[str]) -> None:
        self._services = frozenset(services)
        # Bounded: only methods the server has a handler for, of these services.
        self._handlers: dict[str, Handler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        method: str = details.method or ""
        handler = self._handlers.get(method)
        if handler is not None:
            return handler
        handler = await continuation(details)
        if handler is not None and method[1:].split("/", 1)[0] in self._services:
            self._handlers[method] = handler
        return handler
