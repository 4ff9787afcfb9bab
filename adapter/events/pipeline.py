"""The running parts of the event fan-out, as one value (for health, metrics,
operators and tests): sources -> intake -> spool -> drainer -> Kafka sink, and the
gRPC ``EventService`` reading back from Kafka."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from meshadapter.v1.events_pb2_grpc import EventServiceServicer

from .delivery import SpoolDrainer
from .intake import EventIntake
from .kafka_sink import KafkaSink
from .spool import EventSpool
from .watermarks import Watermarks
from .webhook_receiver import WebhookReceiver
from .websocket_source import WebSocketSource

if TYPE_CHECKING:
    from adapter.coordination.quota_membership import QuotaMembership
    from adapter.coordination.stream_ownership import StreamOwnership

__all__ = ["EventPipeline"]


@dataclass
class EventPipeline:
    spool: EventSpool
    sink: KafkaSink
    drainer: SpoolDrainer
    intake: EventIntake
    watermarks: Watermarks
    webhook: WebhookReceiver | None = None
    sources: dict[str, WebSocketSource] = field(default_factory=dict)
    #: The gRPC EventService servicer reading the topics back.
    subscriptions: EventServiceServicer | None = None
    #: Replicas: which streams this one runs (``events.coordination``); None: all of them.
    ownership: StreamOwnership | None = None
    #: Replicas: this one's share of the upstream quotas (``events.coordination.share_quota``).
    quota: QuotaMembership | None = None
