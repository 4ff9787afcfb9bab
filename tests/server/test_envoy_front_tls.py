"""Mutual TLS through the envoy front: Envoy ends TLS and hands the caller's verified
certificate on in ``x-forwarded-client-cert``; the authorization gate decides on it,
both for the calls the front answers and for those routed to grpc.aio (reflection
here). A caller cannot forge that header, and a rotated server certificate reaches
new connections without a restart."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from openframe.v1 import devices_pb2, devices_pb2_grpc

from scripts.dev_certs import TRUST_DOMAIN
from simulator import Simulator

from ..adapter_process import against, listen_port, log_tail, spawn, terminate
from ..security.pki import Pki
from .hostile import silent_connection_closed_within

pytest.importorskip("pyvoy", reason="the envoy extra (make venv installs it)")

pytestmark = pytest.mark.timeout(120)

POLICY = f"""
[[grants]]
principals = ["{TRUST_DOMAIN}/reader"]
permissions = ["openframe.devices.read", "meshadapter.reflection.read"]
"""


class Front:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path, pki: Pki) -> None:
        self.process, self.port, self.log, self.pki = process, port, log, pki

    def channel(self, client: str | None) -> grpc.Channel:
        return grpc.secure_channel(
            f"127.0.0.1:{self.port}",
            self.pki.channel_credentials(client),
            options=[("grpc.ssl_target_name_override", "localhost")],
        )


def _tls_environment(
    simulator: Simulator, port: int, pki: Pki, policy: Path, **changes: str
) -> dict[str, str]:
    """``python -m adapter`` with mutual TLS from ``pki`` and ``policy``, on ``port``."""
    return against(
        simulator,
        port,
        MESH_WORKERS="1",
        MESH_SECURITY__POLICY_FILE=str(policy),
        MESH_SECURITY__TLS__CERT_FILE=str(pki.dir / "server.pem"),
        MESH_SECURITY__TLS__KEY_FILE=str(pki.dir / "server-key.pem"),
        MESH_SECURITY__TLS__CLIENT_CA_FILE=str(pki.ca),
        **changes,
    )


@pytest_asyncio.fixture
async def front(simulator: Simulator, tmp_path: Path) -> AsyncIterator[Front]:
    pki = Pki(tmp_path / "pki")
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    port = listen_port()
    env = _tls_environment(
        simulator,
        port,
        pki,
        policy,
        MESH_GRPC__FRONT="envoy",
        MESH_GRPC__DRAIN_SECONDS="0",
        MESH_GRPC__REFLECTION="true",
    )
    log = tmp_path / "adapter.log"
    process = spawn(env, log)
    try:
        deadline = time.monotonic() + 30
        while "serving gRPC behind Envoy" not in log.read_text():
            assert process.poll() is None, log_tail(log)
            assert time.monotonic() < deadline, log_tail(log)
            await asyncio.sleep(0.1)
        yield Front(process, port, log, pki)
    finally:
        terminate(process)


def _list(front: Front, client: str | None, metadata: tuple[tuple[str, str], ...] = ()) -> str:
    with front.channel(client) as channel:
        try:
            devices_pb2_grpc.DeviceServiceStub(channel).ListDevices(
                devices_pb2.ListDevicesRequest(page_size=1), timeout=10, metadata=metadata
            )
        except grpc.RpcError as exc:
            rpc: Any = exc
            return f"{rpc.code().name}: {rpc.details()}"
    return "OK"


def _reflect(front: Front, client: str) -> str:
    with front.channel(client) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        try:
            answers = stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
            )
            services = [s.name for s in next(iter(answers)).list_services_response.service]
        except grpc.RpcError as exc:
            rpc: Any = exc
            return f"{rpc.code().name}: {rpc.details()}"
    return "OK" if "openframe.v1.DeviceService" in services else f"listed {services}"


async def test_the_gate_decides_on_the_certificate_envoy_verified(front: Front) -> None:
    assert await asyncio.to_thread(_list, front, "reader") == "OK"
    refused = await asyncio.to_thread(_list, front, "outsider")
    assert refused == f"PERMISSION_DENIED: {TRUST_DOMAIN}/outsider lacks permission openframe.devices.read"
    # routed to grpc.aio behind Envoy: the same certificate decides there
    assert await asyncio.to_thread(_reflect, front, "reader") == "OK"
    assert (await asyncio.to_thread(_reflect, front, "outsider")).startswith("PERMISSION_DENIED")


async def test_a_caller_cannot_forge_the_forwarded_certificate(front: Front) -> None:
    """The outsider sends the reader's certificate in the header Envoy would write:
    Envoy drops it and writes the outsider's own."""
    reader = (front.pki.dir / "reader.pem").read_text()
    forged = (("x-forwarded-client-cert", f'Hash=0;Cert="{quote(reader, safe="")}"'),)
    refused = await asyncio.to_thread(_list, front, "outsider", forged)
    assert refused.startswith(f"PERMISSION_DENIED: {TRUST_DOMAIN}/outsider lacks"), refused
    assert (await asyncio.to_thread(_list, front, "reader", forged)) == "OK"


async def test_without_a_trusted_certificate_the_handshake_fails(front: Front) -> None:
    for client in (None, "untrusted"):
        outcome = await asyncio.to_thread(_list, front, client)
        assert outcome.startswith("UNAVAILABLE"), (client, outcome)
    assert "lacks permission" not in front.log.read_text()  # refused before any call


def _served_certificate(front: Front) -> bytes:
    context = ssl.create_default_context(cafile=str(front.pki.ca))
    context.load_cert_chain(front.pki.dir / "reader.pem", front.pki.dir / "reader-key.pem")
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", front.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


async def test_a_rotated_server_certificate_reaches_new_connections(front: Front) -> None:
    before = await asyncio.to_thread(_served_certificate, front)
    new = x509.load_pem_x509_certificate(front.pki.rotate_server(days=7))
    wanted = new.public_bytes(Encoding.DER)
    assert wanted != before
    deadline = time.monotonic() + 15
    while (served := await asyncio.to_thread(_served_certificate, front)) != wanted:
        assert served == before, "served neither the old nor the new certificate"
        assert time.monotonic() < deadline, "the rotated certificate was not served within 15 s"
        await asyncio.sleep(0.2)
    assert await asyncio.to_thread(_list, front, "reader") == "OK"


async def test_a_connection_that_never_finishes_its_handshake_is_closed(
    simulator: Simulator, tmp_path: Path
) -> None:
    """``security.limits.handshake_timeout_seconds`` on both fronts: Envoy has no handshake
    deadline unless given one (a silent connection was held past 200 s), grpc.aio's is
    the same setting (120 s by default)."""
    pki = Pki(tmp_path / "pki")
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    for front in ("grpcio", "envoy"):
        port = listen_port()
        handshake = {"MESH_SECURITY__LIMITS__HANDSHAKE_TIMEOUT_SECONDS": "1"}
        env = _tls_environment(simulator, port, pki, policy, MESH_GRPC__FRONT=front, **handshake)
        log = tmp_path / f"adapter-{front}.log"
        process = spawn(env, log)
        try:
            deadline = time.monotonic() + 30
            while f"on 127.0.0.1:{port}" not in log.read_text():  # either front's "serving ..." line
                assert process.poll() is None and time.monotonic() < deadline, log_tail(log)
                await asyncio.sleep(0.05)
            closed_after = await silent_connection_closed_within(port, 10)
        finally:
            terminate(process)
        assert closed_after is not None and 0.8 < closed_after < 4, (front, closed_after)
