"""The audit trail: one structured log line (logger ``meshadapter.audit``) per write
or delete RPC and per refused call, with the principal, the method, the upstream
path the call reached, the outcome and the trace id. Never a secret: request
bodies are not logged, and principals are names, not credentials.

The upstream path and the call's trace are known deep in the handler; the handler
reports them through :func:`note_upstream_path` and :func:`note_trace_id` (a
context variable), so the gate that writes the line needs no access to the
handler's internals. A refused call never reaches a handler: its trace id is the
caller's (``traceparent`` metadata), or ``-``.
"""

from __future__ import annotations

import contextvars
import logging
from dataclasses import dataclass

from .identity import Principal

__all__ = ["AuditLog", "AuditRecord", "note_trace_id", "note_upstream_path", "trace_id_of"]

audit_logger = logging.getLogger("meshadapter.audit")

_READ_SUFFIXES = (".read", ".list", ".get", ".subscribe")


@dataclass(slots=True)
class AuditRecord:
    upstream_path: str = ""
    trace_id: str = ""


_record: contextvars.ContextVar[AuditRecord | None] = contextvars.ContextVar(
    "mesh_adapter_audit", default=None
)


def note_upstream_path(method: str, path: str, route: str = "") -> None:
    """Called by a handler once it knows the vendor path of the call (``GET /v1/x``, and
    the route in parentheses when given); written out only when the call is audited."""
    record = _record.get()
    if record is not None:
        record.upstream_path = f"{method} {path} ({route})" if route else f"{method} {path}"


def note_trace_id(trace_id: int) -> None:
    """Called by a handler with its server span's trace id; kept as 32 hex digits only
    when the call is audited."""
    record = _record.get()
    if record is not None:
        record.trace_id = format(trace_id, "032x")


def trace_id_of(traceparent: str | None) -> str:
    """The trace id of a W3C ``traceparent`` (``00-<trace id>-<span id>-<flags>``), or ""."""
    parts = (traceparent or "").split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and all(c in "0123456789abcdef" for c in parts[1]):
        return parts[1]
    return ""


class AuditLog:
    """Writes the audit lines."""

    def is_audited(self, permission: str) -> bool:
        """Writes and deletes are; reads are not (refusals always are)."""
        return bool(permission) and not permission.endswith(_READ_SUFFIXES)

    def begin(self) -> AuditRecord:
        record = AuditRecord()
        _record.set(record)
        return record

    def completed(self, record: AuditRecord, *, method: str, principal: Principal, outcome: str) -> None:
        audit_logger.info(
            "audit: %s called %s -> %s (upstream %s, trace %s)",
            principal.name,
            method,
            outcome,
            record.upstream_path or "-",
            record.trace_id or "-",
            extra={
                "audit": "call",
                "principal": principal.name,
                "principal_source": principal.source,
                "peer": principal.peer,
                "method": method,
                "upstream_path": record.upstream_path,
                "outcome": outcome,
                "audit_trace_id": record.trace_id,
            },
        )

    def refused(self, *, method: str, principal: str, code: str, reason: str, trace_id: str = "") -> None:
        """A refused call: no upstream path, since nothing was sent upstream."""
        audit_logger.warning(
            "audit: refused %s to %s: %s (%s, trace %s)",
            method,
            principal,
            code,
            reason,
            trace_id or "-",
            extra={
                "audit": "refused",
                "principal": principal,
                "method": method,
                "upstream_path": "",
                "outcome": code,
                "reason": reason,
                "audit_trace_id": trace_id,
            },
        )
