"""Fair share of a vendor quota, end to end: a principal capped by the policy's
``[[quotas]]`` is refused with RESOURCE_EXHAUSTED naming it, before the vendor is
asked, while the other callers of the same credential still get through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from simulator import Simulator
from tests.resilience.harness import error_details
from tests.security.tenant_harness import EVERYTHING, tenant_adapter

LIST_DEVICES = "/v1/devices"
BATCH, ALICE = "jwt:batch-nightly", "jwt:alice@team-a"
#: 10 requests a minute per credential set; batch jobs may hold a fifth of it (2).
QUOTA = {"rate_limit": {"requests_per_window": 10, "window_seconds": 60}}
SHARES: dict[str, Any] = {
    "grants": [EVERYTHING],
    "tenants": [{"principals": [ALICE], "credentials": {"openframe": "team_a"}}],
    "quotas": [{"principals": ["jwt:batch-*"], "max_share": 0.2}],
}


async def test_a_capped_principal_is_refused_while_others_get_through(sim: Simulator, tmp_path: Path) -> None:
    async with tenant_adapter(sim, tmp_path, policy=SHARES, resilience=QUOTA) as h:
        await h.list_devices(BATCH)
        await h.list_devices(BATCH)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await h.list_devices(BATCH)
        sent_when_refused = sim.count(vendor="openframe", route=LIST_DEVICES)
        for _ in range(5):
            await h.list_devices("jwt:carol")  # same (default) credential, no cap
        for _ in range(5):
            await h.list_devices(ALICE)  # her own credential set
    assert sent_when_refused == 2  # the refused call cost the vendor nothing
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = error_details(refused.value)
    [violation] = details["QuotaFailure"].violations
    assert violation.subject == f"principal:{BATCH}"
    assert "20%" in violation.description and "upstream:openframe" in violation.description
    retry = details["RetryInfo"].retry_delay
    assert 50 < retry.seconds + retry.nanos / 1e9 <= 60  # its oldest slot frees a window after its answer
    info = details["ErrorInfo"]
    assert info.reason == "PRINCIPAL_QUOTA_EXHAUSTED" and info.metadata["principal"] == BATCH
    assert BATCH in (refused.value.details() or "")
    assert h.credentials_seen(LIST_DEVICES) == ["api_key"] * 7 + ["api_key:team-a"] * 5


async def test_shares_are_per_credential_set(sim: Simulator, tmp_path: Path) -> None:
    # The same capped principal bound to team A holds its share of team A's quota only.
    policy = {**SHARES, "tenants": [{"principals": ["jwt:batch-a"], "credentials": {"openframe": "team_a"}}]}
    async with tenant_adapter(sim, tmp_path, policy=policy, resilience=QUOTA) as h:
        for _ in range(2):
            await h.list_devices("jwt:batch-a")
            await h.list_devices("jwt:batch-b")  # default set: a share of its own
        for who in ("jwt:batch-a", "jwt:batch-b"):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await h.list_devices(who)
            assert error_details(refused.value)["QuotaFailure"].violations[0].subject == f"principal:{who}"
    assert sorted(h.credentials_seen(LIST_DEVICES)) == ["api_key"] * 2 + ["api_key:team-a"] * 2
