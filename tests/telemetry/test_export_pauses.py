"""The span export thread's pauses (adapter/telemetry/export_pauses.py): where they fall
in an encoded batch, when they stop, and that the request is the same with them."""

from __future__ import annotations

import threading

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapter.config.settings import TelemetrySettings
from adapter.telemetry.export_pauses import ExportPauses
from adapter.telemetry.otlp_exporter import WireOTLPSpanExporter
from adapter.telemetry.otlp_wire import encode_trace_request
from adapter.telemetry.tracing import build_tracer_provider

from .otlp_collector import Collector


class FakeTime:
    """A clock that a sleep moves on by what it asked plus ``extra``."""

    def __init__(self, extra: float = 0.0) -> None:
        self.now = 100.0
        self.extra = extra
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds + self.extra


def spans(count: int) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "mesh-adapter"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("adapter.server")
    for index in range(count):
        with tracer.start_as_current_span(f"call {index}", attributes={"rpc.method": "GetDevice"}):
            pass
    return list(memory.get_finished_spans())


def pauses_of(
    fake: FakeTime, *, seconds: float = 100e-6, every: int = 4, budget: float = 0.02
) -> ExportPauses:
    return ExportPauses(seconds, every=every, budget_seconds=budget, clock=fake.clock, sleep=fake.sleep)


def test_a_pause_after_every_group_of_spans_and_the_same_request() -> None:
    batch = spans(10)
    fake = FakeTime()
    pauses = pauses_of(fake, every=4)
    pauses.start()
    encoded = encode_trace_request(batch, pauses=pauses)
    assert fake.sleeps == [100e-6, 100e-6]  # before spans 4 and 8, none before the first
    assert encoded == encode_trace_request(batch)
    assert ExportTraceServiceRequest.FromString(encoded) == encode_spans(batch)


def test_no_pause_before_start_nor_when_off() -> None:
    batch = spans(9)
    fake = FakeTime()
    encode_trace_request(batch, pauses=pauses_of(fake))  # never started
    off = pauses_of(fake, seconds=0.0)
    off.start()
    encode_trace_request(batch, pauses=off)
    assert not off.enabled
    assert fake.sleeps == []


def test_a_pause_that_found_the_loop_busy_ends_the_pauses_of_that_export() -> None:
    batch = spans(17)
    fake = FakeTime(extra=0.005)  # the GIL came back after a switch interval
    pauses = pauses_of(fake, every=4)
    pauses.start()
    encode_trace_request(batch, pauses=pauses)
    assert fake.sleeps == [100e-6]
    fake.extra = 0.0
    pauses.start()  # the next export pauses again
    encode_trace_request(batch, pauses=pauses)
    assert len(fake.sleeps) == 1 + 4


def test_a_pause_within_the_slack_does_not_end_them() -> None:
    batch = spans(13)
    fake = FakeTime(extra=0.0005)  # the loop ran a call before it let the GIL go
    pauses = pauses_of(fake, every=4)
    pauses.start()
    encode_trace_request(batch, pauses=pauses)
    assert len(fake.sleeps) == 3


def test_pauses_stop_at_the_budget() -> None:
    batch = spans(41)
    fake = FakeTime(extra=0.0004)
    pauses = pauses_of(fake, every=4, budget=0.0012)  # each pause takes 0.5 ms
    pauses.start()
    encode_trace_request(batch, pauses=pauses)
    assert len(fake.sleeps) == 3  # the third began at 1.0 ms, within the budget; none after it


async def test_never_on_a_thread_that_runs_an_event_loop() -> None:
    fake = FakeTime()
    pauses = pauses_of(fake, every=2)
    pauses.start()
    encode_trace_request(spans(6), pauses=pauses)
    assert fake.sleeps == []


def test_the_exporter_pauses_in_its_own_thread_and_delivers_the_same_request(
    collector: tuple[Collector, int],
) -> None:
    servicer, port = collector
    batch = spans(40)
    slept_on: list[str] = []

    def sleep(seconds: float) -> None:
        slept_on.append(threading.current_thread().name)

    exporter = WireOTLPSpanExporter(
        endpoint=f"127.0.0.1:{port}",
        insecure=True,
        timeout=5,
        pauses=ExportPauses(1e-6, every=16, sleep=sleep),
    )
    results: list[SpanExportResult] = []
    worker = threading.Thread(target=lambda: results.append(exporter.export(batch)), name="export-worker")
    try:
        worker.start()
        worker.join(10)
        assert servicer.received.wait(5)
    finally:
        exporter.shutdown()
    assert results == [SpanExportResult.SUCCESS]
    assert slept_on == ["export-worker", "export-worker"]  # before spans 16 and 32
    assert servicer.requests == [encode_spans(batch)]


def test_the_setting_reaches_the_exporter() -> None:
    settings = TelemetrySettings(otlp_enabled=True, export_pause_microseconds=250)
    provider = build_tracer_provider(settings, set_global=False)
    try:
        processors = provider._active_span_processor._span_processors  # no public view of them
        exporter = processors[0]._own_exporter._inner
        assert isinstance(exporter, WireOTLPSpanExporter)
        assert exporter._pauses is not None and exporter._pauses.seconds == 250e-6
    finally:
        provider.shutdown()
