"""The Go client over mTLS: its certificate is its identity. The adapter serves TLS
with throwaway certificates from scripts/dev_certs.py, requires client certificates
that chain to the dev CA, names the caller by its SPIFFE ID, authorizes it against
the policy and sends its calls with its tenant's vendor credentials."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adapter.config.security import TlsSettings
from simulator import Simulator
from tests.crosslang.test_crosslang import GO_BINARY, REPO, go_binary, run_json
from tests.security.tenant_harness import tenant_adapter, tenant_sim_config

pytestmark = pytest.mark.crosslang

SPIFFE = "spiffe://mesh-adapter.dev/ns/demo/sa"
POLICY: dict[str, Any] = {
    "grants": [{"principals": [f"{SPIFFE}/reader", f"{SPIFFE}/writer"], "permissions": ["*"]}],
    "tenants": [{"principals": [f"{SPIFFE}/reader"], "credentials": {"openframe": "team_a"}}],
}


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    directory = tmp_path / "certs"
    subprocess.run([sys.executable, str(REPO / "scripts" / "dev_certs.py"), str(directory)], check=True)
    return directory


async def test_go_client_is_identified_by_its_certificate(certs: Path, tmp_path: Path) -> None:
    binary = go_binary(GO_BINARY, "the Go client")
    sim = Simulator(tenant_sim_config("documented"))
    tls = TlsSettings(
        cert_file=certs / "server.pem", key_file=certs / "server-key.pem", client_ca_file=certs / "ca.pem"
    )

    async def go(port: int, *tls_flags: str) -> dict[str, Any]:
        return await run_json([binary, "--addr", f"127.0.0.1:{port}", *tls_flags, "access"], "the Go client")

    def identity(name: str) -> tuple[str, ...]:
        return (
            "--ca",
            str(certs / "ca.pem"),
            "--cert",
            str(certs / f"{name}.pem"),
            "--key",
            str(certs / f"{name}-key.pem"),
        )

    async with sim, tenant_adapter(sim, tmp_path, policy=POLICY, tls=tls) as h:
        reader = await go(h.port, *identity("reader"))
        writer = await go(h.port, *identity("writer"))
        outsider = await go(h.port, *identity("outsider"))
        no_certificate = await go(h.port, "--ca", str(certs / "ca.pem"))
        plaintext = await go(h.port)
        seen = h.credentials_seen("/v1/devices")
    assert reader["code"] == writer["code"] == "OK" and reader["devices"] > 0
    assert seen == ["api_key:team-a", "api_key"]  # the reader's tenant account, the writer's default
    assert outsider["code"] == "PERMISSION_DENIED"
    assert outsider["error_info"]["metadata"]["principal"] == f"{SPIFFE}/outsider"
    # No certificate, or no TLS at all: the handshake fails, nothing reaches a handler.
    assert no_certificate["code"] == plaintext["code"] == "UNAVAILABLE"
