"""How quota slices become usable: at once when nobody held them, after the
previous holder's lease and the quota's window when they moved, never without a
confirmed membership; each limiter by its own window."""

from __future__ import annotations

import httpx

from adapter.coordination.quota_share import QuotaShare
from adapter.resilience import UpstreamRateLimiter
from adapter.upstream.messages import UpstreamRequest, UpstreamResponse


class Instant:
    name = "openframe"
    default_timeout = 5.0

    async def send(self, request: UpstreamRequest, *, deadline: float) -> UpstreamResponse:
        return UpstreamResponse(status=200, headers=httpx.Headers(), body=b"{}")

    async def aclose(self) -> None:
        pass


class Wall:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def share(wall: Wall) -> tuple[QuotaShare, UpstreamRateLimiter, UpstreamRateLimiter]:
    rest = UpstreamRateLimiter(Instant(), limit=1000, window=60, quota="rest")
    graphql = UpstreamRateLimiter(Instant(), limit=500, window=10, quota="graphql")
    quota = QuotaShare([rest, graphql], topic="q", slices=10, lease_seconds=4, grace_seconds=1, wall=wall)
    return quota, rest, graphql


async def test_nothing_is_used_before_the_group_assigns_and_confirms() -> None:
    quota, rest, graphql = share(Wall())
    assert rest.limit == 0 and graphql.limit == 0
    quota.assigned({0, 1, 2}, {0: None, 1: None, 2: None})
    quota.apply(confirmed=False)
    assert rest.limit == 0
    quota.apply(confirmed=True)
    assert (rest.limit, graphql.limit) == (300, 150)  # never held before: usable at once


async def test_a_moved_slice_waits_for_the_previous_holders_requests_to_stop_counting() -> None:
    wall = Wall()
    quota, rest, graphql = share(wall)
    last_ms = int((wall.now - 2) * 1000)  # its holder confirmed it 2 s ago
    quota.assigned({0, 1}, {0: None, 1: last_ms})
    quota.apply(confirmed=True)
    assert (rest.limit, graphql.limit) == (100, 50)
    wall.now += 13.5  # lease 4 + grace 1 + graphql window 10 after the last confirmation, +0.5
    quota.apply(confirmed=True)
    assert (rest.limit, graphql.limit) == (100, 100)
    wall.now += 50  # and the REST window of 60
    quota.apply(confirmed=True)
    assert (rest.limit, graphql.limit) == (200, 100)


async def test_a_slice_kept_across_a_rebalance_stays_usable_and_a_lost_one_goes() -> None:
    wall = Wall()
    quota, rest, _ = share(wall)
    quota.assigned({0, 1}, {})
    quota.apply(confirmed=True)
    assert rest.limit == 200
    quota.assigned({1}, {})
    quota.apply(confirmed=True)
    assert rest.limit == 100
