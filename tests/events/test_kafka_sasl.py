"""A Kafka cluster that wants SASL: every client of the adapter (topic admin, the
sink's producer, Subscribe's consumer) authenticates with ``events.kafka`` security
settings, against a real broker with a SASL_PLAINTEXT listener (``KAFKA_SASL_PORT``
of ``scripts/kafka``: PLAIN and SCRAM-SHA-512). Wrong credentials deliver nothing
and lose nothing: the events stay in the spool."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from meshadapter.v1 import events_pb2, events_pb2_grpc
from pydantic import ValidationError

from adapter.config.events import KafkaSettings
from adapter.config.settings import ConfigError
from adapter.events.aiokafka_compat import quiet_aiokafka
from adapter.events.kafka_connection import KafkaConnection, client_args
from adapter.runtime import MeshAdapter
from bench.ports import listen_port
from simulator import Simulator

from .kafka_fixtures import ROOT, consume_all, wait_until
from .mesh_fixtures import mesh_settings

pytestmark = pytest.mark.kafka

USER, PASSWORD = "mesh", "mesh-dev-secret"


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A broker of its own: (PLAINTEXT bootstrap, SASL_PLAINTEXT bootstrap)."""
    data = tmp_path_factory.mktemp("kafka-sasl")
    port, sasl_port = listen_port(), listen_port()
    env = {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(listen_port()),
        "KAFKA_SASL_PORT": str(sasl_port),
        "KAFKA_DATA_DIR": str(data),
        "KAFKA_SASL_USER": USER,
        "KAFKA_SASL_PASSWORD": PASSWORD,
    }

    def script(command: str) -> None:
        done = subprocess.run(
            [str(ROOT / "scripts" / "kafka"), command], env=env, capture_output=True, text=True, timeout=150
        )
        assert done.returncode == 0, f"scripts/kafka {command}:\n{done.stdout}\n{done.stderr}"

    script("start")
    try:
        yield f"127.0.0.1:{port}", f"127.0.0.1:{sasl_port}"
    finally:
        script("stop")
        shutil.rmtree(data, ignore_errors=True)


@pytest_asyncio.fixture
async def adapter_on_sasl(
    request: pytest.FixtureRequest,
    sasl_broker: tuple[str, str],
    simulator: Simulator,
    tmp_path: Path,
    prefix: str,
) -> AsyncIterator[MeshAdapter]:
    mechanism, password = request.param
    password_file = tmp_path / "kafka-password"
    password_file.write_text(password + "\n")
    kafka: dict[str, Any] = {
        "bootstrap_servers": sasl_broker[1],
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_username": USER,
        "sasl_password_file": str(password_file),
        "lifecycle_timeout_seconds": 5,
        "request_timeout_seconds": 5,
    }
    adapter = MeshAdapter(mesh_settings(simulator, tmp_path, prefix, kafka=kafka))
    await adapter.start()
    assert adapter.events is not None
    await asyncio.wait_for(adapter.events.sources["openframe"].streaming.wait(), 10)
    try:
        yield adapter
    finally:
        await adapter.stop(0)


@pytest.mark.parametrize("adapter_on_sasl", [("SCRAM-SHA-512", PASSWORD), ("PLAIN", PASSWORD)], indirect=True)
async def test_events_reach_a_sasl_cluster_and_subscribe_reads_them(
    adapter_on_sasl: MeshAdapter, sasl_broker: tuple[str, str], simulator: Simulator, prefix: str
) -> None:
    assert adapter_on_sasl.events is not None
    created = await simulator.generate_events("openframe", "alert", count=3)
    records = await consume_all(sasl_broker[0], f"{prefix}openframe.alerts", expected=3, within=30)
    assert sorted(r.key.decode() for r in records) == sorted(e["id"] for e in created)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{adapter_on_sasl.port}") as channel:
        stream = events_pb2_grpc.EventServiceStub(channel).Subscribe(
            events_pb2.SubscribeRequest(
                topics=[f"{prefix}openframe.alerts"], start_from=events_pb2.START_FROM_EARLIEST
            ),
            timeout=30,
        )
        read = [await stream.read() for _ in range(3)]
        stream.cancel()
    assert sorted(e.key for e in read) == sorted(e["id"] for e in created)


WRONG = "not-the-Kafka-password-7f3a"


@pytest.mark.parametrize("adapter_on_sasl", [("SCRAM-SHA-512", WRONG)], indirect=True)
async def test_refused_credentials_deliver_nothing_and_lose_nothing(
    adapter_on_sasl: MeshAdapter,
    sasl_broker: tuple[str, str],
    simulator: Simulator,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert adapter_on_sasl.events is not None
    quiet_aiokafka()  # as `python -m adapter` does: aiokafka's lines kept, unlogged
    await simulator.generate_events("openframe", "alert", count=2)
    spool = adapter_on_sasl.events.spool
    await wait_until(lambda: spool.depth == 2, within=10, what="two events spooled")
    await asyncio.sleep(2)  # the drainer tries, and is refused
    assert spool.depth == 2
    # aiokafka says only "Unable to bootstrap"; the adapter's line says why
    unreachable = [r.getMessage() for r in caplog.records if r.name == "adapter.events.delivery"]
    assert unreachable and "SaslAuthenticationFailed" in unreachable[0], unreachable
    assert not [r for r in caplog.records if r.name.startswith("aiokafka")]
    assert WRONG not in caplog.text


def test_the_settings_refuse_what_cannot_connect(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="needs sasl_username"):
        KafkaSettings(security_protocol="SASL_SSL", sasl_password="p")
    with pytest.raises(ValidationError, match="needs sasl_password or sasl_password_file"):
        KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_username="u")
    with pytest.raises(ValidationError, match="ssl_\\* files need security_protocol SSL or SASL_SSL"):
        KafkaSettings(ssl_cafile=tmp_path / "ca.pem")
    with pytest.raises(ValidationError, match="ssl_certfile and ssl_keyfile go together"):
        KafkaSettings(security_protocol="SSL", ssl_certfile=tmp_path / "c.pem")


def test_the_connection_keeps_its_password_out_of_sight(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text(WRONG + "\n")
    kafka = KafkaSettings(
        bootstrap_servers="b:9093", security_protocol="SASL_SSL", sasl_username="u", sasl_password_file=secret
    )
    connection = KafkaConnection.from_settings(kafka)
    assert client_args(connection)["sasl_plain_password"] == WRONG
    assert isinstance(client_args(connection)["ssl_context"], ssl.SSLContext)
    assert WRONG not in repr(connection) and WRONG not in str(connection)
    assert str(connection) == "b:9093 (SASL_SSL)"
    secret.write_text("")
    with pytest.raises(
        ConfigError,
        match=r"events.kafka.sasl_password_file \(MESH_EVENTS__KAFKA__SASL_PASSWORD_FILE\): .* is empty",
    ):
        KafkaConnection.from_settings(kafka)
    bad_ca = tmp_path / "ca.pem"
    bad_ca.write_text("no certificate here\n")
    with pytest.raises(ConfigError, match="cannot load the TLS files"):
        KafkaConnection.from_settings(KafkaSettings(security_protocol="SSL", ssl_cafile=bad_ca))
