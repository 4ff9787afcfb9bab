"""What stands in front of every handler, outermost first:

1. tracing (OpenTelemetry's grpc.aio server interceptor): every call is a span,
   refused ones included;
2. request decoding: bytes that do not decode are INVALID_ARGUMENT naming the
   field, never UNKNOWN (issue 7);
"""

from __future__ import annotations

from typing import Any

from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.trace import TracerProvider

from adapter.server.request_decoding import RequestDecodingInterceptor

__all__ = ["server_interceptors"]


def server_interceptors(*, tracer_provider: TracerProvider | None) -> list[Any]:
    return [
        aio_server_interceptor(tracer_provider=tracer_provider),  # type: ignore[no-untyped-call]
        RequestDecodingInterceptor(),  # inside tracing: a refused request is still a span
    ]
