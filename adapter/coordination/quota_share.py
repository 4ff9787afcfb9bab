"""One vendor quota across replicas: each credential's requests per window are cut
into slices, the partitions of a quota topic, handed out by the same consumer group
as the streams. A replica's rate limiters allow ``slices held / slices`` of the
quota, so the replicas' sum never exceeds it.

A slice moves safely: its previous holder may have used it until its lease ran out
(``lease_seconds`` after its last confirmation, which it records as the committed
offset of the slice: the wall-clock time in ms), and the vendor counts those
requests for a window after. So a slice gained from another replica becomes usable
only ``lease + window + grace`` after the previous holder's last confirmation; one
never confirmed (a new deployment) is usable at once, and one kept across a
rebalance never stops being usable. A gained slice is also used only once this
replica's own confirmation of it is committed (:meth:`QuotaShare.committed`), the
one its next holder will read.

A replica is ready (``on_ready``) only while every limiter allows some requests: one
that joined the group and waits out its slices' previous holders would answer every
call that reaches the vendor RESOURCE_EXHAUSTED, so load balancers (gRPC health
checking, ``/readyz``) must send it nothing until then (docs/load-balancing.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

from adapter.resilience.rate_limiter import UpstreamRateLimiter

__all__ = ["QuotaShare"]

logger = logging.getLogger(__name__)


class QuotaShare:
    def __init__(
        self,
        limiters: Sequence[UpstreamRateLimiter],
        *,
        topic: str,
        slices: int,
        lease_seconds: float,
        grace_seconds: float,
        replica_id: str = "",
        wall: Callable[[], float] = time.time,
        on_ready: Callable[[bool, str], None] | None = None,
    ) -> None:
        self.topic = topic
        self.slices = slices
        self._limiters = limiters
        #: From a holder's last confirmation until a quota's window no longer counts its
        #: requests: per limiter, as each has its own window.
        self._wait = lease_seconds + grace_seconds
        self._replica = replica_id
        self._wall = wall
        #: Slice -> its previous holder's last confirmation (wall seconds; None: nobody's).
        self._held: dict[int, float | None] = {}
        #: Gained slices whose confirmation by this replica is not committed yet: unused
        #: until it is, or a successor would read only the previous holder's (or none).
        self._unconfirmed: set[int] = set()
        self._usable: list[int] = [-1] * len(limiters)
        self._on_ready = on_ready
        self.ready: bool | None = None
        self._why = ""
        self.apply(confirmed=False)  # nothing before the group says so

    def usable_from(self, index: int, limiter: UpstreamRateLimiter) -> float:
        last = self._held.get(index)
        return 0.0 if last is None else last + self._wait + limiter.window

    def assigned(self, slices: set[int], last_confirmed_ms: Mapping[int, int | None]) -> None:
        """The slices of a new assignment; ``last_confirmed_ms``: the committed offset
        (previous holder's last confirmation) of each slice gained."""
        held: dict[int, float | None] = {}
        for index in slices:
            if index in self._held:
                held[index] = self._held[index]
                continue
            last = last_confirmed_ms.get(index)
            held[index] = None if last is None or last <= 0 else last / 1000
        self._unconfirmed = (self._unconfirmed & slices) | (slices - self._held.keys())
        self._held = held
        now = self._wall()
        waits = [self.usable_from(i, lim) - now for i in held for lim in self._limiters]
        if any(w > 0 for w in waits):
            logger.info(
                "replica %s holds %d of %d quota slices; some usable only in up to %.0fs (their previous "
                "holder's requests still count at the vendor)",
                self._replica,
                len(held),
                self.slices,
                max(waits),
            )

    def committed(self, slices: set[int]) -> None:
        """This replica's confirmation of ``slices`` (made since their assignment) is committed."""
        self._unconfirmed -= slices

    def apply(self, *, confirmed: bool) -> None:
        """Sets each limiter to its usable share (none while the lease is not confirmed)."""
        now = self._wall()
        changed = False
        for n, limiter in enumerate(self._limiters):
            usable = (
                sum(
                    1
                    for i in self._held
                    if i not in self._unconfirmed and self.usable_from(i, limiter) <= now
                )
                if confirmed
                else 0
            )
            if usable != self._usable[n]:
                self._usable[n] = usable
                limiter.set_share(usable / self.slices)
                changed = True
        if changed:
            rest = [u for u, lim in zip(self._usable, self._limiters, strict=True) if lim.quota == "rest"]
            logger.info(
                "replica %s uses %d/%d of each upstream quota (%s)",
                self._replica,
                min(rest, default=0),
                self.slices,
                ", ".join(f"{lim.name} {lim.quota} {lim.limit}" for lim in self._limiters) or "no limiter",
            )
        self._report_readiness(confirmed)

    def _report_readiness(self, confirmed: bool) -> None:
        empty = [f"{lim.name} {lim.quota}" for lim in self._limiters if lim.limit < 1]
        ready = not empty
        if ready:
            why = ""
        elif not confirmed:
            why = "no quota slices assigned and confirmed by the replicas' group (joining or leaving it)"
        elif not self._held:
            why = "holds no quota slice (more replicas than slices?)"
        elif self._held.keys() <= self._unconfirmed:
            why = "its quota slices are assigned, their confirmation by this replica not committed yet"
        else:
            why = (
                f"no usable share of the {', '.join(empty)} quota yet: its slices wait until their previous "
                "holder's requests stop counting at the vendor"
            )
        if (ready, why) == (self.ready, self._why):
            return
        self.ready, self._why = ready, why
        if self._on_ready is not None:
            self._on_ready(ready, why)
