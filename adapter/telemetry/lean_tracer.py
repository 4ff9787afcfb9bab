"""The spans made once per call or per event (an RPC's SERVER span, an upstream
request's CLIENT span, a received event's CONSUMER span) made without the SDK's
``Span`` class, and handed to the SDK's own pipeline.

Written by hand because of what the SDK's span costs on the call path: a call's
two spans cost ~165 µs of CPU with ``opentelemetry.sdk.trace.Span`` and ~70 with
this one (``bench/span_cost.py``, a tight loop; in the running adapter a call's
CPU fell by ~9%). The SDK's span builds bounded attribute maps and lists with a
lock each, cleans every attribute value through abstract-base-class checks, and
copies itself into a ``ReadableSpan`` at the end.
This span keeps what those spans need and nothing else, and uses the SDK
everywhere the result is decided or leaves the process: the provider's sampler
(``OTEL_TRACES_SAMPLER`` and parent-based sampling hold; the SDK's default instance,
``ParentBased(ALWAYS_ON)``, is decided inline as it decides, which a test checks
against the sampler itself), its id generator, its
resource, and its span processors, which receive an SDK ``ReadableSpan``: the
lean span itself, whose fields are where a ``ReadableSpan`` keeps them (batching and
every exporter unchanged; the layout checked in :mod:`.sdk_trace_compat`, and
without it the SDK's tracer makes the spans). It implements the whole
``opentelemetry.trace.Span`` API, so code that finds it as the current span can
use it like any other.

Not kept, on purpose: the span limits (these spans carry a fixed, small set of
attributes the adapter itself sets; values of other types than str, bool, int
and float are cleaned as the SDK cleans them), but for the link count: a span
started with more links than the provider keeps is the SDK's, which drops and
counts them. Also not kept: a lock per span (each is used by
the one task that made it), and the SDK's experimental hooks (``_on_ending``,
the private tracer configurator, span metrics behind
``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED``; with that variable set, or with
anything but an SDK provider, the SDK's tracer makes these spans as before).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from random import getrandbits
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, sampling
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TracerProvider,
    TraceState,
)
from opentelemetry.util import types

from .sdk_trace_compat import local_span_context, readable_span_layout_known, span_link_limit

__all__ = ["LeanTracer"]

logger = logging.getLogger(__name__)

_PLAIN = (str, bool, int, float)
_UNSET = Status(StatusCode.UNSET)
_SAMPLE = Decision.RECORD_AND_SAMPLE
# Every 8-bit flags value as the API's TraceFlags, made once (not one a span).
_TRACE_FLAGS = tuple(TraceFlags(value) for value in range(256))


def _valid_link(context: SpanContext, attributes: types.Attributes) -> bool:
    """The SDK's rule for keeping a link (``opentelemetry.sdk.trace._is_valid_link``),
    its attributes tested first: the Kafka send spans' links all have some, and
    ``is_valid`` is two property calls a link."""
    return bool(context and (attributes or context.is_valid or context.trace_state))


def _clean(value: Any) -> Any:
    """``value`` as the SDK would store it (sequences as tuples, other types as
    strings or dropped): the rare path, so the SDK's own cleaning does it."""
    return BoundedAttributes(None, {"v": value}).get("v")


class LeanTracer:
    """Starts lean spans for one instrumentation scope; falls back to the
    provider's own tracer where the lean span would not be equivalent."""

    def __init__(self, tracer_provider: TracerProvider | None, name: str) -> None:
        self._tracer = trace.get_tracer(name, tracer_provider=tracer_provider)
        sdk = self._tracer if isinstance(self._tracer, SdkTracer) else None
        internal_metrics = os.environ.get("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "").strip().lower()
        # A lean span is a ReadableSpan by the SDK's field names: only where they are known.
        self._lean = sdk is not None and internal_metrics != "true" and readable_span_layout_known()
        self._default_sampler = False
        self._random_ids = False
        if sdk is not None:
            self._max_links = span_link_limit(sdk)
            self._sampler = sdk.sampler
            # The SDK's default (``parentbased_always_on``) is this one instance: decided inline.
            self._default_sampler = self._sampler is sampling.DEFAULT_ON
            self._ids = sdk.id_generator
            # The SDK's default generator draws from ``random.getrandbits``: drawn here
            # as it draws them (zero, the invalid id, drawn again), without its three
            # method calls a span. Any other generator is called.
            self._random_ids = type(self._ids) is RandomIdGenerator
            self._resource = sdk.resource
            self._processor: SpanProcessor = sdk.span_processor
            self._scope = InstrumentationScope(name, "")  # as the SDK's get_tracer names it

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Link] | None = None,
    ) -> trace.Span:
        """A started span, a child of ``context``'s span (else the current one),
        linked to ``links`` (a batch's records: the ``send`` spans of the Kafka sink)."""
        if not self._lean or (links is not None and len(links) > self._max_links):
            # More links than the provider keeps: the SDK drops the oldest and counts them.
            return self._tracer.start_span(name, context, kind, attributes, links)
        current_span = trace.get_current_span(context)
        if type(current_span) is LeanSpan and self._default_sampler:
            # A child of a lean span (the upstream request of a call): the parent's ids
            # and flags are plain attributes, not seven property calls. Decided as below.
            parent: SpanContext | None = current_span._context
            trace_id = current_span.trace_id
            parent_flags = current_span.trace_flags
            random_id = bool(parent_flags & TraceFlags.RANDOM_TRACE_ID)
            decision = _SAMPLE if parent_flags & TraceFlags.SAMPLED else Decision.DROP
            trace_state = current_span.trace_state
            start_attributes = dict(attributes) if attributes and decision is _SAMPLE else {}
            return self._started(name, context, kind, links, trace_id, random_id, decision, trace_state,
                                 start_attributes, parent)  # fmt: skip
        current = current_span.get_span_context()
        parent = current if current.is_valid else None
        if parent is not None:
            trace_id = parent.trace_id
            random_id = parent.trace_flags.random_trace_id
        elif self._random_ids:
            trace_id = getrandbits(128) or self._ids.generate_trace_id()
            random_id = True
        else:
            trace_id = self._ids.generate_trace_id()
            random_id = self._ids.is_trace_id_random()
        if self._default_sampler:
            # ParentBased(ALWAYS_ON) decided as it decides: the parent's sampled flag
            # (remote or local alike), else sampled; the parent's trace state; the
            # attributes as given. Calling it cost ~3 µs a span (three context lookups).
            decision = Decision.DROP if parent is not None and not parent.trace_flags.sampled else _SAMPLE
            trace_state = parent.trace_state if parent is not None else None
            start_attributes = dict(attributes) if attributes and decision is _SAMPLE else {}
        else:
            sampling = self._sampler.should_sample(context, trace_id, name, kind, attributes, links or ())
            decision, trace_state = sampling.decision, sampling.trace_state
            start_attributes = dict(sampling.attributes or {})
        return self._started(name, context, kind, links, trace_id, random_id, decision, trace_state,
                             start_attributes, parent)  # fmt: skip

    def _started(
        self,
        name: str,
        context: Context | None,
        kind: SpanKind,
        links: Sequence[Link] | None,
        trace_id: int,
        random_id: bool,
        decision: Decision,
        trace_state: TraceState | None,
        start_attributes: dict[str, Any],
        parent: SpanContext | None,
    ) -> trace.Span:
        """The span :meth:`start_span` decided on, with its own id, started."""
        flags = TraceFlags.SAMPLED if decision is _SAMPLE else TraceFlags.DEFAULT
        if random_id:
            flags |= TraceFlags.RANDOM_TRACE_ID
        if self._random_ids:
            span_id = getrandbits(64) or self._ids.generate_span_id()
        else:
            span_id = self._ids.generate_span_id()
        span_context = local_span_context(trace_id, span_id, _TRACE_FLAGS[flags], trace_state)
        if decision is Decision.DROP:
            return trace.NonRecordingSpan(span_context)
        span = LeanSpan(self, name, span_context, parent, kind, start_attributes, links)
        span.trace_id, span.span_id = trace_id, span_id
        span.trace_flags, span.trace_state = flags, trace_state
        self._processor.on_start(span, parent_context=context)  # type: ignore[arg-type]
        return span

    @contextlib.contextmanager
    def start_as_current_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
    ) -> Iterator[trace.Span]:
        """:meth:`start_span`, current while the block runs and ended when it
        leaves; an exception leaving it is recorded, as the SDK's tracer does."""
        with trace.use_span(self.start_span(name, context, kind, attributes), end_on_exit=True) as span:
            yield span

    def _finished(self, span: ReadableSpan) -> None:
        self._processor.on_end(span)


class LeanSpan(trace.Span, ReadableSpan):
    """A recording span: plain dicts and lists until it ends, then itself the SDK
    ``ReadableSpan`` the span processors get (its fields are where a ``ReadableSpan``
    keeps them, as the SDK's own span does; ``sdk_trace_compat`` checks the layout,
    and without it the tracer makes SDK spans). Ending builds no second object.

    ``trace_id``, ``span_id``, ``trace_flags`` (ints) and ``trace_state`` (None when it
    has none) repeat its context's, for the adapter's own code on the call path (trace
    headers, exemplars, the audit's trace id): each property of an API ``SpanContext``
    is a Python call, ~25 a call in all.
    """

    trace_id: int
    span_id: int
    trace_flags: int
    trace_state: TraceState | None
    # Narrower than ReadableSpan's: a lean span always has a context and a plain dict.
    _context: SpanContext
    _attributes: dict[str, Any]

    def __init__(
        self,
        tracer: LeanTracer,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        links: Sequence[Link] | None = None,
    ) -> None:
        self._tracer = tracer
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes = attributes
        self._events: list[Event] = []  # a tuple once it ends
        self._links: list[Link] = (
            [link for link in links if link and _valid_link(link.context, link.attributes)] if links else []
        )
        self._status = _UNSET
        self._start_time: int | None = time.time_ns()
        self._end_time: int | None = None
        self._resource = tracer._resource
        self._instrumentation_scope = tracer._scope
        self._instrumentation_info = None
        for key, value in attributes.items():
            if type(value) not in _PLAIN:
                attributes[key] = _clean(value)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            logger.warning("Calling end() on an ended span.")
            return
        self._end_time = end_time if end_time is not None else time.time_ns()
        self._events = tuple(self._events)  # type: ignore[assignment]  # (frozen, as the SDK's)
        self._links = tuple(self._links)  # type: ignore[assignment]
        self._tracer._finished(self)

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self._end_time is not None:
            logger.warning("Setting attribute on ended span.")
            return
        if not key or not isinstance(key, str):
            logger.warning("invalid key `%s`. must be non-empty string. Dropping key from attributes.", key)
            return
        self._attributes[key] = value if type(value) in _PLAIN else _clean(value)

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        if self._end_time is None:
            self._events.append(Event(name, BoundedAttributes(None, attributes, immutable=True), timestamp))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self._end_time is None and _valid_link(context, attributes):
            self._links.append(Link(context, BoundedAttributes(None, attributes, immutable=True)))

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # The SDK's rules: OK is final, UNSET is never set.
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        event: dict[str, types.AnyValue] = {
            "exception.type": f"{module}.{qualname}" if module and module != "builtins" else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        event.update(attributes or {})
        self.add_event("exception", event, timestamp)

    def __exit__(self, exc_type: Any, exc_val: BaseException | None, exc_tb: Any) -> None:
        # As the SDK's span does when used as a context manager.
        if exc_val is not None and self.is_recording():
            self.record_exception(exc_val, escaped=True)
            self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        super().__exit__(exc_type, exc_val, exc_tb)

    def __repr__(self) -> str:
        return f'LeanSpan(name="{self._name}", context={self._context})'
