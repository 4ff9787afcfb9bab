"""Per-tenant vendor credentials, end to end: two principals bound to two
credential sets reach the vendor (the simulator) with their own API keys, and
their quotas, caches and refusals stay apart."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from adapter.assembly.tenants import check_tenant_bindings, checked_policy_loader, unknown_bindings
from adapter.config.settings import ConfigError
from adapter.runtime import MeshAdapter
from adapter.security.policy import PolicyError, load_policy, parse_policy
from adapter.security.reloading import ReloadingFile
from simulator import Simulator
from tests.resilience.harness import error_details
from tests.security.jwt_helpers import Issuer
from tests.security.tenant_harness import (
    TWO_TENANTS,
    secured,
    tenant_adapter,
    tenant_settings,
)

GET_DEVICE = "/v1/devices/{device_id}"
LIST_DEVICES = "/v1/devices"
ALICE, BOB, CAROL = "jwt:alice@team-a", "jwt:bob@team-b", "jwt:carol"


async def test_each_tenant_reaches_the_vendor_with_its_own_key(sim: Simulator, tmp_path: Path) -> None:
    async with tenant_adapter(sim, tmp_path) as h:
        await h.list_devices(ALICE)
        await h.list_devices(BOB)
        await h.list_devices(CAROL)  # bound to no set: the upstream's own auth
        await h.list_devices(BOB)
    assert h.credentials_seen(LIST_DEVICES) == [
        "api_key:team-a",
        "api_key:team-b",
        "api_key",
        "api_key:team-b",
    ]


async def test_quotas_are_per_tenant(sim: Simulator, tmp_path: Path) -> None:
    # 3 requests a minute per credential set, client-side: alice spends team A's.
    quota = {"rate_limit": {"requests_per_window": 3, "window_seconds": 60}}
    async with tenant_adapter(sim, tmp_path, resilience=quota) as h:
        for _ in range(3):
            await h.list_devices(ALICE)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await h.list_devices(ALICE)
        for _ in range(3):
            await h.list_devices(BOB)  # team B's quota is untouched
        await h.list_devices(CAROL)  # and so is the default set's
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info = error_details(refused.value)["ErrorInfo"]
    assert info.reason == "UPSTREAM_QUOTA_EXHAUSTED"
    seen = h.credentials_seen(LIST_DEVICES)
    assert seen.count("api_key:team-a") == 3  # the refused call never reached the vendor
    assert seen.count("api_key:team-b") == 3 and seen.count("api_key") == 1


async def test_one_tenant_never_reads_anothers_cached_answer(sim: Simulator, tmp_path: Path) -> None:
    async with tenant_adapter(sim, tmp_path, resilience={"cache": {"enabled": True}}) as h:
        alice_first = await h.get_device(ALICE)
        bob_first = await h.get_device(BOB)  # same request, other tenant: a miss, asked with B's key
        alice_again = await h.get_device(ALICE)  # A's own cache answers
        bob_again = await h.get_device(BOB)
    assert h.credentials_seen(GET_DEVICE) == ["api_key:team-a", "api_key:team-b"]
    assert alice_first == alice_again and bob_first == bob_again and alice_first.id == "dev_001"


async def test_a_reload_binding_to_an_unconfigured_set_is_refused(sim: Simulator, tmp_path: Path) -> None:
    async with tenant_adapter(sim, tmp_path) as h:
        await h.list_devices(ALICE)
        # An edit binds alice to a set OpenFrame does not have: refused, the last good policy stays.
        moved = {**TWO_TENANTS, "tenants": [{"principals": [ALICE], "credentials": {"openframe": "team_c"}}]}
        assert h.set_policy(moved) is False
        await h.list_devices(ALICE)
        # A good edit is taken: alice moves to team B's account.
        assert h.set_policy(
            {**TWO_TENANTS, "tenants": [{"principals": [ALICE], "credentials": {"openframe": "team_b"}}]}
        )
        await h.list_devices(ALICE)
    assert h.credentials_seen(LIST_DEVICES) == ["api_key:team-a", "api_key:team-a", "api_key:team-b"]


async def test_required_binding_refuses_unbound_callers(sim: Simulator, tmp_path: Path) -> None:
    async with tenant_adapter(sim, tmp_path, openframe={"require_credential_set": True}) as h:
        await h.list_devices(BOB)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await h.list_devices(CAROL)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    info = error_details(refused.value)["ErrorInfo"]
    assert info.reason == "CREDENTIAL_SET_REQUIRED" and info.metadata["principal"] == CAROL
    assert h.credentials_seen(LIST_DEVICES) == ["api_key:team-b"]


async def test_start_is_refused_when_the_policy_names_a_missing_set(sim: Simulator, tmp_path: Path) -> None:
    settings = tenant_settings(sim)
    policy = parse_policy(
        {
            "tenants": [
                {"principals": ["jwt:x"], "credentials": {"openframe": "team_a", "octospine": "team_a"}},
                {"principals": ["jwt:y"], "credentials": {"openframe": "team_z", "nowhere": "n"}},
            ]
        },
        source="policy.toml",
    )
    assert unknown_bindings(policy, settings) == ["nowhere.n", "octospine.team_a", "openframe.team_z"]
    with pytest.raises(ConfigError) as failed:
        check_tenant_bindings(policy, settings)
    message = str(failed.value)
    assert "policy.toml" in message and "upstreams.openframe.credential_sets.team_z" in message
    assert "upstreams.octospine.credential_sets.team_a" in message
    check_tenant_bindings(parse_policy(TWO_TENANTS), settings)  # every set it names exists
    # The adapter itself: nothing starts, and the error names the missing set.
    Issuer().write(tmp_path / "jwks.json")
    bad = {"grants": [], "tenants": [{"principals": ["jwt:y"], "credentials": {"openframe": "team_z"}}]}
    adapter = MeshAdapter(secured(settings, tmp_path, bad, None))
    with pytest.raises(PolicyError, match=r"upstreams\.openframe\.credential_sets\.team_z"):
        await adapter.start()
    assert adapter.server is None or adapter.server.port == 0


async def test_a_reload_naming_a_missing_set_keeps_the_last_good_policy(
    sim: Simulator, tmp_path: Path
) -> None:
    settings = tenant_settings(sim)
    path = tmp_path / "policy.toml"
    path.write_text('[[tenants]]\nprincipals = ["jwt:a"]\ncredentials = { openframe = "team_a" }\n')
    load = checked_policy_loader(lambda: load_policy(path), settings)
    policy = ReloadingFile("policy", [path], load, interval=0.0)
    assert policy.current().credential_set("jwt:a", "openframe") == "team_a"
    replacement = tmp_path / "policy.new"
    replacement.write_text('[[tenants]]\nprincipals = ["jwt:a"]\ncredentials = { openframe = "team_q" }\n')
    replacement.replace(path)  # a rotation-style write: new inode
    assert policy.current().credential_set("jwt:a", "openframe") == "team_a"  # kept
    assert (policy.failures, policy.reloads) == (1, 0)
    with pytest.raises(PolicyError, match=r"upstreams\.openframe\.credential_sets\.team_q"):
        load()
