"""What stands in front of every handler, outermost first. The first two decide per
call and run as grpc.aio server interceptors; the others read nothing of a call but
its method, so they wrap each method's handler once when the server starts
(adapter/server/method_table.py) and cost a call nothing to find:

0. the authorization gate (:class:`~adapter.security.authorizer.CallAuthorizer`),
   when a policy is configured: a refused call is answered before any other work
   (its request is not even parsed: the gate parses it once the caller is authorized),
   and the handlers below see the caller in
   ``adapter.security.identity.current_principal()``;
1. the server-wide cap on calls in flight (``security.limits.max_concurrent_rpcs``),
   RESOURCE_EXHAUSTED with ``RetryInfo`` past it; behind the gate, so callers it
   refuses never take the place of allowed ones;
   (per call above this line; per method below it)
2. tracing (OpenTelemetry's grpc.aio server interceptor) for the services that do
   not trace themselves (reflection, EventService): upstream-backed handlers make
   their own server span (adapter/telemetry/rpc_spans.py), which costs a fraction
   of the interceptor's wrapping (docs/benchmarks.md). Health is not traced: the
   interceptor breaks streaming handlers that write with ``context.write``, which
   grpc_health's ``Watch`` does (opentelemetry-python-contrib issue 3066), and
   client-side health checking of round_robin clients relies on ``Watch``;
3. ``rpc.server.duration`` for those same services (rpc_metrics.py);
4. request decoding: bytes that do not decode are INVALID_ARGUMENT naming the
   field, never UNKNOWN (issue 7).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from grpc_health.v1.health import SERVICE_NAME as HEALTH_SERVICE
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from adapter.security.authorizer import CallAuthorizer
from adapter.server.call_cap import ConcurrentCallCap
from adapter.server.request_decoding import RequestDecodingInterceptor
from adapter.telemetry.rpc_metrics import RpcDurationInterceptor
from adapter.telemetry.rpc_spans import skip_self_traced

__all__ = ["ServerInterceptors", "server_interceptors"]


@dataclass(frozen=True)
class ServerInterceptors:
    per_call: tuple[Any, ...]
    per_method: tuple[Any, ...]


def server_interceptors(
    *,
    tracer_provider: TracerProvider | None,
    meter_provider: MeterProvider | None = None,
    self_traced: Sequence[str] = (),
    authorizer: CallAuthorizer | None = None,
    max_concurrent_rpcs: int = 0,
) -> ServerInterceptors:
    per_call = (
        *([authorizer] if authorizer is not None else []),
        *([ConcurrentCallCap(max_concurrent_rpcs)] if max_concurrent_rpcs else []),
    )
    per_method = (
        # Applied at start-up, its "instrumentation suppressed?" check runs then, not
        # per call: nothing suppresses instrumentation around a server's calls.
        aio_server_interceptor(  # type: ignore[no-untyped-call]
            tracer_provider=tracer_provider, filter_=skip_self_traced([*self_traced, HEALTH_SERVICE])
        ),
        RpcDurationInterceptor(meter_provider, self_recorded=self_traced),
        RequestDecodingInterceptor(),  # inside tracing: a refused request is still a span
    )
    return ServerInterceptors(per_call=per_call, per_method=per_method)
