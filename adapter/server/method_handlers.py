"""Which handler serves a method: a REST call (``google.api.http``) or a GraphQL
operation (``(meshadapter.options.v1.graphql)``)."""

from __future__ import annotations

from opentelemetry.trace import TracerProvider

from adapter.config.settings import UpstreamSettings
from adapter.descriptors.method_spec import MethodSpec
from adapter.graphql.transcoder import GraphQLTranscoder
from adapter.server.graphql_handler import GraphQLMethodHandler
from adapter.transcoding.json_codec import JsonCodec
from adapter.transcoding.method_transcoder import MethodTranscoder
from adapter.transcoding.page_tokens import PageTokenSigner
from adapter.transcoding.request_limits import RequestLimits
from adapter.upstream.caller import UpstreamCaller

from .handlers import MethodHandler, UpstreamMethodHandler

__all__ = ["method_handler"]


def method_handler(
    spec: MethodSpec,
    codec: JsonCodec,
    upstream: UpstreamSettings,
    caller: UpstreamCaller,
    *,
    page_tokens: PageTokenSigner | None = None,
    tracer_provider: TracerProvider | None = None,
) -> MethodHandler:
    """The handler of ``spec``, built once at start-up; it makes the call's server span.
    ``page_tokens`` signs the page tokens of REST list methods (built once from
    ``Settings.page_tokens``)."""
    limits = RequestLimits(
        max_url_bytes=upstream.max_url_bytes, max_body_bytes=upstream.max_request_body_bytes
    )
    if spec.graphql is not None:
        graphql = GraphQLTranscoder(spec, codec, upstream.graphql, limits)
        return GraphQLMethodHandler(graphql, caller, tracer_provider=tracer_provider)
    transcoder = MethodTranscoder(spec, codec, upstream.pagination, page_tokens=page_tokens, limits=limits)
    return UpstreamMethodHandler(transcoder, caller, tracer_provider=tracer_provider)
