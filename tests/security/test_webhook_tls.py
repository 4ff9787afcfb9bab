"""The webhook receiver over HTTPS, with a certificate that rotates without a
restart (vendors keep delivering across the rotation)."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import httpx

from adapter.config.settings import TlsSettings, WebhookSettings
from adapter.events.intake import EventIntake
from adapter.events.spool import EventSpool
from adapter.events.webhook_receiver import WebhookReceiver
from scripts.dev_certs import issue, make_ca, pem, write_pair
from tests.events.encoder_fixtures import default_encoder
from tests.events.test_webhook_receiver import _endpoint, body, sign

from .pki import Pki


def client(roots: bytes) -> httpx.AsyncClient:
    context = ssl.create_default_context(cadata=roots.decode())
    return httpx.AsyncClient(verify=context, trust_env=False, timeout=5)


async def test_webhooks_over_tls_across_a_certificate_rotation(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "certs")
    certs = pki.dir
    spool = EventSpool(tmp_path / "spool.db", max_records=100)
    await spool.start()
    encoder = default_encoder()
    tls = TlsSettings(cert_file=certs / "server.pem", key_file=certs / "server-key.pem", client_auth="none")
    receiver = WebhookReceiver(
        WebhookSettings(port=0, tls=tls), [_endpoint()], intake=EventIntake(encoder, spool)
    )
    await receiver.start()
    url = f"https://localhost:{receiver.port}/webhooks/octospine"
    new_ca, new_ca_key = make_ca()
    both = pki.ca.read_bytes() + pem(new_ca)
    try:
        async with client(both) as vendor:
            raw = body("whd_tls_1")
            first = await vendor.post(url, content=raw, headers=sign(raw))
            assert (first.status_code, first.json()["status"]) == (200, "accepted")
            async with httpx.AsyncClient(trust_env=False) as plain:
                try:
                    answer = await plain.post(url.replace("https", "http"), content=raw, headers=sign(raw))
                    assert answer.status_code == 400  # aiohttp's answer to plain HTTP on a TLS port
                except httpx.HTTPError:
                    pass  # or the connection is dropped: either way nothing is accepted

            (certs / "next").mkdir()
            write_pair(certs / "next", "server", *issue(new_ca, new_ca_key, "mesh-adapter", server=True))
            (certs / "next" / "server-key.pem").replace(certs / "server-key.pem")
            (certs / "next" / "server.pem").replace(certs / "server.pem")

            deliveries, refused = 1, 0
            deadline = time.monotonic() + 15
            while True:  # the vendor keeps delivering; a client trusting only the new CA probes
                raw = body(f"whd_tls_{deliveries + 1}", task=f"tsk_{deliveries + 1:04}")
                answer = await vendor.post(url, content=raw, headers=sign(raw))
                assert answer.status_code == 200
                deliveries += 1
                try:
                    async with client(pem(new_ca)) as probe:
                        raw = body(f"whd_probe_{refused}", task="tsk_probe")
                        if (await probe.post(url, content=raw, headers=sign(raw))).status_code == 200:
                            break
                except httpx.ConnectError:
                    refused += 1
                assert time.monotonic() < deadline, "the rotated certificate was never served"
                await asyncio.sleep(0.1)
        print(
            f"\nwebhook TLS rotation: {deliveries} deliveries accepted; "
            f"the new certificate served after {refused} refused probes"
        )
        assert len(await spool.pending(1000)) == deliveries + 1  # + the probe's; each one spooled
    finally:
        await receiver.stop()
        await spool.stop()
