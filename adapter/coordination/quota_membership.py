"""The quota slices' consumer group: its own group over the quota topic, with
Kafka's sticky assignor, so a rebalance moves as few slices as it can (a moved
slice waits out its previous holder's window, :mod:`.quota_share`) and does not
restart the streams (their group is another one).

On each assignment, before using any slice, and then each ``confirm_interval``, the
member commits, for every slice it holds, the wall time in milliseconds as the
slice's offset: the coordinator accepts it only from a current member, which renews
this replica's lease on its slices, and the next holder of a slice reads it as
"last possibly used until this + lease".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiokafka import TopicPartition
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor

from adapter.config.coordination import CoordinationSettings
from adapter.events.kafka_connection import KafkaTarget
from adapter.lifecycle.supervisor import Supervisor

from .lease_group import LeaseGroupMember
from .quota_share import QuotaShare

__all__ = ["QuotaMembership"]

logger = logging.getLogger(__name__)


class QuotaMembership:
    """Holds this replica's quota slices; a lifecycle part (the group's
    :class:`~.lease_group.GroupRebalances`)."""

    def __init__(
        self,
        share: QuotaShare,
        settings: CoordinationSettings,
        *,
        bootstrap_servers: KafkaTarget,
        client_id: str,
        group_id: str,
        supervisor: Supervisor | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.share = share
        self.group_id = group_id
        self._wall = wall
        self._member = LeaseGroupMember(
            settings,
            bootstrap_servers=bootstrap_servers,
            client_id=f"{client_id}-quota",
            group_id=group_id,
            topic=share.topic,
            assignor=StickyPartitionAssignor,
            task_name="quota-membership",
            supervisor=supervisor,
            clock=clock,
        )
        self.slices: set[int] = set()
        self._assignment = 0  # counts assignments: a confirmation counts for the one it was sent in

    def confirmed(self) -> bool:
        return self._member.confirmed()

    async def start(self) -> None:
        await self._member.join(self)

    async def stop(self) -> None:
        """Gives the slices up (the limiters allow nothing more) and leaves the group."""
        await self._member.stop_polling()
        self.slices = set()
        self.share.assigned(set(), {})
        self.share.apply(confirmed=False)
        await self._member.leave()

    # -- the group (GroupRebalances) ---------------------------------------------------------

    async def round(self) -> None:
        await self._confirm()
        self.share.apply(confirmed=self.confirmed())

    async def _confirm(self) -> None:
        """Commits the wall time as every held slice's offset; renews the lease if accepted."""
        slices, assignment = set(self.slices), self._assignment
        now_ms = int(self._wall() * 1000)
        accepted = await self._member.confirm({i: now_ms for i in slices})
        if accepted and assignment == self._assignment:  # not a commit sent before the latest assignment
            self.share.committed(slices)

    async def partitions_revoked(self, partitions: set[TopicPartition]) -> None:
        """Slices stay in use until the new assignment says otherwise: a slice that moves
        is not used by its next holder before this one's requests stopped counting."""

    async def partitions_assigned(self, partitions: set[TopicPartition]) -> None:
        consumer = self._member.consumer
        if consumer is None:  # stopping: an assignment that lands now is not taken up
            logger.debug("quota slices assigned while leaving the group: ignored")
            return
        slices = {p.partition for p in partitions if p.topic == self.share.topic}
        last: dict[int, int | None] = {}
        for index in slices - self.slices:
            try:
                last[index] = await consumer.committed(TopicPartition(self.share.topic, index))
            except Exception as exc:  # unknown: wait as if it had just been used
                logger.warning("quota slice %d: last holder unknown (%r)", index, exc)
                last[index] = int(self._wall() * 1000)
        if self._member.consumer is not consumer:  # stop() ran meanwhile and gave every slice up
            return
        self.slices = slices
        self._assignment += 1
        self.share.assigned(slices, last)
        # A gained slice is used only once this replica's confirmation of it is committed:
        # the next holder of a slice reads the last committed one as "used until then", and
        # the previous holder's (or none, for a slice no one held) would let it start while
        # requests this replica sent still count. Kept slices stay in use meanwhile, within
        # the lease of the last confirmation committed (the one a successor would read).
        self.share.apply(confirmed=self.confirmed())
        await self._confirm()
        self.share.apply(confirmed=self.confirmed())
