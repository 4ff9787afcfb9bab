"""List envelopes in the three paging styles of the contract.

| style    | request                      | `meta`                                     |
|----------|------------------------------|--------------------------------------------|
| `page`   | `page` (1-based), `per_page` | `{"page", "per_page", "total"}`            |
| `cursor` | `limit`, `cursor`            | `{"next_cursor": "<opaque>" or null}`      |
| `offset` | `skip`, `limit`              | `{"skip", "limit", "total"}`               |

Sizes default to 10. `per_page` above 100 is clamped to 100; `limit` above 100 is a 400.
Cursors encode the creation sequence of the last item served, so they stay valid while items
are added or deleted.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence

from simulator.config import PaginationStyle
from simulator.errors import ApiError, FieldIssue
from simulator.store import StoredItem
from simulator.wire import JsonObject

DEFAULT_SIZE = 10
MAX_SIZE = 100


def _int_param(query: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ApiError(
            400,
            f"Invalid query parameter {name!r}",
            details=[FieldIssue(name, f"must be an integer >= {minimum}")],
        )
    return value


def _limit(query: Mapping[str, str]) -> int:
    limit = _int_param(query, "limit", DEFAULT_SIZE, 1)
    if limit > MAX_SIZE:
        raise ApiError(
            400,
            "Invalid query parameter 'limit'",
            details=[FieldIssue("limit", f"must be at most {MAX_SIZE}")],
        )
    return limit


def encode_cursor(seq: int) -> str:
    """The opaque cursor that resumes after creation sequence `seq`."""
    return base64.urlsafe_b64encode(f"after:{seq}".encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> int:
    """The creation sequence a cursor resumes after (400 when it is not ours)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, seq = raw.partition(":")
        if prefix != "after":
            raise ValueError(raw)
        return int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(
            400, "Invalid cursor", details=[FieldIssue("cursor", "is not a valid cursor")]
        ) from None


def paginate(style: PaginationStyle, query: Mapping[str, str], items: Sequence[StoredItem]) -> JsonObject:
    """The list envelope ``{"data": [...], "meta": {...}}`` for one page of `items`."""
    if style == "page":
        page = _int_param(query, "page", 1, 1)
        per_page = min(_int_param(query, "per_page", DEFAULT_SIZE, 1), MAX_SIZE)
        start = (page - 1) * per_page
        chosen = items[start : start + per_page]
        meta: JsonObject = {"page": page, "per_page": per_page, "total": len(items)}
    elif style == "offset":
        skip = _int_param(query, "skip", 0, 0)
        limit = _limit(query)
        chosen = items[skip : skip + limit]
        meta = {"skip": skip, "limit": limit, "total": len(items)}
    else:
        limit = _limit(query)
        cursor = query.get("cursor")
        after = decode_cursor(cursor) if cursor else 0
        remaining = [i for i in items if i.seq > after]
        chosen = remaining[:limit]
        more = len(remaining) > limit
        meta = {"next_cursor": encode_cursor(chosen[-1].seq) if more else None}
    return {"data": [i.resource for i in chosen], "meta": meta}
