"""An adapter whose callers have identities, for the tenant and fair-share tests.

The simulator over real sockets with one API key per tenant account, the real
caller stacks from the composition root (``build_callers`` with a policy), the
real handlers on a real grpc.aio server with the real :class:`CallAuthorizer` in
front, and callers identified by bearer JWTs signed by a test issuer (the JWKS is a
file) or, with ``tls``, by their client certificates over mTLS. The policy is a
mutable holder, so a test can "reload" it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from openframe.v1 import devices_pb2, devices_pb2_grpc

from adapter.assembly.callers import build_callers
from adapter.assembly.catalog import load_catalog
from adapter.assembly.rpc import build_transcoders, upstream_services
from adapter.assembly.tenants import check_tenant_bindings
from adapter.config.security import JwtSettings, TlsSettings
from adapter.config.settings import ApiKeyAuth, Settings, UpstreamSettings
from adapter.lifecycle import HealthBoard
from adapter.security.audit import AuditLog
from adapter.security.authorizer import CallAuthorizer
from adapter.security.jwt_verifier import JwtVerifier
from adapter.security.policy import Policy, parse_policy
from adapter.security.tls import grpc_server_credentials
from adapter.server.app import AdapterServer
from adapter.transcoding.json_codec import JsonCodec
from adapter.transcoding.page_tokens import PageTokenSigner
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


class PolicyHolder:
    """The current policy; ``set`` stands for a reload of the policy file."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.policy: Policy = parse_policy(document, source="<test policy>")

    def set(self, document: dict[str, Any]) -> None:
        self.policy = parse_policy(document, source="<reloaded test policy>")

    def __call__(self) -> Policy:
        return self.policy


@dataclass
class TenantHarness:
    sim: Simulator
    settings: Settings
    port: int
    channel: grpc.aio.Channel
    callers: dict[str, UpstreamCaller]
    policy: PolicyHolder
    issuer: Issuer

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
    # TODO(issue 9): once the composition root installs the authorizer from
    # Settings.security (issue-9-authz), run MeshAdapter here instead.
    settings = tenant_settings(sim, resilience=resilience, openframe=openframe)
    holder = PolicyHolder(policy)
    check_tenant_bindings(holder(), settings)
    issuer = Issuer()
    jwks = issuer.write(tmp_path / "jwks.json")
    catalog = load_catalog(settings)
    _, callers = build_callers(settings, catalog.methods_by_upstream(), policy=holder)
    transcoders = build_transcoders(
        catalog, settings, codec=JsonCodec(), page_tokens=PageTokenSigner.from_settings(settings.page_tokens)
    )
    authorizer = CallAuthorizer(
        permissions={m.path: "test.call" for s in catalog.specs for m in s.methods},
        policy=holder,
        jwt=JwtVerifier(JwtSettings(jwks_file=jwks, issuer=ISSUER, audiences=[AUDIENCE])),
        audit=AuditLog(),
    )
    server = AdapterServer(
        settings.grpc,
        services=upstream_services(catalog, transcoders=transcoders, callers=callers),
        board=HealthBoard(),
        interceptors=[authorizer],
        credentials=grpc_server_credentials(tls) if tls is not None else None,
    )
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield TenantHarness(sim, settings, server.port, channel, callers, holder, issuer)
    finally:
        await server.stop(0)
        for caller in callers.values():
            await caller.aclose()
