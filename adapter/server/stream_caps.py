"""Caps on open ``EventService/Subscribe`` streams, in all and per principal
(``security.limits.max_subscribe_streams`` / ``..._per_principal``).

Each stream holds a Kafka consumer (sockets, fetch buffers), so streams are the
adapter's most expensive calls to keep open. One more than a cap is refused with
RESOURCE_EXHAUSTED before a consumer is created (``ErrorInfo`` reason
``TOO_MANY_STREAMS``, ``QuotaFailure`` naming the principal or the server).
"""

from __future__ import annotations

import collections

import grpc
from google.rpc import error_details_pb2, status_pb2

from adapter.status.mapping import ERROR_DOMAIN

__all__ = ["StreamCapExceeded", "SubscribeStreamCaps"]


class StreamCapExceeded(Exception):
    """The stream would pass a cap; :meth:`status` is what the caller gets."""

    def __init__(self, message: str, *, subject: str, limit: int) -> None:
        super().__init__(message)
        self.subject = subject
        self.limit = limit

    def status(self) -> status_pb2.Status:
        packed = status_pb2.Status(code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], message=str(self))
        packed.details.add().Pack(
            error_details_pb2.ErrorInfo(
                reason="TOO_MANY_STREAMS",
                domain=ERROR_DOMAIN,
                metadata={"subject": self.subject, "limit": str(self.limit)},
            )
        )
        violation = error_details_pb2.QuotaFailure.Violation(
            subject=self.subject, description=f"at most {self.limit} open Subscribe streams"
        )
        packed.details.add().Pack(error_details_pb2.QuotaFailure(violations=[violation]))
        return packed


class SubscribeStreamCaps:
    """``acquire(principal)`` before a stream opens, ``release(principal)`` once it
    ended; 0 = no cap."""

    def __init__(self, *, total: int, per_principal: int) -> None:
        self.total = total
        self.per_principal = per_principal
        self.open = 0
        self._by_principal: collections.Counter[str] = collections.Counter()

    def open_for(self, principal: str) -> int:
        return self._by_principal[principal]

    def acquire(self, principal: str) -> None:
        """Counts one more stream of ``principal``; raises StreamCapExceeded."""
        if self.per_principal and self._by_principal[principal] >= self.per_principal:
            raise StreamCapExceeded(
                f"{principal} has {self.per_principal} Subscribe streams open, its limit "
                "(max_subscribe_streams_per_principal); close one first",
                subject=f"principal:{principal}",
                limit=self.per_principal,
            )
        if self.total and self.open >= self.total:
            raise StreamCapExceeded(
                f"the adapter has {self.total} Subscribe streams open, its limit (max_subscribe_streams)",
                subject="server",
                limit=self.total,
            )
        self.open += 1
        self._by_principal[principal] += 1

    def release(self, principal: str) -> None:
        self.open -= 1
        self._by_principal[principal] -= 1
        if self._by_principal[principal] <= 0:
            del self._by_principal[principal]
