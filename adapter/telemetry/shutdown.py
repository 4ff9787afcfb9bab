"""Telemetry's last flush at shutdown, bounded by ``telemetry.flush_timeout_seconds``.

The SDK's shutdown waits for every queued span batch to be exported, and its OTLP
exporter retries each batch with backoff for up to ``OTEL_EXPORTER_OTLP_TIMEOUT``
(10 s). With the collector down, a SIGTERM took ~35 s to end the process (four
batches of spans, then the metrics): past Kubernetes' default 30 s grace, so the
pod was killed and every replica of a rolling deploy waited that long.

Here traces and metrics are flushed side by side, each within the same deadline.
What is not exported by then is dropped, with one warning naming the setting.
Only the SDK's public API is used: the span processor waits for its own shutdown
in a thread and, past the deadline, shuts its exporter down, which the exporter
documents as aborting a retry in progress and closing its channel (an export in
flight fails at once), so the processor's worker drains the rest without sending.
The processor's own shutdown then does not shut the exporter down a second time,
which the exporter would log as a warning after the one that said the spans are dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

__all__ = ["BoundedBatchSpanProcessor", "shut_down_telemetry"]

logger = logging.getLogger(__name__)

# After the exporter is shut down, its worker only drops what is left: this long is plenty.
_AFTER_ABORT_S = 1.0


class _AbortableExporter(SpanExporter):
    """Hands batches to ``inner`` until :meth:`abort`, then drops them without a word."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner
        self._aborted = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._aborted:
            return SpanExportResult.FAILURE
        return self._inner.export(spans)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        if not self._aborted:  # abort() has shut it down already
            self._inner.shutdown()

    def abort(self) -> None:
        """Drops what is handed over from now on, and shuts the exporter down (which
        aborts its retry in progress)."""
        self._aborted = True
        self._inner.shutdown()


class BoundedBatchSpanProcessor(BatchSpanProcessor):
    """A ``BatchSpanProcessor`` whose ``shutdown`` returns within ``shutdown_timeout_s``
    (plus ~1 s), whatever the collector does."""

    def __init__(self, exporter: SpanExporter, *, shutdown_timeout_s: float) -> None:
        self._own_exporter = _AbortableExporter(exporter)
        super().__init__(self._own_exporter)
        self._shutdown_timeout_s = shutdown_timeout_s

    def shutdown(self) -> None:
        flush = threading.Thread(target=super().shutdown, name="span-export-shutdown", daemon=True)
        flush.start()
        flush.join(self._shutdown_timeout_s)
        if flush.is_alive():
            logger.warning(
                "spans not exported within %.1f s of shutdown (telemetry.flush_timeout_seconds): "
                "the collector is slow or unreachable; the spans still queued are dropped",
                self._shutdown_timeout_s,
            )
            self._own_exporter.abort()
            flush.join(_AFTER_ABORT_S)


def shut_down_telemetry(
    tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None, *, timeout_s: float
) -> None:
    """Flushes and stops traces and metrics side by side; returns within ~``timeout_s``
    (the span processors bound themselves, :class:`BoundedBatchSpanProcessor`)."""
    started = time.monotonic()
    traces = None
    if tracer_provider is not None:
        traces = threading.Thread(target=tracer_provider.shutdown, name="tracer-shutdown", daemon=True)
        traces.start()
    shutdown = getattr(meter_provider, "shutdown", None)  # the API's no-op provider has none
    if shutdown is not None:
        try:
            shutdown(timeout_millis=timeout_s * 1000)
        except Exception as exc:  # the SDK raises a bare Exception naming the readers that failed
            logger.warning("metrics not all exported at shutdown: %s", exc)
    if traces is not None:
        traces.join(max(0.0, timeout_s + _AFTER_ABORT_S - (time.monotonic() - started)))
    logger.debug("telemetry shut down in %.2f s", time.monotonic() - started)
