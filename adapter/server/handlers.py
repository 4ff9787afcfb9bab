"""The unary handler every upstream-backed RPC runs: bind, call, decode, or
fail with a rich status, inside the call's server span. Nothing in it is
specific to an endpoint.

:class:`MethodHandler` holds what every RPC shares (deadline, logging, the failure
status); :class:`UpstreamMethodHandler` makes a REST call, and
:class:`adapter.server.graphql_handler.GraphQLMethodHandler` a GraphQL one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import ParamSpec, Protocol, TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import status_pb2
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from adapter.descriptors.method_spec import MethodSpec
from adapter.security.audit import note_trace_id, note_upstream_path
from adapter.status.call_ending import end_call
from adapter.status.mapping import to_rpc_status
from adapter.telemetry.lean_tracer import LeanSpan
from adapter.telemetry.redaction import redacted
from adapter.telemetry.repeated_lines import DEFAULT_INTERVAL, RepeatedLines
from adapter.telemetry.rpc_spans import RpcCall, RpcSpans
from adapter.transcoding.json_codec import MalformedPayloadError
from adapter.transcoding.method_transcoder import MethodTranscoder
from adapter.transcoding.request_binding import BoundRequest
from adapter.transcoding.response_binding import UnexpectedContentTypeError
from adapter.upstream.caller import UpstreamCaller
from adapter.upstream.client import raise_for_status
from adapter.upstream.errors import UpstreamMalformedResponse
from adapter.upstream.messages import UpstreamResponse

from .large_payloads import LargePayloadWorker
from .reply_spin import ReplySpin
from .request_decoding import UndecodableRequest, refuse_undecodable, refuses_undecodable

__all__ = ["HandlerContext", "MethodHandler", "UpstreamMethodHandler"]

logger = logging.getLogger(__name__)

# Client-side problems are routine; log them quietly. Server-side ones loudly.
_QUIET = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
    }
)
_CODES = {c.value[0]: c for c in grpc.StatusCode}
P = ParamSpec("P")
T = TypeVar("T")


class HandlerContext(Protocol):
    """The part of ``grpc.aio.ServicerContext`` a handler uses (grpc-stubs lags
    behind grpc.aio here)."""

    def time_remaining(self) -> float | None: ...

    def invocation_metadata(self) -> Sequence[tuple[str, str | bytes]] | None: ...

    def set_trailing_metadata(self, trailing_metadata: tuple[tuple[str, str | bytes], ...]) -> None: ...

    def set_code(self, code: grpc.StatusCode) -> None: ...

    def set_details(self, details: str) -> None: ...


class MethodHandler:
    """Serves one RPC from its upstream: the deadline, logging and failure status every
    upstream-backed RPC shares. Subclasses make the call (:meth:`exchange`), or write
    :meth:`handle` out with :meth:`_begin` and :meth:`_failed` as the hot
    :class:`UpstreamMethodHandler` does, and may map failures of their own (:meth:`status_of`)."""

    def __init__(
        self,
        spec: MethodSpec,
        caller: UpstreamCaller,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        large_payloads: LargePayloadWorker | None = None,
        failure_log_interval: float = DEFAULT_INTERVAL,
        reply_spin: ReplySpin | None = None,
    ) -> None:
        self.spec = spec
        #: Counts the calls in flight, and polls after a lone call's reply (None: off).
        self._reply_spin = reply_spin
        self._caller = caller
        #: Read once: a caller stack's bound comes from its settings when it is built (and
        #: reading it walks every layer's property, a Python call each, on every call).
        self._default_timeout = caller.default_timeout
        self._spans = RpcSpans(tracer_provider, spec.path, meter_provider)
        #: A failed call's line: the first per status code at once, then one per interval.
        self._failure_lines = RepeatedLines(logger, interval=failure_log_interval)
        #: Where a large request is bound and a large answer decoded (None: on the loop).
        self._large_payloads = large_payloads

    @refuses_undecodable
    async def handle(self, request: Message | UndecodableRequest, context: HandlerContext) -> Message | None:
        """The gRPC behaviour. Register this bound method, not the object: grpc.aio
        needs a coroutine function and does not look inside callable objects."""
        if isinstance(request, UndecodableRequest):  # (refused here, not by a wrapper)
            refuse_undecodable(context, request)
            return None
        call, deadline = self._begin(request, context)
        try:
            response = await self.exchange(request, deadline=deadline, context=context)
        except asyncio.CancelledError:
            self._ended(call, grpc.StatusCode.CANCELLED, "cancelled by the caller")
            raise
        except Exception as exc:  # every failure leaves as a status, never UNKNOWN
            self._failed(call, exc, context)
            return None
        self._ended(call)
        return response

    def _begin(self, request: Message, context: HandlerContext) -> tuple[RpcCall, float]:
        """Starts the call's span; its deadline on the loop's clock."""
        call = self._spans.start(context.invocation_metadata())
        span = call.span
        note_trace_id(span.trace_id if type(span) is LeanSpan else span.get_span_context().trace_id)
        remaining = context.time_remaining()
        budget = self._default_timeout
        if remaining is not None:
            budget = min(budget, max(remaining, 0.0))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s request %s", self.spec.path, redacted(request))
        if self._reply_spin is not None:  # last: every call counted here reaches _ended
            self._reply_spin.started()
        return call, asyncio.get_running_loop().time() + budget

    def _ended(self, call: RpcCall, code: grpc.StatusCode = grpc.StatusCode.OK, message: str = "") -> None:
        """The call's span ends (its telemetry is recorded after the reply) and it stops
        counting as in flight."""
        self._spans.end(call, code, message)
        if self._reply_spin is not None:
            self._reply_spin.ended()

    def _failed(self, call: RpcCall, exc: Exception, context: HandlerContext) -> None:
        """Ends a failed call with its status, its span and its log line."""
        path = self.spec.path
        try:
            status = self.status_of(exc)
        except Exception as broken:  # a bug in building it: INTERNAL, logged, not its text
            logger.error("%s: building the status of a %s failed", path, type(exc).__name__)
            status = to_rpc_status(broken)
        code = _CODES.get(status.code, grpc.StatusCode.UNKNOWN)
        level = logging.INFO if code in _QUIET else logging.WARNING
        self._failure_lines.log(level, code, "%s -> %s: %s", path, code.name, status.message)
        self._ended(call, code, status.message)
        end_call(context, status)

    __call__ = handle

    async def exchange(self, request: Message, *, deadline: float, context: HandlerContext) -> Message:
        """Request message -> upstream -> response message, before ``deadline``."""
        raise NotImplementedError

    async def bind_request(self, bind: Callable[[Message], T], request: Message) -> T:
        """``bind(request)``, on the large payload worker when the request is large."""
        large = self._large_payloads
        if large is not None and self.request_is_large(request):
            return await large.run("request", bind, request)
        return bind(request)

    async def decode_answer(
        self, body: bytes, decode: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``decode(*args)`` of an answer whose body is ``body``, on the large payload
        worker when the body is large."""
        large = self._large_payloads
        if large is not None and self.answer_is_large(body):
            return await large.run("answer", decode, *args, **kwargs)
        return decode(*args, **kwargs)

    # The hot path asks these first and calls bind or decode itself when they say no:
    # awaiting bind_request / decode_answer is a coroutine each, ~1% of a call in place.
    def request_is_large(self, request: Message) -> bool:
        """Whether :meth:`bind_request` binds ``request`` on the large payload worker."""
        large = self._large_payloads
        return large is not None and request.ByteSize() >= large.request_bytes

    def answer_is_large(self, body: bytes) -> bool:
        """Whether :meth:`decode_answer` decodes an answer of ``body`` on the worker."""
        large = self._large_payloads
        return large is not None and len(body) >= large.answer_bytes

    def status_of(self, exc: Exception) -> status_pb2.Status:
        """The status a failure of :meth:`exchange` leaves with."""
        spec = self.spec
        return to_rpc_status(exc, is_create=spec.is_create, body_field=spec.body, upstream=self._caller.name)


class UpstreamMethodHandler(MethodHandler):
    """Serves one RPC from its upstream's REST API."""

    def __init__(
        self,
        transcoder: MethodTranscoder,
        caller: UpstreamCaller,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        large_payloads: LargePayloadWorker | None = None,
        failure_log_interval: float = DEFAULT_INTERVAL,
        reply_spin: ReplySpin | None = None,
    ) -> None:
        super().__init__(
            transcoder.spec,
            caller,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            large_payloads=large_payloads,
            failure_log_interval=failure_log_interval,
            reply_spin=reply_spin,
        )
        self._transcoder = transcoder

    @refuses_undecodable
    async def handle(self, request: Message | UndecodableRequest, context: HandlerContext) -> Message | None:
        """:meth:`MethodHandler.handle` with the exchange written out in it (this class
        has no :meth:`exchange`): the hot path of every upstream-backed RPC, and an
        exchange coroutine of its own cost ~1% of a call's CPU in place (docs/benchmarks.md)."""
        if isinstance(request, UndecodableRequest):
            refuse_undecodable(context, request)
            return None
        call, deadline = self._begin(request, context)
        try:
            spec = self.spec
            bind = self._transcoder.bind
            bound = (
                await self.bind_request(bind, request) if self.request_is_large(request) else bind(request)
            )
            note_upstream_path(bound.request.method, bound.request.path)
            response = await self._caller.send(bound.request, deadline=deadline)
            raise_for_status(response, upstream=self._caller.name, route=spec.route, path=bound.request.path)
            if self.answer_is_large(response.body):
                message = await self.decode_answer(response.body, self._decode, response, bound)
            else:
                message = self._decode(response, bound)
        except asyncio.CancelledError:
            self._ended(call, grpc.StatusCode.CANCELLED, "cancelled by the caller")
            raise
        except Exception as exc:  # every failure leaves as a status, never UNKNOWN
            self._failed(call, exc, context)
            return None
        self._ended(call)
        return message

    __call__ = handle

    def _decode(self, response: UpstreamResponse, bound: BoundRequest) -> Message:
        spec = self.spec
        try:
            return self._transcoder.decode(response, bound)
        except UnexpectedContentTypeError as exc:
            raise UpstreamMalformedResponse(
                str(exc),
                reason="UPSTREAM_UNEXPECTED_CONTENT_TYPE",
                upstream=self._caller.name,
                route=spec.route,
                request_id=response.request_id,
            ) from exc
        except MalformedPayloadError as exc:
            raise UpstreamMalformedResponse(
                f"answer does not fit {spec.output_type.DESCRIPTOR.full_name}: {exc}",
                upstream=self._caller.name,
                route=spec.route,
                request_id=response.request_id,
            ) from exc
