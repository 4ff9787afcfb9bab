"""A Kafka cluster that wants SASL, TLS or both: every client of the adapter (topic
admin, the sink's producer, Subscribe's consumer) connects with ``events.kafka``
security settings, against a real broker with a SASL_PLAINTEXT listener
(``KAFKA_SASL_PORT`` of ``scripts/kafka``: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512), an
SSL one (``KAFKA_SSL_PORT``, client certificates required) and a SASL_SSL one
(``KAFKA_SASL_SSL_PORT``, TLS then a login, as managed clusters offer). Refused
credentials deliver nothing and lose nothing: the events stay in the spool, and the
log says why."""

from __future__ import annotations

import asyncio
import base64
import gc
import logging
import shutil
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from aiohttp import web
from meshadapter.v1 import events_pb2, events_pb2_grpc
from pydantic import ValidationError

from adapter.config.events import KafkaSettings
from adapter.config.settings import ConfigError
from adapter.events.aiokafka_compat import quiet_aiokafka
from adapter.events.kafka_connection import KafkaConnection, client_args
from adapter.runtime import MeshAdapter
from bench.ports import listen_port
from simulator import Simulator

from ..loopback_http import serving
from ..security.jwt_helpers import unsigned
from ..security.pki import Pki
from .kafka_fixtures import consume_all, kafka_script, wait_until
from .mesh_fixtures import mesh_settings

pytestmark = pytest.mark.kafka

USER, PASSWORD = "mesh", "mesh-dev-secret"
WRONG = "not-the-Kafka-password-7f3a"


@dataclass(frozen=True)
class SecuredBroker:
    plaintext: str
    sasl: str
    tls: str
    sasl_tls: str
    pki: Pki


@pytest.fixture(scope="module")
def secured_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    """A broker of its own with a PLAINTEXT, a SASL_PLAINTEXT, an SSL and a SASL_SSL listener."""
    data = tmp_path_factory.mktemp("kafka-secured")
    pki = Pki(tmp_path_factory.mktemp("kafka-pki"))
    keystore = pki.dir / "broker-keystore.pem"  # Kafka's PEM keystore: the key, then the chain
    keystore.write_bytes((pki.dir / "server-key.pem").read_bytes() + (pki.dir / "server.pem").read_bytes())
    port, sasl_port, tls_port, sasl_tls_port = listen_port(), listen_port(), listen_port(), listen_port()
    env = {
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(listen_port()),
        "KAFKA_SASL_PORT": str(sasl_port),
        "KAFKA_SSL_PORT": str(tls_port),
        "KAFKA_SASL_SSL_PORT": str(sasl_tls_port),
        "KAFKA_SSL_KEYSTORE": str(keystore),
        "KAFKA_SSL_TRUSTSTORE": str(pki.ca),
        "KAFKA_DATA_DIR": str(data),
        "KAFKA_SASL_USER": USER,
        "KAFKA_SASL_PASSWORD": PASSWORD,
    }

    def script(command: str) -> None:
        done = kafka_script(command, broker=env)
        assert done.returncode == 0, f"scripts/kafka {command}:\n{done.stdout}\n{done.stderr}"

    script("start")
    try:
        yield SecuredBroker(
            f"127.0.0.1:{port}",
            f"127.0.0.1:{sasl_port}",
            f"127.0.0.1:{tls_port}",
            f"127.0.0.1:{sasl_tls_port}",
            pki,
        )
    finally:
        script("stop")
        shutil.rmtree(data, ignore_errors=True)


async def _end_waiting_tls_shutdowns() -> None:
    """aiokafka closes a TLS connection without waiting for it to end. Plain stops of
    producers and consumers end at once (the broker answers the close_notify), but in
    some runs one of the adapter's connections is left waiting, and asyncio waits up
    to 30 s (its ``ssl_shutdown_timeout``) before it closes the socket. The test's
    loop ends sooner, so that socket would be found by the garbage collector during a
    later test, failing it on a ResourceWarning ("unclosed transport"). What this
    loop still waits for is ended here, as that timeout would end it."""
    loop = asyncio.get_running_loop()
    for waiting in gc.get_objects():
        if isinstance(waiting, asyncio.sslproto.SSLProtocol) and waiting._loop is loop:
            socket_transport = waiting._transport
            if socket_transport is not None:
                socket_transport.abort()
    await asyncio.sleep(0.05)  # their connection_lost callbacks run


def _use_client_certificate(pki: Pki, client: str, directory: Path) -> None:
    """Writes ``client``'s certificate and key to ``directory``/client(-key).pem, each
    replaced by a rename, as a certificate agent rotates them."""
    for source, target in ((f"{client}-key.pem", "client-key.pem"), (f"{client}.pem", "client.pem")):
        staged = directory / f".{target}.new"
        staged.write_bytes((pki.dir / source).read_bytes())
        staged.replace(directory / target)


@pytest_asyncio.fixture
async def secured_adapter(
    request: pytest.FixtureRequest,
    secured_broker: SecuredBroker,
    simulator: Simulator,
    tmp_path: Path,
    prefix: str,
) -> AsyncIterator[MeshAdapter]:
    """``request.param``: ("SASL" or "SASL_SSL", mechanism, password), or ("SSL", client
    certificate or None)."""
    kind, *how = request.param
    quiet_aiokafka()  # as `python -m adapter` does before it starts
    kafka: dict[str, Any] = {"lifecycle_timeout_seconds": 5, "request_timeout_seconds": 5}
    if kind in ("SASL", "SASL_SSL"):
        mechanism, password = how
        password_file = tmp_path / "kafka-password"
        password_file.write_text(password + "\n")
        kafka |= {
            "sasl_mechanism": mechanism,
            "sasl_username": USER,
            "sasl_password_file": str(password_file),
        }
        if kind == "SASL":
            kafka |= {"bootstrap_servers": secured_broker.sasl, "security_protocol": "SASL_PLAINTEXT"}
        else:  # a managed cluster's usual: the broker's certificate, then a login
            kafka |= {
                "bootstrap_servers": secured_broker.sasl_tls,
                "security_protocol": "SASL_SSL",
                "ssl_cafile": str(secured_broker.pki.ca),
            }
    else:
        (client,) = how
        pki = secured_broker.pki
        kafka |= {
            "bootstrap_servers": secured_broker.tls,
            "security_protocol": "SSL",
            "ssl_cafile": str(pki.ca),
        }
        if client is not None:  # copied: a test may rotate them
            _use_client_certificate(pki, client, tmp_path)
            kafka |= {
                "ssl_certfile": str(tmp_path / "client.pem"),
                "ssl_keyfile": str(tmp_path / "client-key.pem"),
            }
    adapter = MeshAdapter(mesh_settings(simulator, tmp_path, prefix, kafka=kafka))
    await adapter.start()
    assert adapter.events is not None
    await asyncio.wait_for(adapter.events.sources["openframe"].streaming.wait(), 10)
    try:
        yield adapter
    finally:
        await adapter.stop(0)
        if kind != "SASL":
            await _end_waiting_tls_shutdowns()


@pytest.mark.parametrize(
    "secured_adapter",
    [
        ("SASL", "SCRAM-SHA-512", PASSWORD),
        ("SASL", "SCRAM-SHA-256", PASSWORD),
        ("SASL", "PLAIN", PASSWORD),
        ("SSL", "writer"),
        ("SASL_SSL", "SCRAM-SHA-512", PASSWORD),
    ],
    ids=["scram-512", "scram-256", "plain", "mutual-tls", "tls-and-scram"],
    indirect=True,
)
async def test_events_reach_a_secured_cluster_and_subscribe_reads_them(
    secured_adapter: MeshAdapter, secured_broker: SecuredBroker, simulator: Simulator, prefix: str
) -> None:
    assert secured_adapter.events is not None
    created = await simulator.generate_events("openframe", "alert", count=3)
    records = await consume_all(secured_broker.plaintext, f"{prefix}openframe.alerts", expected=3, within=30)
    assert sorted(r.key.decode() for r in records) == sorted(e["id"] for e in created)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{secured_adapter.port}") as channel:
        stream = events_pb2_grpc.EventServiceStub(channel).Subscribe(
            events_pb2.SubscribeRequest(
                topics=[f"{prefix}openframe.alerts"], start_from=events_pb2.START_FROM_EARLIEST
            ),
            timeout=30,
        )
        read = [await stream.read() for _ in range(3)]
        stream.cancel()
    assert sorted(e.key for e in read) == sorted(e["id"] for e in created)


@pytest.mark.parametrize(
    ("secured_adapter", "why"),
    [
        (("SASL", "SCRAM-SHA-512", WRONG), "SaslAuthenticationFailed"),
        (("SSL", None), "KafkaConnectionError"),
        (("SASL_SSL", "SCRAM-SHA-512", WRONG), "SaslAuthenticationFailed"),
    ],
    ids=["wrong-password", "no-client-certificate", "wrong-password-over-tls"],
    indirect=["secured_adapter"],
)
async def test_refused_credentials_deliver_nothing_and_lose_nothing(
    secured_adapter: MeshAdapter,
    why: str,
    secured_broker: SecuredBroker,
    simulator: Simulator,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert secured_adapter.events is not None
    await simulator.generate_events("openframe", "alert", count=2)
    spool = secured_adapter.events.spool
    await wait_until(lambda: spool.depth == 2, within=10, what="two events spooled")
    await asyncio.sleep(2)  # the drainer tries, and is refused
    assert spool.depth == 2
    # aiokafka says only "Unable to bootstrap"; the adapter's line says why
    unreachable = [r.getMessage() for r in caplog.records if r.name == "adapter.events.delivery"]
    assert unreachable and why in unreachable[0], unreachable
    # and aiokafka's own lines stop at its logger (pytest's capture still sees them)
    assert logging.getLogger("aiokafka").propagate is False
    assert WRONG not in caplog.text


@pytest.mark.parametrize(
    "secured_adapter", [("SASL", "SCRAM-SHA-512", WRONG)], ids=["rotated-password-file"], indirect=True
)
async def test_a_rotated_password_file_is_used_by_the_next_producer(
    secured_adapter: MeshAdapter,
    secured_broker: SecuredBroker,
    simulator: Simulator,
    prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert secured_adapter.events is not None
    created = await simulator.generate_events("openframe", "alert", count=2)
    spool = secured_adapter.events.spool
    await wait_until(lambda: spool.depth == 2, within=10, what="two events spooled")
    await asyncio.sleep(1)  # refused: the file holds a password the broker does not know
    assert spool.depth == 2
    (tmp_path / "kafka-password").write_text(PASSWORD + "\n")  # the rotation, no restart
    await wait_until(lambda: spool.depth == 0, within=30, what="the spool to drain after the rotation")
    records = await consume_all(secured_broker.plaintext, f"{prefix}openframe.alerts", expected=2, within=30)
    assert sorted(r.key.decode() for r in records) == sorted(e["id"] for e in created)
    assert PASSWORD not in caplog.text and WRONG not in caplog.text


@pytest.mark.parametrize(
    "secured_adapter", [("SSL", "untrusted")], ids=["rotated-client-certificate"], indirect=True
)
async def test_a_rotated_client_certificate_is_used_by_the_next_producer(
    secured_adapter: MeshAdapter,
    secured_broker: SecuredBroker,
    simulator: Simulator,
    prefix: str,
    tmp_path: Path,
) -> None:
    """The adapter starts with a certificate the broker does not trust (another CA);
    the certificate agent then writes one it does. No restart."""
    assert secured_adapter.events is not None
    created = await simulator.generate_events("openframe", "alert", count=2)
    spool = secured_adapter.events.spool
    await wait_until(lambda: spool.depth == 2, within=10, what="two events spooled")
    await asyncio.sleep(1)  # refused: the broker does not trust that certificate's CA
    assert spool.depth == 2
    _use_client_certificate(secured_broker.pki, "writer", tmp_path)
    await wait_until(lambda: spool.depth == 0, within=30, what="the spool to drain after the rotation")
    records = await consume_all(secured_broker.plaintext, f"{prefix}openframe.alerts", expected=2, within=30)
    assert sorted(r.key.decode() for r in records) == sorted(e["id"] for e in created)


CLIENT_ID, CLIENT_SECRET = "mesh-adapter", "oauth-client-secret-9c1d"


@dataclass
class TokenServer:
    """An OAuth2 token endpoint issuing the unsigned JWTs the dev broker accepts."""

    url: str
    requests: int = 0


@pytest_asyncio.fixture
async def token_server() -> AsyncIterator[TokenServer]:
    server = TokenServer("")

    async def token(request: web.Request) -> web.Response:
        server.requests += 1
        form = await request.post()
        if request.headers.get("Authorization") != _basic(CLIENT_ID, CLIENT_SECRET):
            return web.json_response({"error": "invalid_client"}, status=401)
        assert form.get("grant_type") == "client_credentials"
        now = int(time.time())
        claims = {"sub": CLIENT_ID, "iat": now, "exp": now + 300}
        answer = {"access_token": unsigned(claims), "token_type": "Bearer", "expires_in": 300}
        return web.json_response(answer)

    app = web.Application()
    app.router.add_post("/token", token)
    async with serving(app) as base:
        server.url = f"{base}/token"
        yield server


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("secret", "delivered"), [(CLIENT_SECRET, True), ("wrong", False)], ids=["ok", "refused"]
)
async def test_oauthbearer_tokens_come_from_the_token_endpoint(
    secret: str,
    delivered: bool,
    token_server: TokenServer,
    secured_broker: SecuredBroker,
    simulator: Simulator,
    tmp_path: Path,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SASL/OAUTHBEARER: every Kafka client logs in with one client-credentials token
    (asked for once, not per connection); a refused client delivers nothing, loses
    nothing, and the line says the token endpoint refused it."""
    quiet_aiokafka()
    secret_file = tmp_path / "oauth-secret"
    secret_file.write_text(secret + "\n")
    kafka = {
        "lifecycle_timeout_seconds": 5,
        "request_timeout_seconds": 5,
        "bootstrap_servers": secured_broker.sasl,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "OAUTHBEARER",
        "sasl_oauth_token_url": token_server.url,
        "sasl_oauth_client_id": CLIENT_ID,
        "sasl_oauth_client_secret_file": str(secret_file),
    }
    adapter = MeshAdapter(mesh_settings(simulator, tmp_path, prefix, kafka=kafka))
    await adapter.start()
    try:
        assert adapter.events is not None
        await asyncio.wait_for(adapter.events.sources["openframe"].streaming.wait(), 10)
        created = await simulator.generate_events("openframe", "alert", count=2)
        spool = adapter.events.spool
        if delivered:
            records = await consume_all(
                secured_broker.plaintext, f"{prefix}openframe.alerts", expected=2, within=30
            )
            assert sorted(r.key.decode() for r in records) == sorted(e["id"] for e in created)
            assert token_server.requests == 1  # one token for the admin, the producer, every connection
        else:
            await wait_until(lambda: spool.depth == 2, within=10, what="two events spooled")
            await asyncio.sleep(2)  # the drainer tries, and is refused
            assert spool.depth == 2
            lines = [r.getMessage() for r in caplog.records if r.name == "adapter.events.delivery"]
            assert lines and "no OAUTHBEARER token" in lines[0] and "invalid_client" in lines[0], lines
            # a refusal is held (5 s), not asked again for every connection attempt
            assert token_server.requests <= 2, token_server.requests
        assert secret not in caplog.text
    finally:
        await adapter.stop(0)


def test_the_settings_refuse_what_cannot_connect(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="needs sasl_username"):
        KafkaSettings(security_protocol="SASL_SSL", sasl_password="p")
    with pytest.raises(ValidationError, match="needs sasl_password or sasl_password_file"):
        KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_username="u")
    with pytest.raises(ValidationError, match="ssl_\\* files need security_protocol SSL or SASL_SSL"):
        KafkaSettings(ssl_cafile=tmp_path / "ca.pem")
    with pytest.raises(ValidationError, match="ssl_certfile and ssl_keyfile go together"):
        KafkaSettings(security_protocol="SSL", ssl_certfile=tmp_path / "c.pem")
    oauth: dict[str, Any] = {"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"}
    with pytest.raises(ValidationError, match="needs sasl_oauth_token_url and sasl_oauth_client_id"):
        KafkaSettings(**oauth, sasl_oauth_client_id="c", sasl_oauth_client_secret="s")
    oauth |= {"sasl_oauth_token_url": "https://idp/token", "sasl_oauth_client_id": "c"}
    with pytest.raises(ValidationError, match="needs sasl_oauth_client_secret or sasl_oauth_client_se"):
        KafkaSettings(**oauth)
    KafkaSettings(**oauth, sasl_oauth_client_secret="s")  # no username or password: the token logs in
    oauth["sasl_oauth_client_secret"] = "s"
    KafkaSettings(**oauth | {"sasl_oauth_token_url": "http://127.0.0.1:8080/token"})
    for url in ("http://idp.example/token", "ftp://idp/token", "idp/token"):
        with pytest.raises(ValidationError, match=r"must be https:// \(http:// only on a loopback address\)"):
            KafkaSettings(**oauth | {"sasl_oauth_token_url": url})


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
