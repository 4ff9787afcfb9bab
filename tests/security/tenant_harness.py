"""An adapter whose callers have identities, for the tenant and fair-share tests.

The whole adapter (:class:`MeshAdapter`, the composition root) with a policy file
and bearer JWTs signed by a test issuer (the JWKS is a file), or with ``tls`` the
callers' client certificates over mTLS; the simulator over real sockets with one
API key per tenant account; a real channel. ``set_policy`` rewrites the policy
file and has the adapter re-read it, as it does on its own every
``reload_interval_seconds``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml
from openframe.v1 import devices_pb2, devices_pb2_grpc

from adapter.config.security import SecuritySettings, TlsSettings
from adapter.config.settings import ApiKeyAuth, Settings, UpstreamSettings
from adapter.runtime import MeshAdapter
from adapter.upstream.caller import UpstreamCaller
from simulator import Simulator
from tests.resilience.harness import merged, sim_config, upstream_settings
from tests.security.jwt_helpers import AUDIENCE, ISSUER, Issuer

#: Tenant accounts at the vendor: label -> API key (the simulator records
#: ``api_key:<label>``).
TENANT_KEYS = {"team-a": "openframe-key-team-a", "team-b": "openframe-key-team-b"}

#: Both teams' credential sets of OpenFrame, and who is bound to which.
CREDENTIAL_SETS = {
    "team_a": {"api_key": TENANT_KEYS["team-a"]},
    "team_b": {"api_key": TENANT_KEYS["team-b"]},
}
EVERYTHING = {"principals": ["*"], "permissions": ["*"]}
TWO_TENANTS: dict[str, Any] = {
    "grants": [EVERYTHING],
    "tenants": [
        {"principals": ["jwt:alice@team-a"], "credentials": {"openframe": "team_a"}},
        {"principals": ["jwt:bob@team-b"], "credentials": {"openframe": "team_b"}},
    ],
}


def tenant_sim_config(profile: str, **overrides: Any) -> Any:
    return sim_config(profile, openframe_tenant_api_keys=tuple(TENANT_KEYS.items()), **overrides)


@dataclass
class TenantHarness:
    sim: Simulator
    adapter: MeshAdapter
    port: int
    channel: grpc.aio.Channel
    callers: dict[str, UpstreamCaller]
    policy_file: Path
    issuer: Issuer

    def set_policy(self, document: dict[str, Any]) -> bool:
        """Replaces the policy file and has the adapter check it now; whether the
        new policy is in force (False: refused, the last good one stays)."""
        write_policy(self.policy_file, document)
        assert self.adapter.security is not None and self.adapter.security.policy is not None
        return self.adapter.security.policy.check()

    def metadata(self, principal: str) -> tuple[tuple[str, str], ...]:
        """Call metadata naming ``principal`` (``jwt:<sub>``) with a fresh bearer token."""
        subject = principal.removeprefix("jwt:")
        return (("authorization", f"Bearer {self.issuer.token(subject)}"),)

    async def get_device(self, principal: str, device_id: str = "dev_001") -> devices_pb2.Device:
        stub = devices_pb2_grpc.DeviceServiceStub(self.channel)
        return await stub.GetDevice(
            devices_pb2.GetDeviceRequest(device_id=device_id), timeout=3, metadata=self.metadata(principal)
        )

    async def list_devices(self, principal: str) -> devices_pb2.ListDevicesResponse:
        stub = devices_pb2_grpc.DeviceServiceStub(self.channel)
        return await stub.ListDevices(
            devices_pb2.ListDevicesRequest(page_size=2), timeout=3, metadata=self.metadata(principal)
        )

    def credentials_seen(self, route: str) -> list[str | None]:
        """The credential label the simulator saw on each request of ``route``, in order."""
        return [r.credential for r in self.sim.find_requests(vendor="openframe", route=route)]


def tenant_settings(
    sim: Simulator,
    *,
    resilience: dict[str, Any] | None = None,
    openframe: dict[str, Any] | None = None,
) -> Settings:
    """The resilience tests' settings plus OpenFrame's two credential sets
    (``openframe`` is merged into OpenFrame's upstream settings)."""
    base = upstream_settings(sim, resilience=resilience)
    own = base.upstreams["openframe"].auth
    assert isinstance(own, ApiKeyAuth)
    wire = {"header": own.header, "scheme": own.scheme}  # the profile's auth style
    sets = {name: {**auth, **wire} for name, auth in CREDENTIAL_SETS.items()}
    data = merged(base.upstreams["openframe"].model_dump(), {"credential_sets": sets})
    data = merged(data, openframe or {})
    upstreams = {**base.upstreams, "openframe": UpstreamSettings.model_validate(data)}
    return base.model_copy(update={"upstreams": upstreams})


def write_policy(path: Path, document: dict[str, Any]) -> Path:
    """Writes the policy (YAML) as a rotation would: a new file renamed over the old."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(document))
    tmp.replace(path)
    return path


def secured(settings: Settings, tmp_path: Path, policy: dict[str, Any], tls: TlsSettings | None) -> Settings:
    """``settings`` with a policy file, JWTs from a JWKS file, and ``tls``."""
    security: dict[str, Any] = {
        "policy_file": write_policy(tmp_path / "policy.yaml", policy),
        "jwt": {"jwks_file": tmp_path / "jwks.json", "issuer": ISSUER, "audiences": [AUDIENCE]},
        "reload_interval_seconds": 60,  # tests re-read with set_policy
        "tls": tls,
    }
    return settings.model_copy(update={"security": SecuritySettings.model_validate(security)})


@contextlib.asynccontextmanager
async def tenant_adapter(
    sim: Simulator,
    tmp_path: Path,
    *,
    policy: dict[str, Any] = TWO_TENANTS,
    resilience: dict[str, Any] | None = None,
    openframe: dict[str, Any] | None = None,
    tls: TlsSettings | None = None,
) -> AsyncIterator[TenantHarness]:
    """With ``tls``, the port serves TLS (mTLS when it requires client certificates)
    and ``channel`` is a plaintext channel that cannot reach it: clients bring their own."""
    issuer = Issuer()
    issuer.write(tmp_path / "jwks.json")
    settings = secured(
        tenant_settings(sim, resilience=resilience, openframe=openframe), tmp_path, policy, tls
    )
    async with (
        MeshAdapter(settings) as adapter,
        grpc.aio.insecure_channel(f"127.0.0.1:{adapter.port}") as channel,
    ):
        yield TenantHarness(
            sim, adapter, adapter.port, channel, adapter.callers, tmp_path / "policy.yaml", issuer
        )
