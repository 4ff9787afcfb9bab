"""Wire-format helpers shared by every endpoint: JSON, timestamps, ids."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

JSON_CONTENT_TYPE = "application/json"

JsonObject = dict[str, Any]


def dumps(value: object) -> bytes:
    """Serialises to compact JSON bytes (what goes on the wire)."""
    return orjson.dumps(value)


def json_response(value: object, *, status: int = 200) -> web.Response:
    """A JSON answer with the given status."""
    return web.Response(body=dumps(value), status=status, content_type=JSON_CONTENT_TYPE)


def format_timestamp(moment: datetime, *, millis: bool = False) -> str:
    """RFC 3339 in UTC with a `Z` suffix: ``2026-11-25T12:00:00Z`` (or ``...:00.123Z``)."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if millis:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


def parse_timestamp(text: str) -> datetime:
    """Parses an RFC 3339 timestamp (ValueError when it is not one); naive means UTC."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def now_timestamp() -> str:
    """The current time as a wire timestamp, with milliseconds."""
    return format_timestamp(utc_now(), millis=True)


def later_timestamp(previous: str | None) -> str:
    """Now, or 1 ms after `previous` if that is not earlier: `updated_at` strictly grows."""
    now = utc_now()
    if previous:
        try:
            floor = parse_timestamp(previous) + timedelta(milliseconds=1)
        except ValueError:
            floor = now
        now = max(now, floor)
    return format_timestamp(now, millis=True)


def new_request_id() -> str:
    """A fresh `X-Request-Id` value: ``req_<hex>``."""
    return "req_" + secrets.token_hex(8)


def new_token(prefix: str) -> str:
    """An unguessable token with a readable prefix, e.g. ``ofat_...``."""
    return prefix + secrets.token_urlsafe(24)
