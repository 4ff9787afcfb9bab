"""``meshadapter.v1.EventService``: the published events as a gRPC server stream.

Backed by Kafka (one consumer per stream, partitions assigned, no consumer
group), so a client resumes from the ``position`` of the last event it saw.
Flow control: ``context.write`` waits while the client's HTTP/2 window is
full, and the consumer fetches in bounded batches, so a slow client slows its
own stream and never grows the adapter's memory.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from google.protobuf import any_pb2
from google.protobuf.message import Message
from meshadapter.v1 import events_pb2, events_pb2_grpc

from adapter.events.aiokafka_compat import refresh_topic_metadata, start_client, stop_consumer
from adapter.events.kafka_connection import KafkaTarget, client_args
from adapter.events.watermarks import event_time
from adapter.security.identity import current_principal
from adapter.status.call_ending import end_call
from adapter.status.mapping import to_rpc_status
from adapter.telemetry.repeated_lines import RepeatedLines
from adapter.transcoding.errors import BindingError
from adapter.transcoding.json_codec import JsonCodec
from adapter.transcoding.request_validation import RequestValidator

from .kafka_unreachable import KafkaUnreachableRefusals
from .stream_caps import StreamCapExceeded, SubscribeStreamCaps

__all__ = ["EventStreamServicer", "decode_position", "encode_position"]

logger = logging.getLogger(__name__)

Position = dict[str, dict[int, int]]


def encode_position(position: Position) -> str:
    doc = {topic: {str(p): o for p, o in parts.items()} for topic, parts in position.items()}
    return base64.urlsafe_b64encode(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).rstrip(b"=").decode()


#: A filter is checked against every record on the event loop: a request of 4 MiB
#: held ~600,000 type prefixes (~5 ms a record) or keys (~60 MB a stream).
MAX_FILTER_TYPES = 64
MAX_FILTER_KEYS = 1024
_MAX_PARTITION = 2**31 - 1  # Kafka partitions are int32, offsets int64
_MAX_OFFSET = 2**63 - 1


def decode_position(token: str) -> Position:
    """Raises ValueError unless ``token`` is a position this service could have issued."""
    try:
        doc = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        position = {str(t): {int(p): int(o) for p, o in parts.items()} for t, parts in doc.items()}
    except (binascii.Error, ValueError, TypeError, AttributeError, orjson.JSONDecodeError):
        raise ValueError("is not a position issued by this service") from None
    for parts in position.values():
        for partition, offset in parts.items():
            if not (0 <= partition <= _MAX_PARTITION and 0 <= offset <= _MAX_OFFSET):
                raise ValueError("holds a partition or offset out of range")
    return position


class EventStreamServicer(events_pb2_grpc.EventServiceServicer):
    """Streams Kafka records of the event topics as ``meshadapter.v1.Event``."""

    def __init__(
        self,
        *,
        bootstrap_servers: KafkaTarget,
        topics: list[str],
        message_types: dict[str, type[Message]],
        codec: JsonCodec,
        metadata_timeout_seconds: float = 10.0,
        batch: int = 100,
        caps: SubscribeStreamCaps | None = None,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._topics = topics
        self._types = message_types
        self._codec = codec
        self._metadata_timeout = metadata_timeout_seconds
        self._batch = batch
        self._caps = caps or SubscribeStreamCaps(total=0, per_principal=0)
        #: Refusals while Kafka is unreachable (counted; logged once per outage and a minute).
        self.unreachable = KafkaUnreachableRefusals()
        #: Records pulled from Kafka and records sent to clients, over all streams
        #: (their difference is what streams hold in memory).
        self.fetched = 0
        self.sent = 0
        #: Subscribe streams open now (a gauge for operators).
        self.open_streams = 0
        self._validator = RequestValidator(events_pb2.SubscribeRequest.DESCRIPTOR)
        # Whoever may write to a topic can write a million records this cannot read, and each
        # subscriber meets every one: a line per topic and cause per interval, with a count.
        self._unreadable_lines = RepeatedLines(logger)

    @property
    def refused_unreachable(self) -> int:
        """Subscribe calls refused because Kafka was unreachable (a counter for operators)."""
        return self.unreachable.refused

    @property
    def topics(self) -> list[str]:
        """The event topics served (a request naming none streams all of them)."""
        return list(self._topics)

    async def Subscribe(
        self, request: events_pb2.SubscribeRequest, context: Any
    ) -> AsyncIterator[events_pb2.Event]:
        topics = list(dict.fromkeys(request.topics)) or self._topics  # each once: a metadata request each
        resume: Position | None = None
        try:  # INVALID_ARGUMENT with a BadRequest naming the field, before Kafka is asked
            self._validator.check(request)
            if len(request.filter.types) > MAX_FILTER_TYPES:
                raise BindingError("filter.types", f"at most {MAX_FILTER_TYPES} type prefixes")
            if len(request.filter.keys) > MAX_FILTER_KEYS:
                raise BindingError("filter.keys", f"at most {MAX_FILTER_KEYS} keys")
            unknown = sorted(set(topics) - set(self._topics))
            if unknown:
                raise BindingError("topics", f"not an event topic: {', '.join(unknown)}")
            if request.resume_from:
                try:
                    resume = decode_position(request.resume_from)
                except ValueError as exc:
                    raise BindingError("resume_from", str(exc)) from None
        except BindingError as exc:
            end_call(context, to_rpc_status(exc))
            return
        principal = current_principal.get().name
        try:  # before a consumer exists: a refused stream costs nothing
            self._caps.acquire(principal)
        except StreamCapExceeded as exc:
            end_call(context, exc.status())
            return
        consumer = AIOKafkaConsumer(
            **client_args(self._bootstrap),
            enable_auto_commit=False,
            group_id=None,
            fetch_max_bytes=1024 * 1024,
            max_partition_fetch_bytes=256 * 1024,
            request_timeout_ms=15000,
        )
        try:
            async with asyncio.timeout(self._metadata_timeout):
                await start_client(consumer)
                assignment = await self._assign(consumer, topics)
        except BaseException as exc:
            self._caps.release(principal)
            await stop_consumer(consumer, within=self._metadata_timeout)
            if not isinstance(exc, TimeoutError | KafkaError | OSError):
                raise
            end_call(context, self.unreachable.refuse(exc))
            return
        self.unreachable.reached()
        self.open_streams += 1
        try:
            position = await self._seek(consumer, assignment, resume, request.start_from)
            types = tuple(request.filter.types)
            keys = set(request.filter.keys)
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=self._batch)
                self.fetched += sum(len(records) for records in batches.values())
                for tp, records in batches.items():
                    for record in records:
                        position.setdefault(tp.topic, {})[tp.partition] = record.offset + 1
                        event = self._event(record)
                        if types and not event.type.startswith(types):
                            continue
                        if keys and event.key not in keys:
                            continue
                        event.position = encode_position(position)
                        yield event  # waits on the client's flow-control window
                        self.sent += 1
        finally:
            self.open_streams -= 1
            self._caps.release(principal)
            await stop_consumer(consumer, within=self._metadata_timeout)

    async def _assign(self, consumer: AIOKafkaConsumer, topics: list[str]) -> list[TopicPartition]:
        assignment: list[TopicPartition] = []
        for topic in topics:
            partitions = None
            while not partitions:  # a topic appears once its first record is published
                await refresh_topic_metadata(consumer, topic)
                partitions = consumer.partitions_for_topic(topic)
                if not partitions:
                    await asyncio.sleep(0.2)
            assignment.extend(TopicPartition(topic, p) for p in sorted(partitions))
        consumer.assign(assignment)
        return assignment

    async def _seek(
        self,
        consumer: AIOKafkaConsumer,
        assignment: list[TopicPartition],
        resume: Position | None,
        start_from: int,
    ) -> Position:
        position: Position = {}
        if resume is not None:
            for tp in assignment:
                offset = resume.get(tp.topic, {}).get(tp.partition)
                if offset is None:
                    await consumer.seek_to_beginning(tp)  # a partition the token did not know yet
                else:
                    consumer.seek(tp, offset)
                    position.setdefault(tp.topic, {})[tp.partition] = offset
            return position
        if start_from == events_pb2.START_FROM_EARLIEST:
            await consumer.seek_to_beginning(*assignment)
        else:
            await consumer.seek_to_end(*assignment)
        for tp in assignment:
            position.setdefault(tp.topic, {})[tp.partition] = await consumer.position(tp)
        return position

    def _event(self, record: Any) -> events_pb2.Event:
        """The record as an Event; never raises. Anyone who may write to a topic can put
        a record there that this cannot read (a null header, a time out of range...):
        that must not end every subscriber's stream at its offset, again on each resume.
        What cannot be read is left out and logged; the event still goes out."""
        event = events_pb2.Event(topic=record.topic, partition=record.partition, offset=record.offset)
        try:
            self._fill(event, record)
        except Exception as exc:
            self._unreadable_lines.log(
                logging.WARNING,
                (record.topic, type(exc).__name__),
                "record %s[%d]@%d could not be read whole (%s); it goes out without the rest",
                record.topic, record.partition, record.offset, type(exc).__name__,
            )  # fmt: skip
        return event

    def _fill(self, event: events_pb2.Event, record: Any) -> None:
        # A header's value may be null in Kafka's format (aiokafka gives None): left out.
        headers = {k: v.decode("utf-8", "replace") for k, v in record.headers or () if v is not None}
        event.id = headers.get("ce_id", "")
        event.source = headers.get("ce_source", "")
        event.type = headers.get("ce_type", "")
        event.key = (record.key or b"").decode("utf-8", "replace")
        event.traceparent = headers.get("traceparent", "")
        when = event_time(headers.get("ce_time", ""))  # None when unreadable or out of range
        if when is not None:
            event.time.FromDatetime(when.replace(tzinfo=None))
        data = self._data(headers.get("content-type", ""), record.value or b"")
        if data is not None:
            event.data.CopyFrom(data)

    def _data(self, content_type: str, value: bytes) -> any_pb2.Any | None:
        media, _, params = content_type.partition(";")
        proto = dict(p.strip().split("=", 1) for p in params.split(";") if "=" in p).get("proto", "")
        media = media.strip()
        if media == "application/protobuf" and proto:
            return any_pb2.Any(type_url=f"type.googleapis.com/{proto}", value=value)
        cls = self._types.get(proto)
        if media == "application/json" and cls is not None:
            try:
                message = self._codec.decode(cls, orjson.loads(value))
            except ValueError:
                return None
            packed = any_pb2.Any()
            packed.Pack(message)
            return packed
        return None  # dead letters and foreign records carry no typed data
