"""Partition batches: aiokafka's partitioner, full builders, records too large to send."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from adapter.events.kafka_outcomes import RecordRejected
from adapter.events.partition_batches import group_by_partition, partition_of
from adapter.events.records import OutboundRecord


def builder(size: int = 16_384) -> BatchBuilder:
    return BatchBuilder(size, 0)  # (0: no compression, as the producer codes it)


def rec(n: int, key: bytes | None, topic: str = "t", value: bytes = b"v" * 50) -> OutboundRecord:
    return OutboundRecord(topic=topic, key=key, value=value, headers=(("ce_id", b"%d" % n),), ce_id=str(n))


def test_partition_of_is_aiokafkas_default_partitioner() -> None:
    partitioner = DefaultPartitioner()
    for count in (1, 3, 7, 12):
        partitions = list(range(count))
        for n in range(500):
            key = b"entity-%d" % n
            assert partition_of(key, partitions) == partitioner(key, partitions, partitions)


def test_records_without_a_key_go_to_some_partition() -> None:
    assert {partition_of(None, [0, 1, 2]) for _ in range(200)} == {0, 1, 2}


def test_records_are_grouped_per_topic_partition_in_their_order() -> None:
    records = [rec(n, b"k%d" % (n % 5), topic=("a" if n % 2 else "b")) for n in range(60)]
    batches, rejected = group_by_partition(
        records, {"a": [0, 1, 2], "b": [0, 1]}, new_builder=builder, max_request_size=1 << 20
    )
    assert rejected == {}
    assert sorted(i for b in batches for i in b.indices) == list(range(60))
    for batch in batches:
        assert batch.indices == sorted(batch.indices)
        assert batch.builder.closed()  # sent at once, and nothing else joins it
        assert batch.builder.record_count() == len(batch.indices)
        for i in batch.indices:
            assert records[i].topic == batch.topic
            assert (
                partition_of(records[i].key, [0, 1, 2] if batch.topic == "a" else [0, 1]) == batch.partition
            )


def test_a_full_batch_continues_in_the_next_one_of_that_partition() -> None:
    records = [rec(n, b"same-key") for n in range(40)]
    batches, _ = group_by_partition(
        records, {"t": [0, 1, 2]}, new_builder=lambda: builder(512), max_request_size=1 << 20
    )
    assert len(batches) > 3
    assert len({b.partition for b in batches}) == 1
    assert [i for b in batches for i in b.indices] == list(range(40))  # the order across batches too


def test_a_record_larger_than_a_request_is_rejected_and_the_rest_go() -> None:
    records = [rec(0, b"k"), rec(1, b"k", value=b"x" * 5000), rec(2, b"k")]
    batches, rejected = group_by_partition(records, {"t": [0]}, new_builder=builder, max_request_size=4096)
    assert list(rejected) == [1]
    assert isinstance(rejected[1], RecordRejected)
    assert "max_request_size" in str(rejected[1])
    assert [i for b in batches for i in b.indices] == [0, 2]


def test_records_of_a_topic_without_partitions_are_left_out() -> None:
    """A topic whose metadata failed for good: the sink already gave its records an
    outcome, and the others still go."""
    records = [rec(0, b"k", topic="bad"), rec(1, b"k", topic="t"), rec(2, b"j", topic="bad")]
    batches, rejected = group_by_partition(
        records, {"t": [0, 1]}, new_builder=builder, max_request_size=1 << 20
    )
    assert rejected == {}
    assert [(b.topic, b.indices) for b in batches] == [("t", [1])]
