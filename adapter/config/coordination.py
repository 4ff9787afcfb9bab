"""``events.coordination``: several adapter replicas share the vendor streams
through a Kafka consumer group (see docs/scaling.md). Off by default: a single
adapter owns every stream, as before."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["CoordinationSettings"]


class CoordinationSettings(BaseModel):
    """Stream ownership and the shared watermarks of replicas."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Own each vendor stream through the consumer group instead of always.
    enabled: bool = False
    #: The consumer group every replica of one deployment joins.
    group_id: str = "meshadapter.replicas"
    #: Control topic whose partitions are the streams to own (no records are written to it);
    #: ``events.topic_prefix`` is prepended.
    control_topic: str = "meshadapter.control.streams"
    #: Compacted topic holding each stream's backfill watermark; prefixed like the others.
    watermark_topic: str = "meshadapter.control.watermarks"
    #: This replica's name in logs and watermark records (default: host name and process id).
    replica_id: str = ""
    #: The group's session timeout: a replica killed with ``kill -9`` loses its streams
    #: after this long (the broker allows 6 s to 300 s by default).
    session_timeout_seconds: float = Field(default=10.0, ge=1.0, le=300.0)
    heartbeat_interval_seconds: float = Field(default=1.0, gt=0)
    #: How often ownership is confirmed with the group coordinator (an offset commit for
    #: the owned partitions, valid only for the current generation and member).
    confirm_interval_seconds: float = Field(default=1.0, gt=0)
    #: How often the watermarks of delivered events are written to the watermark topic.
    watermark_interval_seconds: float = Field(default=1.0, gt=0)
    #: Share each upstream quota (``resilience.rate_limit``, ``graphql.rate_limit``) across
    #: replicas, in ``quota_slices`` slices handed out by the group.
    share_quota: bool = True
    #: Topic whose partitions are the quota slices (prefixed); more slices = finer shares.
    quota_topic: str = "meshadapter.control.quota"
    quota_slices: int = Field(default=60, ge=1, le=1000)
    #: Beyond the previous holder's lease and the quota window, before a moved slice is used
    #: (requests in flight, clocks of different hosts).
    quota_grace_seconds: float = Field(default=5.0, ge=0)

    @model_validator(mode="after")
    def _lease_fits(self) -> CoordinationSettings:
        if self.lease_seconds <= self.confirm_interval_seconds:
            raise ValueError(
                "events.coordination: session_timeout_seconds must exceed heartbeat_interval_seconds "
                "plus two confirm intervals, or ownership could never be confirmed in time"
            )
        return self

    @property
    def lease_seconds(self) -> float:
        """How long one confirmation lets a stream publish. The broker expires a member
        ``session_timeout`` after its last heartbeat, which may precede a confirmation by
        one heartbeat interval; one confirm interval more is kept as a margin."""
        return self.session_timeout_seconds - self.heartbeat_interval_seconds - self.confirm_interval_seconds
