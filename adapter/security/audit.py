"""The audit trail: one structured log line (logger ``meshadapter.audit``) per write
or delete RPC and per refused call, with the principal, the method, the upstream
path the call reached, the outcome and the trace id. Never a secret: request
bodies are not logged, and principals are names, not credentials.

The upstream path is known deep in the handler; the handler reports it through
:func:`note_upstream_path` (a context variable), so the gate that writes the line
needs no access to the handler's internals.
"""

from __future__ import annotations

import contextvars
import logging
from dataclasses import dataclass

from .identity import Principal

__all__ = ["AuditLog", "AuditRecord", "note_upstream_path"]

audit_logger = logging.getLogger("meshadapter.audit")

_READ_SUFFIXES = (".read", ".list", ".get", ".subscribe")


@dataclass(slots=True)
class AuditRecord:
    upstream_path: str = ""


_record: contextvars.ContextVar[AuditRecord | None] = contextvars.ContextVar(
    "mesh_adapter_audit", default=None
)


def note_upstream_path(path: str) -> None:
    """Called by a handler once it knows the vendor path of the call."""
    record = _record.get()
    if record is not None:
        record.upstream_path = path


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
            "audit: %s called %s -> %s (upstream %s)",
            principal.name,
            method,
            outcome,
            record.upstream_path or "-",
            extra={
                "audit": "call",
                "principal": principal.name,
                "principal_source": principal.source,
                "peer": principal.peer,
                "method": method,
                "upstream_path": record.upstream_path,
                "outcome": outcome,
            },
        )

    def refused(self, *, method: str, principal: str, code: str, reason: str) -> None:
        audit_logger.warning(
            "audit: refused %s to %s: %s (%s)",
            method,
            principal,
            code,
            reason,
            extra={
                "audit": "refused",
                "principal": principal,
                "method": method,
                "outcome": code,
                "reason": reason,
            },
        )
