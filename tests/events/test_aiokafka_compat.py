"""Fails when the installed aiokafka no longer has what adapter.events.aiokafka_compat
uses (its private attributes, each tied to an upstream issue)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.producer.sender import Sender

from adapter.events.aiokafka_compat import BOOTSTRAP_LOCAL, PRIVATE_ATTRIBUTES


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
