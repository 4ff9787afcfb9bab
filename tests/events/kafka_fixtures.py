"""The real Kafka broker for event-pipeline tests, and helpers around it.

The broker is the project's own (``scripts/kafka``) on 127.0.0.1:19092, so tests
never touch a developer's broker on 9092; under pytest-xdist each worker has its
own, 19092 + 10 * n (tests/conftest.py), so an outage test stops only its own.
Load these fixtures in a test module with ``pytest_plugins = ["tests.events.kafka_fixtures"]``.

- ``kafka_bootstrap`` (session): starts the broker when it is not up. It leaves it
  running at the end (``KAFKA_PORT=19092 scripts/kafka stop`` stops it): sessions
  running side by side share the broker, and one finishing must not pull it from
  under another.
- ``new_topic`` (function): creates a uniquely named topic per call, deletes them after.
- :func:`consume_all`: every record of a topic, with a bounded wait.
- :func:`wait_until`: a bounded wait on a condition (tests never sleep to synchronise).
- :func:`stop_broker` / :func:`start_broker`: for outage tests (SIGTERM stop, so the
  restart is quick; a SIGKILLed broker takes ~10 s longer to come back).

Test modules also import the helpers directly, before pytest loads this file as a
plugin, so it opts out of assertion rewriting (it has no asserts): PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import aiokafka.errors as kafka_errors
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from adapter.events.aiokafka_compat import start_client

ROOT = Path(__file__).resolve().parents[2]
# KAFKA_TEST_PORT lets several work trees run the suite side by side.
KAFKA_PORT = int(os.environ.get("KAFKA_TEST_PORT", "19092"))
BOOTSTRAP = f"127.0.0.1:{KAFKA_PORT}"

TopicFactory = Callable[..., Awaitable[str]]


async def wait_until(predicate: Callable[[], bool], *, within: float, what: str) -> None:
    """Waits for a condition (checked every 20 ms); fails the test after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"waited {within}s for {what}")
        await asyncio.sleep(0.02)


def kafka_script(
    command: str, *, timeout: float = 150.0, broker: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs ``scripts/kafka <command>`` for the test broker's port, or for the broker
    ``broker``'s variables describe (``KAFKA_PORT``, ``KAFKA_DATA_DIR``...)."""
    env = {**os.environ, **(broker or {"KAFKA_PORT": str(KAFKA_PORT)})}
    return subprocess.run(
        [str(ROOT / "scripts" / "kafka"), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_broker() -> None:
    """Starts the test broker and waits until it answers (a no-op when it is up)."""
    result = kafka_script("start")
    if result.returncode != 0:
        raise RuntimeError(f"scripts/kafka start failed:\n{result.stdout}\n{result.stderr}")


def stop_broker() -> None:
    """Stops the test broker with SIGTERM (clean shutdown)."""
    result = kafka_script("stop")
    if result.returncode != 0:
        raise RuntimeError(f"scripts/kafka stop failed:\n{result.stdout}\n{result.stderr}")


@contextlib.contextmanager
def paused_broker() -> Iterator[None]:
    """Freezes the test broker (SIGSTOP) until the block ends (SIGCONT): connections
    stay open and nothing is answered, as in a long GC pause."""
    result = kafka_script("pid", timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"scripts/kafka pid failed:\n{result.stdout}\n{result.stderr}")
    pid = int(result.stdout.strip())
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def broker_running() -> bool:
    return kafka_script("status", timeout=30).returncode == 0


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """``bootstrap_servers`` of a running test broker."""
    start_broker()
    return BOOTSTRAP


def _admin(bootstrap: str) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="tests-admin", request_timeout_ms=10_000
    )


async def create_topic(bootstrap: str, name: str, *, partitions: int = 3, within: float = 20.0) -> None:
    """Creates ``name`` (the broker answers once the controller created it)."""
    admin = _admin(bootstrap)
    try:
        async with asyncio.timeout(within):
            await start_client(admin)
            response = await admin.create_topics([NewTopic(name, partitions, 1)], timeout_ms=10_000)
            for topic, code, *_ in response.topic_errors:
                error = kafka_errors.for_code(code)
                if error is not kafka_errors.NoError:
                    raise RuntimeError(f"creating {topic} failed: {error.__name__}")
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: list[str], *, within: float = 10.0) -> None:
    """Deletes ``names``, best effort (the broker may be down after a failed outage test)."""
    admin = _admin(bootstrap)
    try:
        async with asyncio.timeout(within):
            await start_client(admin)
            await admin.delete_topics(names)
    except (TimeoutError, kafka_errors.KafkaError):
        pass
    finally:
        await admin.close()


async def delete_topics_with_prefix(bootstrap: str, prefix: str, *, within: float = 10.0) -> None:
    """Deletes every topic named ``prefix...``, best effort: topics left behind make
    each later broker restart (outage tests) load more partitions."""
    admin = _admin(bootstrap)
    try:
        async with asyncio.timeout(within):
            await start_client(admin)
            names = [t for t in await admin.list_topics() if t.startswith(prefix)]
            if names:
                await admin.delete_topics(names)
    except (TimeoutError, kafka_errors.KafkaError):
        pass
    finally:
        await admin.close()


@pytest_asyncio.fixture
async def new_topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> AsyncIterator[TopicFactory]:
    """``await new_topic(partitions=3)``: a fresh topic named after the test."""
    created: list[str] = []
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)[:60].strip("-")

    async def make(*, partitions: int = 3) -> str:
        name = f"test-{slug}-{uuid.uuid4().hex[:8]}"
        await create_topic(kafka_bootstrap, name, partitions=partitions)
        created.append(name)
        return name

    yield make
    if created:
        await delete_topics(kafka_bootstrap, created)


async def partitions_of(bootstrap: str, topic: str) -> list[int]:
    """The partition ids of ``topic``, from the broker (not a client's metadata cache).

    Waits while the topic does not exist yet (auto-created by a producer that has
    not sent yet); the caller bounds the wait.
    """
    admin = _admin(bootstrap)
    try:
        await start_client(admin)
        while True:
            (described,) = await admin.describe_topics([topic])
            error = kafka_errors.for_code(described["error_code"])
            if error is kafka_errors.NoError and described["partitions"]:
                return sorted(p["partition"] for p in described["partitions"])
            if error not in (kafka_errors.NoError, kafka_errors.UnknownTopicOrPartitionError):
                raise RuntimeError(f"{topic}: {error.__name__}")
            await asyncio.sleep(0.1)  # not there yet
    finally:
        await admin.close()


async def consume_all(
    bootstrap: str, topic: str, *, expected: int | None = None, within: float = 30.0
) -> list[ConsumerRecord[Any, Any]]:
    """All records of ``topic``, ordered by (partition, offset).

    Reads until at least ``expected`` records arrived (when given) and then up to
    the end offsets of that moment, so duplicates written meanwhile are included.
    Fails the test when ``within`` seconds pass first.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10_000,
    )
    records: list[ConsumerRecord[Any, Any]] = []
    try:
        async with asyncio.timeout(within):
            tps = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic)]
            await start_client(consumer)
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while True:
                batches = await consumer.getmany(*tps, timeout_ms=200)
                for batch in batches.values():
                    records.extend(batch)
                if expected is not None and len(records) < expected:
                    continue
                ends = await consumer.end_offsets(tps)
                positions = {tp: await consumer.position(tp) for tp in tps}
                if all(positions[tp] >= ends[tp] for tp in tps):
                    break
    except TimeoutError:
        pytest.fail(f"consumed {len(records)} of {expected or 'all'} records of {topic} within {within}s")
    finally:
        await consumer.stop()
    return sorted(records, key=lambda r: (r.partition, r.offset))
