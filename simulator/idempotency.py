"""`Idempotency-Key` on POST: a repeated key gets the first answer, nothing is created twice.

Keys are scoped by credential and path. A repeat that arrives while the first is still being
answered waits for it. A repeat with a different body is a 409. Answers that say "try again"
(429, 5xx) and abandoned attempts are not remembered, so a retry is processed afresh.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field

from aiohttp import web

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


class KeyReusedError(Exception):
    """The key was first used with a different request body."""


@dataclass(frozen=True)
class StoredAnswer:
    """The first answer given for a key."""

    status: int
    body: bytes
    content_type: str

    def response(self) -> web.Response:
        """A copy of the answer, marked as replayed."""
        response = web.Response(status=self.status, body=self.body or None)
        if self.body:
            response.headers["Content-Type"] = self.content_type
        response.headers[REPLAYED_HEADER] = "true"
        return response


@dataclass
class _Entry:
    fingerprint: str
    answer: asyncio.Future[StoredAnswer | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


Slot = tuple[str, str, str]


class IdempotencyCache:
    """First answers by (credential, path, key)."""

    def __init__(self) -> None:
        self._entries: dict[Slot, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def lookup(self, slot: Slot, body: bytes) -> StoredAnswer | None:
        """The stored answer, or None when this attempt must run.

        When None is returned the caller owns the slot and must `complete` or `abandon` it.
        Raises `KeyReusedError` when the key was first used with another body.
        """
        fingerprint = hashlib.sha256(body).hexdigest()
        while True:
            entry = self._entries.get(slot)
            if entry is None:
                self._entries[slot] = _Entry(fingerprint)
                return None
            if entry.fingerprint != fingerprint:
                raise KeyReusedError(slot[2])
            answer = await asyncio.shield(entry.answer)
            if answer is not None:
                return answer
            # The first attempt was abandoned; loop to claim the slot (or wait for a new owner).

    def complete(self, slot: Slot, response: web.StreamResponse) -> None:
        """Remembers the owner's answer (unless it says "try again") and wakes waiters."""
        entry = self._entries.get(slot)
        if entry is None:
            return
        body = response.body if isinstance(response, web.Response) else None
        if (
            response.status == 429
            or response.status >= 500
            or not isinstance(body, bytes | bytearray | type(None))
        ):
            self.abandon(slot)
            return
        answer = StoredAnswer(
            response.status, bytes(body or b""), response.content_type or "application/json"
        )
        if not entry.answer.done():
            entry.answer.set_result(answer)

    def abandon(self, slot: Slot) -> None:
        """Forgets the slot so the next attempt runs; waiters retry."""
        entry = self._entries.pop(slot, None)
        if entry is not None and not entry.answer.done():
            entry.answer.set_result(None)

    def clear(self) -> None:
        """Forgets every key."""
        for slot in list(self._entries):
            self.abandon(slot)
        self._entries.clear()
