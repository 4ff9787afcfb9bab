"""The RPC side, built once: a transcoder per method (shared with event
backfill) and a handler per upstream-backed method, grouped into the services the
gRPC server serves."""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from adapter.config.settings import Settings
from adapter.server.app import ServedService
from adapter.server.large_payloads import LargePayloadWorker
from adapter.server.method_handlers import Transcoder, method_handler, transcoder_for
from adapter.server.reply_spin import ReplySpin
from adapter.telemetry.repeated_lines import DEFAULT_INTERVAL
from adapter.transcoding.json_codec import JsonCodec
from adapter.transcoding.method_transcoder import MethodTranscoder
from adapter.transcoding.page_tokens import PageTokenSigner
from adapter.upstream.caller import UpstreamCaller

from .catalog import Catalog

__all__ = ["build_transcoders", "rest_transcoders", "upstream_services"]


def build_transcoders(
    catalog: Catalog, settings: Settings, *, codec: JsonCodec, page_tokens: PageTokenSigner
) -> dict[str, Transcoder]:
    """Every method's transcoder, by method path (``/pkg.Service/Method``)."""
    return {
        m.path: transcoder_for(m, codec, settings.upstreams[s.upstream], page_tokens=page_tokens)
        for s in catalog.specs
        for m in s.methods
    }


def rest_transcoders(transcoders: Mapping[str, Transcoder]) -> dict[str, MethodTranscoder]:
    """The REST ones (event backfill reads over REST)."""
    return {path: t for path, t in transcoders.items() if isinstance(t, MethodTranscoder)}


def upstream_services(
    catalog: Catalog,
    *,
    transcoders: Mapping[str, Transcoder],
    callers: Mapping[str, UpstreamCaller],
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    large_payloads: LargePayloadWorker | None = None,
    failure_log_interval: float = DEFAULT_INTERVAL,
    reply_spin: ReplySpin | None = None,
) -> list[ServedService]:
    """One ServedService per upstream-backed service of the protos; a large request is
    bound, and a large answer decoded, on ``large_payloads``'s thread; a failed call's
    log line repeats at most once per ``failure_log_interval`` per method and code;
    ``reply_spin`` (one for all the handlers) polls after a lone call's reply."""
    services = []
    for spec in catalog.specs:
        caller = callers[spec.upstream]
        handlers = {
            m.name: grpc.unary_unary_rpc_method_handler(
                method_handler(
                    transcoders[m.path],
                    caller,
                    tracer_provider=tracer_provider,
                    meter_provider=meter_provider,
                    large_payloads=large_payloads,
                    failure_log_interval=failure_log_interval,
                    reply_spin=reply_spin,
                ).handle,
                request_deserializer=m.input_type.FromString,
                response_serializer=m.output_type.SerializeToString,
            )
            for m in spec.methods
        }
        services.append(ServedService(spec.name, handlers))
    return services
