"""Fails when the installed aiokafka no longer has what adapter.events.aiokafka_compat
uses (its private attributes, each tied to an upstream issue)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.producer.sender import Sender

from adapter.events.aiokafka_compat import BOOTSTRAP_LOCAL, PRIVATE_ATTRIBUTES, stop_consumer


async def test_every_private_attribute_the_compat_module_uses_exists() -> None:
    # Built, never started: nothing connects (the address is never dialled).
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9")
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9")
    try:
        instances = {
            "AIOKafkaProducer": producer,
            "Sender": producer._sender,
            "AIOKafkaConsumer": consumer,
            "AIOKafkaClient": consumer._client,
        }
        assert isinstance(producer._sender, Sender) and isinstance(consumer._client, AIOKafkaClient)
        for cls, names in PRIVATE_ATTRIBUTES.items():
            for name in names:
                assert hasattr(instances[cls], name), (
                    f"aiokafka's {cls} has no {name}: update aiokafka_compat"
                )
        assert callable(consumer._client.force_metadata_update) and callable(consumer._client.add_topic)
    finally:
        producer._closed = True  # never started: nothing to stop
        await consumer.stop()


def test_the_bootstrap_still_holds_its_connection_where_start_client_looks() -> None:
    code = AIOKafkaClient.bootstrap.__code__
    assert AIOKafkaClient.bootstrap.__module__ == "aiokafka.client" and code.co_name == "bootstrap"
    assert BOOTSTRAP_LOCAL in code.co_varnames, (
        "aiokafka's bootstrap changed: update aiokafka_compat.start_client"
    )


def adapter_modules_matching(pattern: str) -> list[str]:
    """Modules of ``adapter/`` but the compat module whose text matches ``pattern``."""
    root = Path(__file__).resolve().parents[2] / "adapter"
    return [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "aiokafka_compat.py" and re.search(pattern, path.read_text())
    ]


def test_only_the_compat_module_reaches_into_aiokafka() -> None:
    assert adapter_modules_matching(r"\b(producer|consumer|client)\._[a-z]") == [], (
        "aiokafka private attributes outside adapter/events/aiokafka_compat.py"
    )


def test_kafka_clients_of_the_adapter_start_and_stop_through_the_compat_module() -> None:
    assert adapter_modules_matching(r"\b(producer|consumer|admin)\.start\(") == [], (
        "start aiokafka clients with aiokafka_compat.start_client (a cut start leaks)"
    )
    assert adapter_modules_matching(r"\bconsumer\.stop\(") == [], (
        "stop aiokafka consumers with aiokafka_compat.stop_consumer (a cut stop leaks)"
    )


pytestmark = pytest.mark.filterwarnings("error")


def test_the_fetcher_still_awaits_the_tasks_it_cancels_on_close() -> None:
    """The quirk ``stop_consumer`` absorbs (aio-libs/aiokafka#647): ``Fetcher.close``
    cancels its pending fetches and awaits them, so their CancelledError comes out of
    ``consumer.stop()``. When a version stops doing so, this fails: drop the absorbing."""
    import inspect

    from aiokafka.consumer.fetcher import Fetcher

    source = inspect.getsource(Fetcher.close)
    assert re.search(r"x\.cancel\(\)\s+await x", source), source


class _Client:
    closed = False

    async def close(self) -> None:
        self.closed = True


class _ConsumerWhoseStopLeaksACancellation:
    """What aiokafka's consumer does when its fetch was waiting to retry a lost broker."""

    def __init__(self) -> None:
        self._client = _Client()

    async def stop(self) -> None:
        raise asyncio.CancelledError()


class _ConsumerWhoseStopHangs:
    def __init__(self) -> None:
        self._client = _Client()

    async def stop(self) -> None:
        await asyncio.sleep(30)


async def test_a_cancellation_leaking_out_of_stop_is_a_failed_stop(caplog: pytest.LogCaptureFixture) -> None:
    consumer = _ConsumerWhoseStopLeaksACancellation()
    await stop_consumer(consumer, within=1.0, name="the test's member")  # returns
    assert consumer._client.closed
    said = [r.getMessage() for r in caplog.records if r.name == "adapter.events.aiokafka_compat"]
    assert said == ["the test's member did not stop cleanly (its fetch was cut); closing its connections"]


async def test_cancelling_the_caller_still_cancels_stop_consumer() -> None:
    consumer = _ConsumerWhoseStopHangs()
    stopping = asyncio.ensure_future(stop_consumer(consumer, within=10.0))
    await asyncio.sleep(0.05)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert consumer._client.closed  # its connections closed on the way out
