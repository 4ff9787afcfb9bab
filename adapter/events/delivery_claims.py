"""The spool's memory of webhook delivery ids, for deliveries without a signed time.

A delivery whose body carries no time (the documented ``{event, data}``) cannot be
refused as stale, so a replay is recognised by its delivery id instead: the id is
claimed, with an expiry, in the same SQLite transaction that stores the event's
records. "Accepted" and "remembered" therefore cannot disagree after a crash, and
the memory survives restarts with the spool. A claim that exists and has not
expired makes the whole append a duplicate (nothing stored); expired claims are
pruned at every commit.

Runs on the spool's SQLite thread, inside a transaction the caller owns.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

__all__ = ["CLAIMS_SCHEMA", "DeliveryClaim", "claim_delivery", "prune_claims"]

CLAIMS_SCHEMA = """
CREATE TABLE IF NOT EXISTS delivery_claims (key TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS delivery_claims_expiry ON delivery_claims (expires_at);
"""


@dataclass(frozen=True, slots=True)
class DeliveryClaim:
    """A delivery id (``source`` + NUL + id) remembered until ``expires_at`` (epoch seconds)."""

    key: str
    expires_at: float


def claim_delivery(db: sqlite3.Connection, claim: DeliveryClaim, now: float) -> bool:
    """Remembers ``claim``; False when it is remembered already and has not expired."""
    row = db.execute(
        "INSERT INTO delivery_claims (key, expires_at) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at "
        "WHERE delivery_claims.expires_at <= ? RETURNING key",
        (claim.key, claim.expires_at, now),
    ).fetchone()
    return row is not None


def prune_claims(db: sqlite3.Connection, now: float) -> None:
    """Forgets the claims that expired."""
    db.execute("DELETE FROM delivery_claims WHERE expires_at <= ?", (now,))
