"""The handler of an RPC bound to a GraphQL operation: bind, ``POST /graphql``, read
``data`` and ``errors``, or fail with a status from the GraphQL error table.

- Errors fail the call (:mod:`adapter.status.graphql_errors`), unless the method allows partial
  answers and ``data`` holds the response: then the message is returned and the errors
  travel in the ``meshadapter-graphql-errors-bin`` trailer (a serialized
  ``google.rpc.Status``, the one the errors would have failed the call with).
- ``null`` at the data path without an error is NOT_FOUND (how many APIs say "no such
  object").
- A persisted query the upstream does not know (``PERSISTED_QUERY_NOT_FOUND`` or
  ``_NOT_SUPPORTED``) is sent once more with its text, which registers it.
"""

from __future__ import annotations

import functools
import logging

from google.protobuf.message import Message
from google.rpc import status_pb2
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from adapter.graphql.answer import GraphQLAnswer, GraphQLErrorItem, read_answer, read_error_answer
from adapter.graphql.errors import UpstreamGraphQLError
from adapter.graphql.transcoder import GraphQLTranscoder, NullAtDataPath
from adapter.security.audit import note_upstream_path
from adapter.server.handlers import HandlerContext, MethodHandler
from adapter.server.large_payloads import LargePayloadWorker
from adapter.server.reply_spin import ReplySpin
from adapter.status.graphql_errors import graphql_error_status
from adapter.telemetry.repeated_lines import DEFAULT_INTERVAL
from adapter.transcoding.json_codec import MalformedPayloadError
from adapter.transcoding.request_binding import BoundRequest
from adapter.upstream.caller import UpstreamCaller
from adapter.upstream.client import raise_for_status
from adapter.upstream.errors import UpstreamMalformedResponse
from adapter.upstream.messages import UpstreamResponse

__all__ = ["PARTIAL_ERRORS_TRAILER", "GraphQLMethodHandler"]

logger = logging.getLogger(__name__)

#: Trailer of a partial answer: the google.rpc.Status its errors map to, serialized.
PARTIAL_ERRORS_TRAILER = "meshadapter-graphql-errors-bin"
_UNKNOWN_QUERY = ("PERSISTED_QUERY_NOT_FOUND", "PERSISTED_QUERY_NOT_SUPPORTED")


class GraphQLMethodHandler(MethodHandler):
    """Serves one RPC from its upstream's GraphQL endpoint."""

    def __init__(
        self,
        transcoder: GraphQLTranscoder,
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

    async def exchange(self, request: Message, *, deadline: float, context: HandlerContext) -> Message:
        transcoder = self._transcoder
        answer, response = await self._call(await self.bind_request(transcoder.bind, request), deadline)
        if transcoder.persisted and answer.has_code(*_UNKNOWN_QUERY):
            logger.info(
                "%s: the upstream does not know the persisted query; sending its text", self.spec.route
            )
            bound = await self.bind_request(functools.partial(transcoder.bind, with_text=True), request)
            answer, response = await self._call(bound, deadline)
        failure = self._failure(answer, response) if answer.errors else None
        if failure is not None and not 200 <= response.status < 300:
            raise failure
        try:
            message = await self.decode_answer(response.body, transcoder.decode, answer)
        except NullAtDataPath as exc:
            if failure is not None:
                raise failure from None
            found = GraphQLErrorItem(f"nothing at {exc.path}", "NOT_FOUND", path=transcoder.binding.data_path)
            raise self._failure(GraphQLAnswer(answer.data, (found,)), response) from None
        except MalformedPayloadError as exc:
            if failure is not None:
                raise failure from None
            raise UpstreamMalformedResponse(
                f"answer does not fit {self.spec.output_type.DESCRIPTOR.full_name}: {exc}",
                upstream=self._caller.name,
                route=self.spec.route,
                request_id=response.request_id,
            ) from exc
        if failure is not None:
            if not transcoder.binding.allow_partial:
                raise failure
            status = graphql_error_status(failure)
            self._failure_lines.log(
                logging.INFO, "partial", "%s: partial answer: %s", self.spec.path, status.message
            )
            context.set_trailing_metadata(((PARTIAL_ERRORS_TRAILER, status.SerializeToString()),))
        return message

    def status_of(self, exc: Exception) -> status_pb2.Status:
        if isinstance(exc, UpstreamGraphQLError):
            return graphql_error_status(exc)
        return super().status_of(exc)

    async def _call(self, bound: BoundRequest, deadline: float) -> tuple[GraphQLAnswer, UpstreamResponse]:
        note_upstream_path(bound.request.method, bound.request.path, self.spec.route)
        response = await self._caller.send(bound.request, deadline=deadline)
        if not 200 <= response.status < 300:
            errors = read_error_answer(response.body)
            if errors is None:  # not a GraphQL answer (a gateway's page): the HTTP table decides
                raise_for_status(
                    response, upstream=self._caller.name, route=self.spec.route, path=bound.request.path
                )
            assert errors is not None
            return errors, response
        try:
            return read_answer(response.body, response.content_type), response
        except MalformedPayloadError as exc:
            raise UpstreamMalformedResponse(
                f"not a GraphQL answer: {exc}",
                upstream=self._caller.name,
                route=self.spec.route,
                request_id=response.request_id,
            ) from exc

    def _failure(self, answer: GraphQLAnswer, response: UpstreamResponse) -> UpstreamGraphQLError:
        return UpstreamGraphQLError(answer, response, upstream=self._caller.name, route=self.spec.route)
