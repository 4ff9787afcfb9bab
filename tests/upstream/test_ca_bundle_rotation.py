"""A rotated ``ca_bundle`` reaches the upstream's new connections without a restart
(h1 and aiohttp; httpx reads it once), and a new version that does not load keeps
the last good one. Real TLS servers on 127.0.0.1, certificates of two CAs."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from adapter.config.settings import UpstreamSettings
from adapter.upstream.errors import UpstreamConnectError
from adapter.upstream.transport import CA_BUNDLE_RELOAD_SECONDS, UpstreamTransport, build_transport
from tests.security.pki import Pki
from tests.upstream.test_transport_h1 import ScriptedServer, ok

pytestmark = pytest.mark.timeout(60)


def replace(path: Path, data: bytes) -> None:
    """As a mounted secret rotates: a new file renamed over the old one."""
    staging = path.with_suffix(".new")
    staging.write_bytes(data)
    staging.replace(path)


@pytest_asyncio.fixture
async def servers(tmp_path: Path) -> AsyncIterator[dict[str, tuple[Pki, str]]]:
    """A TLS server with a certificate of CA "a", another with one of CA "b"."""
    running, out = [], {}
    for name in ("a", "b"):
        pki = Pki(tmp_path / name)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pki.dir / "server.pem", pki.dir / "server-key.pem")
        script = ScriptedServer(lambda _r, name=name: ok(b'{"ca":"%s"}' % name.encode()))  # type: ignore[misc]
        server = await asyncio.start_server(script.handle, "127.0.0.1", 0, ssl=context)
        running.append(server)
        out[name] = (pki, f"https://localhost:{server.sockets[0].getsockname()[1]}/v1/x")
    yield out
    for server in running:
        server.close()
        await server.wait_closed()


async def get(client: UpstreamTransport, url: str) -> bytes:
    headers = [("Accept", "application/json")]
    answer = await client.exchange(
        "GET", url, headers, None, max_bytes=1 << 20, upstream="vendor", route="GET /v1/x"
    )
    return answer.body


async def fails(client: UpstreamTransport, url: str) -> str:
    with pytest.raises(UpstreamConnectError) as refused:
        await get(client, url)
    return str(refused.value)


@pytest.mark.parametrize("transport", ["h1", "aiohttp"])
async def test_a_rotated_ca_bundle_reaches_new_connections(
    transport: str, servers: dict[str, tuple[Pki, str]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (pki_a, url_a), (pki_b, url_b) = servers["a"], servers["b"]
    bundle = tmp_path / "vendor-ca.pem"
    bundle.write_bytes(pki_a.ca.read_bytes())
    auth = {"type": "api_key", "api_key": "k"}
    settings = UpstreamSettings(
        base_url="https://localhost", auth=auth, ca_bundle=bundle, transport=transport
    )  # type: ignore[arg-type]
    client = build_transport(settings)
    try:
        assert await get(client, url_a) == b'{"ca":"a"}'
        assert "CERTIFICATE_VERIFY_FAILED" in await fails(client, url_b)

        # A broken new version: the last good bundle stays, and the log says so.
        replace(bundle, b"-----BEGIN CERTIFICATE-----\nnot a certificate\n")
        await asyncio.sleep(CA_BUNDLE_RELOAD_SECONDS + 0.5)
        with caplog.at_level(logging.ERROR, logger="adapter.security.reloading"):
            assert "CERTIFICATE_VERIFY_FAILED" in await fails(client, url_b)
        assert "keeping the last good version" in caplog.text
        assert await get(client, url_a) == b'{"ca":"a"}'

        # The vendor's new CA: trusted by the next connection, the old one no longer.
        replace(bundle, pki_b.ca.read_bytes())
        await asyncio.sleep(CA_BUNDLE_RELOAD_SECONDS + 0.5)
        assert await get(client, url_b) == b'{"ca":"b"}'
        if transport == "h1":  # aiohttp keys its pool by the TLS context: a new one connects anew
            assert await get(client, url_a) == b'{"ca":"a"}'  # still the kept-alive connection
    finally:
        await client.aclose()
