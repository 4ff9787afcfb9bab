"""What a Kafka delivery can end in: acknowledged, or one of these errors
(``retriable`` says whether sending the record again can help)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Delivered",
    "DeliveryError",
    "DeliveryFailed",
    "DeliveryTimeout",
    "KafkaUnavailable",
    "RecordRejected",
]


class DeliveryError(Exception):
    """Base of delivery failures."""

    retriable = True


class KafkaUnavailable(DeliveryError):
    """No producer could be started (broker down, bootstrap failed, start timed out)."""


class DeliveryTimeout(DeliveryError):
    """Kafka did not acknowledge within ``delivery_timeout``."""


class DeliveryFailed(DeliveryError):
    """Kafka or the producer failed the send; a fresh producer may succeed."""

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        #: The producer is unusable (non-retriable error): it is discarded and rebuilt.
        self.fatal = fatal


class RecordRejected(DeliveryError):
    """Kafka can never accept this record (too large, invalid topic...)."""

    retriable = False


@dataclass(frozen=True, slots=True)
class Delivered:
    """Kafka acknowledged the record (``acks=all``) at this position."""

    topic: str
    partition: int
    offset: int
