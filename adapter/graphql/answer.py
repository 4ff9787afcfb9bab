"""Reads a GraphQL answer: ``{"data": ..., "errors": [{"message", "path", "extensions"}]}``.

Errors are read leniently (vendors put the code in ``extensions.code``, Apollo-style, or
``extensions.classification``, Spring-style; the culprit input in ``extensions.field`` or
``extensions.argumentName``); anything unreadable in an error still yields a message,
never an exception. Only a body that is not a GraphQL answer at all is malformed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from adapter.transcoding.json_values import MalformedPayloadError
from adapter.upstream.server_delay import delay_in_body

__all__ = ["GraphQLAnswer", "GraphQLErrorItem", "has_errors", "read_answer", "read_error_answer"]

_MAX_MESSAGE = 300
_JSON_TYPES = ("application/json", "application/graphql-response+json", "text/json")


@dataclass(frozen=True, slots=True)
class GraphQLErrorItem:
    """One entry of ``errors``."""

    message: str
    #: ``extensions.code`` (upper-case), ``""`` when the upstream gave none.
    code: str = ""
    #: Where in ``data`` it happened (``("pipeline", "automations")``); empty for request errors.
    path: tuple[str | int, ...] = ()
    #: The input at fault, when the upstream names it (``extensions.field``).
    field: str = ""
    #: Seconds the upstream asks to wait (``extensions.retryAfter``), not yet clamped to
    #: the upstream's ``max_server_delay`` (the status does that).
    retry_after: float | None = None

    @property
    def dotted_path(self) -> str:
        """``pipeline.recent_tasks[0].result``."""
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out


@dataclass(frozen=True, slots=True)
class GraphQLAnswer:
    """A parsed answer. ``data`` is None when the upstream sent none (or null)."""

    data: dict[str, Any] | None
    errors: tuple[GraphQLErrorItem, ...] = ()

    def has_code(self, *codes: str) -> bool:
        return any(e.code in codes for e in self.errors)


def _error(item: Any) -> GraphQLErrorItem:
    if not isinstance(item, dict):
        return GraphQLErrorItem(message=str(item)[:_MAX_MESSAGE])
    extensions = item.get("extensions")
    ext: dict[str, Any] = extensions if isinstance(extensions, dict) else {}
    code = ext.get("code") or ext.get("classification") or ""
    path = item.get("path")
    field = ext.get("field") or ext.get("argumentName") or ""
    return GraphQLErrorItem(
        message=str(item.get("message") or "")[:_MAX_MESSAGE],
        code=str(code).upper() if isinstance(code, str) else "",
        path=tuple(p for p in path if isinstance(p, str | int)) if isinstance(path, list) else (),
        field=field if isinstance(field, str) else "",
        retry_after=delay_in_body(ext.get("retryAfter", ext.get("retry_after"))),
    )


def _document(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def read_answer(body: bytes, content_type: str) -> GraphQLAnswer:
    """The answer of a 2xx; raises MalformedPayloadError when it is not one."""
    if content_type and content_type not in _JSON_TYPES and not content_type.endswith("+json"):
        raise MalformedPayloadError("", f"expected a GraphQL JSON answer, got {content_type}")
    doc = _document(body)
    if not isinstance(doc, dict) or not ("data" in doc or "errors" in doc):
        raise MalformedPayloadError("", "not a GraphQL answer (no data, no errors)")
    errors = doc.get("errors")
    if errors is not None and not isinstance(errors, list):
        raise MalformedPayloadError("errors", "expected an array")
    data = doc.get("data")
    if data is not None and not isinstance(data, dict):
        raise MalformedPayloadError("data", "expected an object")
    return GraphQLAnswer(data=data, errors=tuple(_error(e) for e in errors or ()))


def read_error_answer(body: bytes) -> GraphQLAnswer | None:
    """The GraphQL errors of a non-2xx answer, None when it carries none (a proxy's page,
    a REST-style error body)."""
    doc = _document(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("errors"), list) or not doc["errors"]:
        return None
    data = doc.get("data")
    return GraphQLAnswer(
        data=data if isinstance(data, dict) else None, errors=tuple(map(_error, doc["errors"]))
    )


def has_errors(body: bytes) -> bool:
    """Whether a 2xx answer reports errors (such an answer is never cached)."""
    if b'"errors"' not in body:
        return False
    doc = _document(body)
    return not isinstance(doc, dict) or bool(doc.get("errors"))
