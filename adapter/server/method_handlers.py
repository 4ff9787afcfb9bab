"""Which handler serves a method: a REST call (``google.api.http``) or a GraphQL
operation (``(meshadapter.options.v1.graphql)``)."""

from __future__ import annotations

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from adapter.config.settings import UpstreamSettings
from adapter.descriptors.method_spec import MethodSpec
from adapter.graphql.transcoder import GraphQLTranscoder
from adapter.server.graphql_handler import GraphQLMethodHandler
from adapter.telemetry.repeated_lines import DEFAULT_INTERVAL
from adapter.transcoding.json_codec import JsonCodec
from adapter.transcoding.method_transcoder import MethodTranscoder
from adapter.transcoding.page_tokens import PageTokenSigner
from adapter.transcoding.request_limits import RequestLimits
from adapter.upstream.caller import UpstreamCaller

from .handlers import MethodHandler, UpstreamMethodHandler
from .large_payloads import LargePayloadWorker
from .reply_spin import ReplySpin

__all__ = ["Transcoder", "method_handler", "transcoder_for"]

Transcoder = MethodTranscoder | GraphQLTranscoder


def transcoder_for(
    spec: MethodSpec, codec: JsonCodec, upstream: UpstreamSettings, *, page_tokens: PageTokenSigner
) -> Transcoder:
    """The transcoder of ``spec``, built once at start-up (shared by its handler and,
    for REST list methods, event backfill)."""
    limits = RequestLimits(
        max_url_bytes=upstream.max_url_bytes, max_body_bytes=upstream.max_request_body_bytes
    )
    if spec.graphql is not None:
        return GraphQLTranscoder(spec, codec, upstream.graphql, limits)
    cache = upstream.resilience.cache
    cached = spec.cache_ttl_seconds > 0 and cache.enabled and cache.max_ttl_seconds != 0
    return MethodTranscoder(
        spec,
        codec,
        upstream.pagination,
        page_tokens=page_tokens,
        limits=limits,
        # As many binds as the cache keeps answers: each hit skips binding again.
        remembered_binds=cache.max_entries if cached else 0,
    )


def method_handler(
    transcoder: Transcoder,
    caller: UpstreamCaller,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    large_payloads: LargePayloadWorker | None = None,
    failure_log_interval: float = DEFAULT_INTERVAL,
    reply_spin: ReplySpin | None = None,
) -> MethodHandler:
    """The handler serving ``transcoder``'s method through ``caller``; it makes the
    call's server span (register its ``.handle``). ``reply_spin``: shared by every
    handler of the server (it counts their calls in flight)."""
    if isinstance(transcoder, GraphQLTranscoder):
        return GraphQLMethodHandler(
            transcoder,
            caller,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            large_payloads=large_payloads,
            failure_log_interval=failure_log_interval,
            reply_spin=reply_spin,
        )
    return UpstreamMethodHandler(
        transcoder,
        caller,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        large_payloads=large_payloads,
        failure_log_interval=failure_log_interval,
        reply_spin=reply_spin,
    )
