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
rebalance never stops being usable.
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
    ) -> None:
        self.topic = topic
        self.slices = slices
        self._limiters = limiters
        window = max((limiter.window for limiter in limiters), default=0.0)
        #: From a holder's last confirmation until its requests no longer count anywhere.
        self.handover_seconds = lease_seconds + window + grace_seconds
        self._replica = replica_id
        self._wall = wall
        #: Slice -> wall time from which it is usable here.
        self._held: dict[int, float] = {}
        self.fraction = -1.0
        self.apply(confirmed=False)  # nothing before the group says so

    def assigned(self, slices: set[int], last_confirmed_ms: Mapping[int, int | None]) -> None:
        """The slices of a new assignment; ``last_confirmed_ms``: the committed offset
        (previous holder's last confirmation) of each slice gained."""
        now = self._wall()
        held: dict[int, float] = {}
        for index in slices:
            if index in self._held:
                held[index] = self._held[index]
                continue
            last = last_confirmed_ms.get(index)
            held[index] = now if last is None or last <= 0 else max(now, last / 1000 + self.handover_seconds)
        self._held = held
        waiting = [at for at in held.values() if at > now]
        if waiting:
            logger.info(
                "replica %s holds %d of %d quota slices; %d usable in up to %.0fs (their previous holder's "
                "requests still count at the vendor)",
                self._replica,
                len(held),
                self.slices,
                len(waiting),
                max(waiting) - now,
            )

    def apply(self, *, confirmed: bool) -> float:
        """Sets the limiters to the usable share (none while ownership is not confirmed)."""
        now = self._wall()
        usable = sum(1 for at in self._held.values() if at <= now) if confirmed else 0
        fraction = usable / self.slices
        if fraction != self.fraction:
            self.fraction = fraction
            for limiter in self._limiters:
                limiter.set_share(fraction)
            logger.info(
                "replica %s uses %d/%d of each upstream quota (%s)",
                self._replica,
                usable,
                self.slices,
                ", ".join(f"{lim.name} {lim.quota} {lim.limit}" for lim in self._limiters) or "no limiter",
            )
        return fraction
