"""Rotation without a restart, under traffic: the server certificate and client CA
of the mTLS port, and the JWKS (file and URL). Every call of the traffic must
succeed across the rotation; a probe proves the new material is in use."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import web
from openframe.v1 import devices_pb2, devices_pb2_grpc

from adapter.runtime import MeshAdapter
from scripts.dev_certs import issue, make_ca, pem, write_pair
from simulator import Simulator
from tests.conftest import adapter_settings

from .jwt_helpers import AUDIENCE, ISSUER, Issuer
from .pki import Pki

SPIFFE = "spiffe://mesh-adapter.dev/ns/demo/sa"
POLICY = f"""
[[grants]]
principals = ["{SPIFFE}/reader", "jwt:svc-a"]
permissions = ["openframe.devices.read"]
"""
WORKERS = 3


class Traffic:
    """``WORKERS`` loops of ListDevices; each call's outcome counted."""

    def __init__(self, call: Callable[[int], Awaitable[None]]) -> None:
        self._call = call
        self.ok = 0
        self.failures: list[str] = []
        self._stop = asyncio.Event()
        self._tasks = [asyncio.create_task(self._run(n)) for n in range(WORKERS)]

    async def _run(self, worker: int) -> None:
        while not self._stop.is_set():
            try:
                await self._call(worker)
                self.ok += 1
            except grpc.aio.AioRpcError as exc:
                self.failures.append(f"{exc.code().name}: {exc.details()}")

    async def more(self, calls: int, *, within: float = 30.0) -> None:
        """Waits until ``calls`` more calls succeeded (or any failed)."""
        target = self.ok + calls
        deadline = time.monotonic() + within
        while self.ok < target and not self.failures:
            assert time.monotonic() < deadline, f"traffic stalled at {self.ok} calls"
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


async def eventually(probe: Callable[[], Awaitable[bool]], *, within: float, what: str) -> float:
    """Seconds until ``probe()`` is true; fails after ``within``."""
    start = time.monotonic()
    while not await probe():
        assert time.monotonic() - start < within, f"waited {within}s for {what}"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    return path


def replace(path: Path, data: bytes) -> None:
    """Writes ``data`` the way rotation agents do: a new file renamed over the old."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    tmp.replace(path)


@pytest.mark.timeout(120)
async def test_server_certificate_and_client_ca_rotate_under_traffic(
    simulator: Simulator, tmp_path: Path
) -> None:
    pki = Pki(tmp_path / "certs")
    client_ca = tmp_path / "certs" / "client-ca.pem"
    client_ca.write_bytes(pki.ca.read_bytes())
    new_ca, new_ca_key = make_ca()
    # Clients trust both CAs during the rotation (as a mesh distributes a bundle).
    bundle = pki.ca.read_bytes() + pem(new_ca)
    settings = adapter_settings(
        simulator,
        security={
            "tls": pki.tls_settings(client_ca_file=client_ca),
            "policy_file": policy_file(tmp_path),
            "reload_interval_seconds": 0.1,
        },
    )
    certs = tmp_path / "certs"
    new_reader = issue(new_ca, new_ca_key, "reader", server=False, uri=f"{SPIFFE}/reader")
    write_pair(certs, "new-reader", *new_reader)

    def channel(port: int, *, roots: bytes, client: str) -> grpc.aio.Channel:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=roots,
            private_key=(certs / f"{client}-key.pem").read_bytes(),
            certificate_chain=(certs / f"{client}.pem").read_bytes(),
        )
        return grpc.aio.secure_channel(
            f"127.0.0.1:{port}", credentials, options=[("grpc.ssl_target_name_override", "localhost")]
        )

    async with MeshAdapter(settings) as adapter:

        async def call(worker: int) -> None:
            # A new connection (a new handshake) every few calls, so the traffic
            # meets the rotated certificate, not only connections made before it.
            async with channel(adapter.port, roots=bundle, client="reader") as ch:
                stub = devices_pb2_grpc.DeviceServiceStub(ch)
                for _ in range(3):
                    await stub.ListDevices(devices_pb2.ListDevicesRequest(), timeout=10)

        async def new_material_in_use() -> bool:
            # Trusts only the new CA and presents a certificate of the new CA: it
            # succeeds once both the server certificate and the client CA rotated.
            async with channel(adapter.port, roots=pem(new_ca), client="new-reader") as ch:
                try:
                    await devices_pb2_grpc.DeviceServiceStub(ch).ListDevices(
                        devices_pb2.ListDevicesRequest(), timeout=5
                    )
                except grpc.aio.AioRpcError:
                    return False
                return True

        traffic = Traffic(call)
        try:
            await traffic.more(30)
            assert not await new_material_in_use()
            server, server_key = issue(new_ca, new_ca_key, "mesh-adapter", server=True)
            (certs / "staging").mkdir()
            write_pair(certs / "staging", "server", server, server_key)
            # Key, then certificate: a check between the two sees a mismatched pair,
            # which is refused (the previous pair stays in use) until the second lands.
            replace(certs / "server-key.pem", (certs / "staging" / "server-key.pem").read_bytes())
            replace(certs / "server.pem", (certs / "staging" / "server.pem").read_bytes())
            replace(client_ca, pki.ca.read_bytes() + pem(new_ca))
            took = await eventually(new_material_in_use, within=20, what="the rotated certificate")
            await traffic.more(30)
        finally:
            await traffic.stop()
    print(
        f"\ncertificate rotation: {traffic.ok} calls, {len(traffic.failures)} failed; "
        f"new certificate and client CA in use after {took:.2f}s"
    )
    assert traffic.failures == []


async def _jwks_server(issuer: Issuer) -> tuple[web.AppRunner, str]:
    async def jwks(request: web.Request) -> web.Response:
        return web.json_response(issuer.jwks())

    app = web.Application()
    app.router.add_get("/jwks.json", jwks)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/jwks.json"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("source", ["file", "url"])
async def test_jwks_rotates_under_traffic(simulator: Simulator, tmp_path: Path, source: str) -> None:
    issuer = Issuer()
    jwks_file = issuer.write(tmp_path / "jwks.json")
    runner, url = await _jwks_server(issuer)
    where: dict[str, Any] = (
        {"jwks_file": jwks_file} if source == "file" else {"jwks_url": url, "jwks_cache_seconds": 0.2}
    )
    settings = adapter_settings(
        simulator,
        security={
            "policy_file": policy_file(tmp_path),
            "jwt": {**where, "issuer": ISSUER, "audiences": [AUDIENCE]},
            "reload_interval_seconds": 0.1,
        },
    )
    signing = {"kid": "rsa-1"}
    used: collections.Counter[str] = collections.Counter()
    last_kid: dict[int, str] = {}

    def bearer(kid: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {issuer.token('svc-a', kid=kid)}"),)

    try:
        async with (
            MeshAdapter(settings) as adapter,
            grpc.aio.insecure_channel(f"127.0.0.1:{adapter.port}") as ch,
        ):
            stub = devices_pb2_grpc.DeviceServiceStub(ch)

            async def call(worker: int) -> None:
                kid = signing["kid"]
                await stub.ListDevices(devices_pb2.ListDevicesRequest(), metadata=bearer(kid), timeout=10)
                used[kid] += 1
                last_kid[worker] = kid

            async def accepted(metadata: tuple[tuple[str, str], ...]) -> bool:
                try:
                    await stub.ListDevices(devices_pb2.ListDevicesRequest(), metadata=metadata, timeout=5)
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
                    return False
                return True

            traffic = Traffic(call)
            try:
                await traffic.more(30)
                # 1. the IdP publishes the next key beside the current one...
                issuer.add_key("rsa-2")
                issuer.write(jwks_file)
                published = await eventually(
                    lambda: accepted(bearer("rsa-2")), within=20, what="the new key to be accepted"
                )
                # 2. ...signs with it...
                signing["kid"] = "rsa-2"
                await eventually(
                    _async(lambda: all(last_kid.get(w) == "rsa-2" for w in range(WORKERS))),
                    within=20,
                    what="every worker to use the new key",
                )
                # 3. ...and retires the old one, whose tokens are then refused.
                old = bearer("rsa-1")
                del issuer.keys["rsa-1"]
                issuer.write(jwks_file)
                retired = await eventually(
                    _async_not(lambda: accepted(old)), within=20, what="the old key to be refused"
                )
                await traffic.more(30)
            finally:
                await traffic.stop()
    finally:
        await runner.cleanup()
    print(
        f"\nJWKS rotation ({source}): {traffic.ok} calls ({dict(used)}), {len(traffic.failures)} failed; "
        f"new key accepted after {published:.2f}s, old refused after {retired:.2f}s"
    )
    assert traffic.failures == []
    assert used["rsa-1"] and used["rsa-2"]


def _async(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return predicate()

    return probe


def _async_not(probe: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[bool]]:
    async def negated() -> bool:
        return not await probe()

    return negated
