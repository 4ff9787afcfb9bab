"""Groups the records of one hand-over into aiokafka record batches, one run of
records per topic-partition.

Why not ``producer.send()`` per record: each call is a coroutine, a metadata
wait, a partitioner call, a size estimate and a future of its own, ~13-16 µs of
CPU a record, which was most of the sink's cost (docs/benchmarks.md). The
drainer already holds a batch, so it builds aiokafka's ``BatchBuilder`` itself
(aiokafka's public batch API, the C record builder) and gets one future per
partition batch. The partition is the default partitioner's (murmur2 of the key,
as Kafka's Java client), so a key lands where ``send()`` would have put it.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.partitioner import murmur2
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from .kafka_outcomes import RecordRejected
from .records import OutboundRecord

__all__ = ["PartitionBatch", "group_by_partition", "partition_of"]


@functools.lru_cache(maxsize=65_536)
def _hash(key: bytes) -> int:
    # Pure-Python murmur2 is ~3 µs for a short key; entity keys repeat, so remember them.
    return int(murmur2(key)) & 0x7FFFFFFF


def partition_of(key: bytes | None, partitions: Sequence[int]) -> int:
    """aiokafka's ``DefaultPartitioner``: murmur2 of the key over the sorted
    partitions, a random one for a record without a key."""
    if key is None:
        return random.choice(partitions)
    return partitions[_hash(key) % len(partitions)]


@dataclass(eq=False)
class PartitionBatch:
    """Records bound for one topic-partition, in the order they were given."""

    topic: str
    partition: int
    builder: Any  # aiokafka BatchBuilder (untyped)
    #: Positions of the records in the hand-over, in offset order within the batch.
    indices: list[int] = field(default_factory=list)


def group_by_partition(
    records: Sequence[OutboundRecord],
    partitions: Mapping[str, Sequence[int]],
    *,
    new_builder: Any,
    max_request_size: int,
) -> tuple[list[PartitionBatch], dict[int, RecordRejected]]:
    """Batches per topic-partition (a partition gets another batch when one is full)
    and the records no batch can carry (larger than ``max_request_size``, the same
    check, and message, as ``producer.send()``). Records of a topic missing from
    ``partitions`` (its metadata failed: the caller has their outcome) are left out.
    Every builder is closed, so the
    producer sends it at once instead of waiting out its own linger, and nothing
    else is added to it."""
    open_batches: dict[tuple[str, int], PartitionBatch] = {}
    batches: list[PartitionBatch] = []
    rejected: dict[int, RecordRejected] = {}
    estimate = DefaultRecordBatchBuilder.estimate_size_in_bytes
    topic: str | None = None
    topic_partitions: Sequence[int] | None = None
    for index, record in enumerate(records):
        if record.topic is not topic:  # (a hand-over's records usually share one topic)
            topic = record.topic
            topic_partitions = partitions.get(topic)
        if topic_partitions is None:
            continue
        key, value, headers = record.key, record.value, list(record.headers)
        size = estimate(key, value, headers)
        if size > max_request_size:
            rejected[index] = RecordRejected(
                f"Kafka rejected the record: the message is {size} bytes when serialized, "
                f"larger than max_request_size ({max_request_size})"
            )
            continue
        where = (topic, partition_of(key, topic_partitions))
        batch = open_batches.get(where)
        if (
            batch is None
            or batch.builder.append(timestamp=None, key=key, value=value, headers=headers) is None
        ):
            # No batch for this partition yet, or it is full (the builder took nothing):
            # the record opens the next one, which always takes its first record.
            batch = open_batches[where] = PartitionBatch(*where, new_builder())
            batches.append(batch)
            batch.builder.append(timestamp=None, key=key, value=value, headers=headers)
        batch.indices.append(index)
    for batch in batches:
        batch.builder.close()
    return batches, rejected
