"""The tenant router's decisions as pure logic (end to end in tests/security/):
a binding the upstream lacks, or a missing one where one is required, is refused
before any stack is asked; never another stack instead."""

from __future__ import annotations

import pytest

from adapter.security.identity import Principal, current_principal
from adapter.security.policy import Policy, parse_policy
from adapter.upstream.errors import CredentialSetRefused
from adapter.upstream.messages import UpstreamRequest, UpstreamResponse
from adapter.upstream.tenant_router import TenantRouter


class RecordingStack:
    """A caller stack that records what it was asked (a fake: the router's logic only)."""

    def __init__(self, label: str) -> None:
        self.name = "openframe"
        self.label = label
        self.sent: list[str] = []
        self.closed = False

    @property
    def default_timeout(self) -> float:
        return 5.0

    async def send(self, request: UpstreamRequest, *, deadline: float) -> UpstreamResponse:
        self.sent.append(request.path)
        raise AssertionError(f"{self.label} was asked")  # the tests below only look at routing

    async def aclose(self) -> None:
        self.closed = True


POLICY = parse_policy(
    {
        "tenants": [
            {"principals": ["jwt:a*"], "credentials": {"openframe": "team_a"}},
            {"principals": ["jwt:gone"], "credentials": {"openframe": "team_gone"}},
        ]
    }
)


def _router(
    policy: Policy | None, *, require: bool = False
) -> tuple[TenantRouter, dict[str, RecordingStack]]:
    stacks = {"": RecordingStack("default"), "team_a": RecordingStack("team_a")}
    router = TenantRouter(
        stacks[""], {"team_a": stacks["team_a"]}, policy=lambda: policy, require_set=require
    )
    return router, stacks


@pytest.mark.parametrize(
    ("policy", "principal", "require", "chosen"),
    [
        (POLICY, "jwt:alice", False, "team_a"),
        (POLICY, "jwt:carol", False, ""),
        (None, "anonymous", False, ""),  # no caller authentication: the default set
        (POLICY, "jwt:alice", True, "team_a"),
    ],
)
def test_the_bound_set_is_chosen(policy: Policy | None, principal: str, require: bool, chosen: str) -> None:
    router, stacks = _router(policy, require=require)
    assert router.stack_for(principal) is stacks[chosen]


@pytest.mark.parametrize(
    ("principal", "require", "reason", "credential_set"),
    [
        ("jwt:gone", False, "CREDENTIAL_SET_UNKNOWN", "team_gone"),
        ("jwt:carol", True, "CREDENTIAL_SET_REQUIRED", ""),
    ],
)
async def test_refusals_ask_no_stack(principal: str, require: bool, reason: str, credential_set: str) -> None:
    router, stacks = _router(POLICY, require=require)
    token = current_principal.set(Principal(principal, "jwt"))
    try:
        with pytest.raises(CredentialSetRefused) as refused:
            await router.send(
                UpstreamRequest(method="GET", path="/v1/devices", route="GET /v1/devices"), deadline=1e12
            )
    finally:
        current_principal.reset(token)
    assert (refused.value.reason, refused.value.principal, refused.value.credential_set) == (
        reason,
        principal,
        credential_set,
    )
    assert refused.value.route == "GET /v1/devices"
    assert all(not s.sent for s in stacks.values())


async def test_close_closes_every_stack() -> None:
    router, stacks = _router(POLICY)
    await router.aclose()
    assert all(s.closed for s in stacks.values())
