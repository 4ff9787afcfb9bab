"""Reads the error bodies vendors send, whatever their shape.

OpenFrame is flat (``{"error": "code", "message": ..., "errors": [...]}``),
OCTOSPINE nests (``{"error": {"code": ..., "message": ..., "details": [...],
"retryAfter": 30}}``); proxies send HTML. Anything unreadable still yields a
usable message, never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from adapter.upstream.server_delay import delay_in_body, parse_retry_after

__all__ = ["VendorError", "parse_retry_after", "parse_vendor_error"]

_MAX_MESSAGE = 300
_TAGS = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class VendorError:
    """What an upstream said about a failure."""

    code: str = ""
    message: str = ""
    #: ``(field, description)`` pairs from a validation failure.
    violations: list[tuple[str, str]] = field(default_factory=list)
    #: Seconds the body asks the client to wait (``retryAfter``), if any.
    retry_after: float | None = None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _violations(items: Any) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if isinstance(items, list):
        for item in items:
            if not isinstance(item, dict):
                continue
            name = item.get("field") or item.get("param") or item.get("path")
            loc = item.get("loc")
            if not name and isinstance(loc, list):  # FastAPI/pydantic: ["body", "title"]
                name = ".".join(str(p) for p in loc if p != "body")
            text = item.get("message") or item.get("issue") or item.get("description") or item.get("msg")
            if name:
                out.append((_text(name), _text(text) or "is invalid"))
    elif isinstance(items, dict):  # Rails style: {"title": ["can't be blank"]}
        for name, msgs in items.items():
            text = "; ".join(_text(m) for m in msgs) if isinstance(msgs, list) else _text(msgs)
            out.append((_text(name), text or "is invalid"))
    return out


def parse_vendor_error(body: bytes, content_type: str) -> VendorError:
    """Best-effort reading of an error body."""
    doc: Any = None
    if body.strip():
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None
    if not isinstance(doc, dict):
        text = body[:4096].decode("utf-8", "replace")
        if "html" in content_type or text.lstrip().startswith("<"):
            text = _TAGS.sub(" ", text)
        text = _SPACES.sub(" ", text).strip()
        return VendorError(message=text[:_MAX_MESSAGE])

    err = doc.get("error")
    if isinstance(err, dict):  # nested (OCTOSPINE, Google-style)
        return VendorError(
            code=_text(err.get("code") or err.get("status") or err.get("type")),
            message=_text(err.get("message"))[:_MAX_MESSAGE],
            violations=_violations(err.get("details") or err.get("errors") or err.get("fields")),
            retry_after=delay_in_body(err.get("retryAfter", err.get("retry_after"))),
        )
    detail = doc.get("detail")
    return VendorError(  # flat (OpenFrame) and FastAPI-like
        code=_text(err or doc.get("code")),
        message=_text(doc.get("message") or (detail if isinstance(detail, str) else ""))[:_MAX_MESSAGE],
        violations=_violations(
            doc.get("errors") or doc.get("details") or (detail if isinstance(detail, list) else None)
        ),
        retry_after=delay_in_body(doc.get("retryAfter", doc.get("retry_after"))),
    )
