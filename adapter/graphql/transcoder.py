"""Both directions of one GraphQL-bound RPC: request message -> ``POST /graphql`` body,
answer -> response message.

The request is ``{"query", "variables", "operationName"}`` (keys sorted: the same call
makes the same bytes, which the cache keys on). With a persisted query it is
``{"extensions": {"persistedQuery": {"version": 1, "sha256Hash": ...}}, ...}`` without the
text, and with it when the upstream asked to register it (``with_text=True``). Queries
are marked retryable and read-only (cacheable), mutations neither; every request counts
against the upstream's GraphQL quota.
"""

from __future__ import annotations

from typing import Any

import orjson
from google.protobuf.message import Message

from adapter.config.graphql import GraphQLSettings
from adapter.descriptors.access import descriptor_of, field_of
from adapter.descriptors.graphql_operation import GraphQLBinding
from adapter.descriptors.method_spec import MethodSpec
from adapter.transcoding.json_codec import Decode, JsonCodec, MalformedPayloadError
from adapter.transcoding.request_binding import BoundRequest
from adapter.transcoding.request_limits import RequestLimits, check_body
from adapter.transcoding.request_validation import RequestValidator
from adapter.upstream.messages import UpstreamRequest

from .answer import GraphQLAnswer, has_errors
from .variables import VariableEncoder

__all__ = ["GRAPHQL_QUOTA", "MAX_DATA_DEPTH", "GraphQLTranscoder", "NullAtDataPath"]

#: ``UpstreamRequest.quota`` of every GraphQL request.
GRAPHQL_QUOTA = "graphql"
_HEADERS = (
    ("accept", "application/graphql-response+json, application/json;q=0.9"),
    ("content-type", "application/json"),
)


class NullAtDataPath(ValueError):
    """``data`` holds null (or nothing) where the response was expected, without an error:
    how many GraphQL APIs say "no such object"."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path} is null")
        self.path = path


#: JSON levels a partial answer's data may nest, far above any message a gRPC client can
#: parse (protobuf stops at 100 nested messages) and below Python's recursion limit: orjson
#: reads up to 1,024 levels, and walking those recursed past it (RecursionError).
MAX_DATA_DEPTH = 200


def _drop_null_items(value: Any, path: str, depth: int = 0) -> Any:
    """A partial answer's lists can hold nulls where an item failed: a repeated field cannot."""
    if depth > MAX_DATA_DEPTH:
        raise MalformedPayloadError(path, f"nested deeper than {MAX_DATA_DEPTH} levels")
    if isinstance(value, dict):
        return {k: _drop_null_items(v, path, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_drop_null_items(v, path, depth + 1) for v in value if v is not None]
    return value


class GraphQLTranscoder:
    """Binds requests and decodes answers of one GraphQL-bound method; built once at start-up."""

    def __init__(
        self,
        spec: MethodSpec,
        codec: JsonCodec,
        settings: GraphQLSettings,
        limits: RequestLimits = RequestLimits(),  # noqa: B008 (frozen)
    ) -> None:
        if spec.graphql is None:
            raise ValueError(f"{spec.path} is not bound to a GraphQL operation")
        self.spec = spec
        self.binding: GraphQLBinding = spec.graphql
        self._codec = codec
        self._path = settings.path
        # Caller values no upstream call can carry (issue 7): refused as for REST.
        self._validator = RequestValidator(descriptor_of(spec.input_type))
        self._limits = limits
        self._variables = VariableEncoder(descriptor_of(spec.input_type), self.binding.variables, codec)
        out = descriptor_of(spec.output_type)
        self._empty = out.full_name == "google.protobuf.Empty"
        self._field_decoder: Decode | None = None
        if self.binding.response_field:
            self._field_decoder = codec.field_decoder(field_of(out, self.binding.response_field))
        codec.decode_kwargs(out, {})  # builds the field tables now, not on the first call

    @property
    def persisted(self) -> bool:
        return bool(self.binding.persisted_sha256)

    def bind(self, message: Message, *, with_text: bool = False) -> BoundRequest:
        """Raises BindingError naming a request field the operation needs."""
        binding = self.binding
        self._validator.check(message)
        doc: dict[str, Any] = {
            "operationName": binding.operation_name,
            "variables": self._variables.encode(message),
        }
        if binding.persisted_sha256:
            doc["extensions"] = {"persistedQuery": {"version": 1, "sha256Hash": binding.persisted_sha256}}
        if with_text or not binding.persisted_sha256:
            doc["query"] = binding.document
        body = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
        check_body(body, "", self._limits, parts=doc["variables"])  # variables are named after fields
        request = UpstreamRequest(
            method="POST",
            path=self._path,
            route=self.spec.route,
            body=body,
            headers=_HEADERS,
            idempotent=binding.is_query,
            read_only=binding.is_query,
            quota=GRAPHQL_QUOTA,
            answer_is_failure=has_errors,
        )
        return BoundRequest(request=request, page=None, fingerprint="")

    def decode(self, answer: GraphQLAnswer) -> Message:
        """The response message from the value at ``data_path``; raises NullAtDataPath or
        MalformedPayloadError. (Whether errors fail the call is the handler's decision.)"""
        spec = self.spec
        if self._empty:
            return spec.output_type()
        value: Any = answer.data
        walked = "data"
        for key in self.binding.data_path:
            if not isinstance(value, dict):
                raise MalformedPayloadError(walked, "expected an object")
            value = value.get(key)
            walked += f".{key}"
        if value is None:
            raise NullAtDataPath(walked)
        if answer.errors:
            value = _drop_null_items(value, walked)
        if self._field_decoder is not None:
            kwargs = {self.binding.response_field: self._field_decoder(value, walked)}
        else:
            kwargs = self._codec.decode_kwargs(descriptor_of(spec.output_type), value, walked)
        try:
            return spec.output_type(**kwargs)
        except (TypeError, ValueError) as exc:
            raise MalformedPayloadError(walked, str(exc)) from exc
