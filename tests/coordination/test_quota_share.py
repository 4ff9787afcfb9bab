"""How quota slices become usable: at once when nobody held them, after the
previous holder's lease and the quota's window when they moved, never without a
confirmed membership nor before this replica's own confirmation of a gained slice is
committed; each limiter by its own window."""

from __future__ import annotations

from adapter.coordination.quota_share import QuotaShare
from adapter.resilience import UpstreamRateLimiter

from .instant_caller import Instant


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
    quota.committed({0, 1, 2})
    quota.apply(confirmed=False)
    assert rest.limit == 0
    quota.apply(confirmed=True)
    assert (rest.limit, graphql.limit) == (300, 150)  # never held before: usable at once


async def test_a_moved_slice_waits_for_the_previous_holders_requests_to_stop_counting() -> None:
    wall = Wall()
    quota, rest, graphql = share(wall)
    last_ms = int((wall.now - 2) * 1000)  # its holder confirmed it 2 s ago
    quota.assigned({0, 1}, {0: None, 1: last_ms})
    quota.committed({0, 1})
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
    quota.committed({0, 1})
    quota.apply(confirmed=True)
    assert rest.limit == 200
    quota.assigned({1}, {})
    quota.apply(confirmed=True)
    assert rest.limit == 100


async def test_the_replica_is_ready_only_while_every_limiter_allows_requests() -> None:
    """What health reports (``""``, coordination_parts.py): a restarted replica whose
    slices wait out their previous holder would answer RESOURCE_EXHAUSTED."""
    wall = Wall()
    said: list[tuple[bool, str]] = []
    rest = UpstreamRateLimiter(Instant(), limit=1000, window=60, quota="rest")
    graphql = UpstreamRateLimiter(Instant(), limit=500, window=10, quota="graphql")
    quota = QuotaShare(
        [rest, graphql],
        topic="q",
        slices=10,
        lease_seconds=4,
        grace_seconds=1,
        wall=wall,
        on_ready=lambda ready, why: said.append((ready, why)),
    )
    waiting = "quota yet: its slices wait until their previous holder's requests stop counting at the vendor"
    assert said == [
        (False, "no quota slices assigned and confirmed by the replicas' group (joining or leaving it)")
    ]
    last_ms = int((wall.now - 2) * 1000)  # every slice moved, confirmed by its holder 2 s ago
    quota.assigned({0, 1}, {0: last_ms, 1: last_ms})
    quota.committed({0, 1})
    quota.apply(confirmed=True)
    assert said[1:] == [(False, f"no usable share of the openframe rest, openframe graphql {waiting}")]
    wall.now += 13.5  # the GraphQL share is usable, the REST one not yet
    quota.apply(confirmed=True)
    quota.apply(confirmed=True)
    assert (rest.limit, graphql.limit) == (0, 100)
    assert said[2:] == [(False, f"no usable share of the openframe rest {waiting}")]  # said once
    wall.now += 50
    quota.apply(confirmed=True)
    assert said[3:] == [(True, "")] and quota.ready
    quota.assigned(set(), {})
    quota.apply(confirmed=True)
    assert said[4:] == [(False, "holds no quota slice (more replicas than slices?)")]


async def test_a_moved_slice_is_named_as_the_reason_for_not_serving() -> None:
    wall = Wall()
    said: list[tuple[bool, str]] = []
    rest = UpstreamRateLimiter(Instant(), limit=1000, window=60, quota="rest")
    quota = QuotaShare(
        [rest],
        topic="q",
        slices=10,
        lease_seconds=4,
        grace_seconds=1,
        wall=wall,
        on_ready=lambda *a: said.append(a),
    )
    quota.assigned({0}, {0: int(wall.now * 1000)})
    quota.committed({0})
    quota.apply(confirmed=True)
    assert said == [
        (False, "no quota slices assigned and confirmed by the replicas' group (joining or leaving it)"),
        (
            False,
            "no usable share of the openframe rest quota yet: its slices wait until their previous "
            "holder's requests stop counting at the vendor",
        ),
    ]


async def test_a_gained_slice_waits_for_this_replicas_confirmation_and_a_kept_one_does_not() -> None:
    """A successor reads the last committed confirmation as "used until then": a slice
    used before this replica's own is committed would leave the previous one behind."""
    quota, rest, _ = share(Wall())
    quota.assigned({0, 1}, {0: None, 1: None})  # never held: usable at once, once confirmed
    quota.apply(confirmed=True)
    assert rest.limit == 0 and quota.ready is False
    quota.committed({0, 1})
    quota.apply(confirmed=True)
    assert rest.limit == 200
    quota.assigned({1, 2, 3}, {2: None, 3: None})  # 1 kept, 2 and 3 gained
    quota.apply(confirmed=True)
    assert rest.limit == 100
    quota.committed({1, 2})  # a confirmation that missed slice 3
    quota.apply(confirmed=True)
    assert rest.limit == 200
    quota.committed({1, 2, 3})
    quota.apply(confirmed=True)
    assert rest.limit == 300
