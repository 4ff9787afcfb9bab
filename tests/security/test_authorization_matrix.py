"""The authorization matrix: every RPC the server registers (read from the
descriptors, health and reflection included) x every kind of caller, over a real
mTLS port with JWTs on, against the expected status. The simulator's request log
proves that no refused call reached a vendor, and the gate's own counter that no
allowed call was refused.

Callers: no certificate and a certificate from an unknown CA (refused in the TLS
handshake: UNAVAILABLE, the call never exists), an expired JWT, a JWT for
another audience, an ``alg: none`` token, an algorithm that does not fit the key
its header names (UNAUTHENTICATED), and the reader,
writer and outsider certificates of scripts/dev_certs.py plus a valid JWT reader
(PERMISSION_DENIED unless the policy grants the permission).
"""

from __future__ import annotations

import base64
import collections
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from meshadapter.v1 import events_pb2

from adapter.descriptors.permissions import (
    HEALTH_SERVICE,
    REFLECTION_PERMISSION,
    REFLECTION_SERVICES,
    served_permissions,
    topic_permission,
)
from adapter.runtime import MeshAdapter
from simulator import Simulator
from tests.conftest import adapter_settings
from tests.events.kafka_fixtures import BOOTSTRAP, delete_topics_with_prefix

from .jwt_helpers import AUDIENCE, ISSUER, Issuer, unsigned
from .pki import Pki

pytest_plugins = ["tests.events.kafka_fixtures"]
pytestmark = [pytest.mark.kafka, pytest.mark.usefixtures("kafka_bootstrap")]

SPIFFE = "spiffe://mesh-adapter.dev/ns/demo/sa"
READ_GRANTS = ["openframe.*.read", "octospine.*.read", REFLECTION_PERMISSION, "events.subscribe"]


def policy(prefix: str) -> str:
    alerts = topic_permission(f"{prefix}openframe.alerts")
    readers = [f"{SPIFFE}/reader", f"{SPIFFE}/writer", "jwt:reader"]
    return (
        f"[[grants]]\nprincipals = {readers!r}\npermissions = {[*READ_GRANTS, alerts]!r}\n\n"
        f"[[grants]]\nprincipals = [{f'{SPIFFE}/writer'!r}]\npermissions = ['openframe.alerts.write']\n"
    ).replace("'", '"')


# -- the oracle: plain rules, independent of the policy engine ---------------------------


def reader_may(permission: str, prefix: str) -> bool:
    return (
        permission.endswith(".read")
        or permission == "events.subscribe"
        or permission == topic_permission(f"{prefix}openframe.alerts")
    )


def writer_may(permission: str, prefix: str) -> bool:
    return reader_may(permission, prefix) or permission == "openframe.alerts.write"


ALLOWED = "ALLOWED"  # passes the gate; the handler's own answer follows
Expectation = Callable[[Sequence[str], str], str]


@dataclass(frozen=True)
class Caller:
    name: str
    certificate: str | None
    token: Callable[[Issuer], str] | None
    expect: Expectation


def by_grants(may: Callable[[str, str], bool]) -> Expectation:
    def expect(needed: Sequence[str], prefix: str) -> str:
        if not needed:
            return "OK"  # health
        return ALLOWED if all(may(p, prefix) for p in needed) else "PERMISSION_DENIED"

    return expect


def always(code: str, *, health: str) -> Expectation:
    """``code`` for every call; ``health`` for health, which is public (only the
    transport stands in front of it)."""
    return lambda needed, prefix: code if needed else health


def _claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "reader", "iat": now, "exp": now + 300, **extra}


def _es256_header_on(token: str) -> str:
    _, claims, signature = token.split(".")
    header = base64.urlsafe_b64encode(b'{"alg":"ES256","kid":"rsa-1"}').rstrip(b"=").decode()
    return f"{header}.{claims}.{signature}"


CALLERS = [
    Caller("none", None, None, always("UNAVAILABLE", health="UNAVAILABLE")),
    Caller("untrusted cert", "untrusted", None, always("UNAVAILABLE", health="UNAVAILABLE")),
    Caller(
        "expired JWT",
        "outsider",
        lambda i: i.token("reader", exp=int(time.time()) - 120),
        always("UNAUTHENTICATED", health="OK"),
    ),
    Caller(
        "wrong audience",
        "outsider",
        lambda i: i.token("reader", aud="another"),
        always("UNAUTHENTICATED", health="OK"),
    ),
    Caller("alg none", "outsider", lambda i: unsigned(_claims()), always("UNAUTHENTICATED", health="OK")),
    # ES256 naming the RSA key (PyJWT raised a bare TypeError for it: the call ended UNKNOWN).
    Caller(
        "alg unfit for its key",
        "outsider",
        lambda i: _es256_header_on(i.token("reader")),
        always("UNAUTHENTICATED", health="OK"),
    ),
    Caller("reader", "reader", None, by_grants(reader_may)),
    Caller("writer", "writer", None, by_grants(writer_may)),
    Caller("outsider", "outsider", None, by_grants(lambda p, prefix: False)),
    Caller("JWT reader", "outsider", lambda i: i.token("reader"), by_grants(reader_may)),
]


@dataclass(frozen=True)
class Row:
    label: str
    path: str
    kind: str  # unary, server_stream, bidi
    request: Message
    needed: tuple[str, ...]


def rows(adapter: MeshAdapter, prefix: str) -> list[Row]:
    """One row per method of every service the server registers (from the descriptors);
    Subscribe twice: one topic, and all topics."""
    assert adapter.server is not None
    names = [*adapter.server.service_names, HEALTH_SERVICE, REFLECTION_SERVICES[0]]
    permissions = served_permissions(names)
    pool = descriptor_pool.Default()
    out: list[Row] = []
    for name in names:
        service = pool.FindServiceByName(name)
        for method in service.methods:
            path = f"/{name}/{method.name}"
            request = message_factory.GetMessageClass(method.input_type)()
            kind = (
                "bidi" if method.client_streaming else "server_stream" if method.server_streaming else "unary"
            )
            needed = (permissions[path],) if path in permissions else ()
            if name == REFLECTION_SERVICES[0]:
                request = reflection_pb2.ServerReflectionRequest(list_services="")
            if name == HEALTH_SERVICE:
                request = health_pb2.HealthCheckRequest(service="")
            if path == "/meshadapter.v1.EventService/Subscribe":
                alerts = f"{prefix}openframe.alerts"
                out.append(
                    Row(
                        "Subscribe(alerts)",
                        path,
                        kind,
                        events_pb2.SubscribeRequest(topics=[alerts]),
                        (*needed, topic_permission(alerts)),
                    )
                )
                served = adapter.events.subscriptions.topics  # type: ignore[union-attr]
                request = events_pb2.SubscribeRequest()
                needed = (*needed, *(topic_permission(t) for t in served))
                out.append(Row("Subscribe(all)", path, kind, request, needed))
                continue
            out.append(Row(f"{service.name}/{method.name}", path, kind, request, needed))
    return out


async def call(channel: grpc.aio.Channel, row: Row, metadata: tuple[tuple[str, str], ...]) -> str:
    serialize, raw = (lambda m: m.SerializeToString()), (lambda b: b)
    try:
        if row.kind == "unary":
            await channel.unary_unary(row.path, request_serializer=serialize, response_deserializer=raw)(
                row.request, metadata=metadata, timeout=10
            )
        elif row.kind == "server_stream":
            stream = channel.unary_stream(row.path, request_serializer=serialize, response_deserializer=raw)(
                row.request, metadata=metadata, timeout=2
            )
            async for _ in stream:
                break
            stream.cancel()
        else:
            # The gate answers a streaming call first (refused, or admitted with its
            # initial metadata), so nothing is written to a call it refused: grpc.aio
            # reports a write that lost that race as INTERNAL ("Failed execute_batch"),
            # hiding the server's status.
            bidi = channel.stream_stream(row.path, request_serializer=serialize, response_deserializer=raw)(
                metadata=metadata, timeout=10
            )
            await bidi.initial_metadata()
            if bidi.done():
                code = await bidi.code()
                return "OK" if code is grpc.StatusCode.OK else code.name
            await bidi.write(row.request)
            await bidi.done_writing()
            async for _ in bidi:
                break
            bidi.cancel()
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    return "OK"


@pytest_asyncio.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"t{uuid.uuid4().hex[:8]}."
    yield name
    await delete_topics_with_prefix(BOOTSTRAP, name)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "certs")


@pytest_asyncio.fixture
async def secure_mesh(
    simulator: Simulator, tmp_path: Path, prefix: str, pki: Pki, issuer: Issuer
) -> AsyncIterator[MeshAdapter]:
    (tmp_path / "policy.toml").write_text(policy(prefix))
    settings = adapter_settings(
        simulator,
        events={
            "kafka": {"bootstrap_servers": BOOTSTRAP},
            "spool": {"path": str(tmp_path / "spool" / "events.db")},
            "topic_prefix": prefix,
            # No background vendor traffic: every simulator request is an RPC's.
            "websockets": {"openframe": {"enabled": False}, "octospine": {"enabled": False}},
            "webhook": {"enabled": False},
        },
        security={
            "tls": pki.tls_settings(),
            "policy_file": tmp_path / "policy.toml",
            "jwt": {
                "jwks_file": issuer.write(tmp_path / "jwks.json"),
                "issuer": ISSUER,
                "audiences": [AUDIENCE],
            },
        },
    )
    adapter = MeshAdapter(settings)
    await adapter.start()
    try:
        yield adapter
    finally:
        await adapter.stop(0)


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


@pytest.mark.timeout(300)
async def test_every_rpc_for_every_caller(
    secure_mesh: MeshAdapter, simulator: Simulator, pki: Pki, issuer: Issuer, prefix: str
) -> None:
    assert secure_mesh.security is not None and secure_mesh.security.authorizer is not None
    gate = secure_mesh.security.authorizer
    table = rows(secure_mesh, prefix)
    assert len({r.path for r in table}) >= 40  # every RPC of both vendors, events, health, reflection
    counts: dict[str, collections.Counter[str]] = {}
    wrong: list[str] = []
    leaked: list[str] = []
    for caller in CALLERS:
        metadata = (("authorization", f"Bearer {caller.token(issuer)}"),) if caller.token else ()
        got: collections.Counter[str] = collections.Counter()
        async with pki.channel(secure_mesh.port, caller.certificate) as channel:
            for row in table:
                expected = caller.expect(row.needed, prefix)
                vendor_before, refused_before = len(simulator.requests), sum(gate.refused.values())
                code = await call(channel, row, metadata)
                got[code] += 1
                refused_by_gate = sum(gate.refused.values()) - refused_before
                if expected == ALLOWED:
                    if refused_by_gate or code in ("UNAUTHENTICATED", "PERMISSION_DENIED", "UNAVAILABLE"):
                        wrong.append(f"{caller.name} {row.label}: allowed, got {code}")
                elif code != expected:
                    wrong.append(f"{caller.name} {row.label}: expected {expected}, got {code}")
                if expected not in (ALLOWED, "OK") and len(simulator.requests) != vendor_before:
                    leaked.append(f"{caller.name} {row.label}")
        counts[caller.name] = got
    total: collections.Counter[str] = collections.Counter()
    print(f"\nauthorization matrix: {len(table)} calls x {len(CALLERS)} callers")
    for name, got in counts.items():
        total.update(got)
        print(f"  {name:15} " + ", ".join(f"{code} {n}" for code, n in sorted(got.items())))
    print("  total           " + ", ".join(f"{code} {n}" for code, n in sorted(total.items())))
    assert not wrong, "\n".join(wrong)
    assert not leaked, "refused calls reached the vendor: " + ", ".join(leaked)
    # The refusals the gate made are exactly the UNAUTHENTICATED and PERMISSION_DENIED answers.
    assert sum(gate.refused.values()) == total["UNAUTHENTICATED"] + total["PERMISSION_DENIED"]
    assert counts["writer"]["PERMISSION_DENIED"] < counts["reader"]["PERMISSION_DENIED"]
