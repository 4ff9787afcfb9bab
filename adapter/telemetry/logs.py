"""Log set-up: text on a terminal, JSON lines for machines, and in both the trace and
span ids of the current span, so a log line leads to its trace.

JSON lines (python-json-logger) carry ``time``, ``level``, ``logger``, ``message``,
``trace_id``, ``span_id`` and any ``extra={...}`` fields of the call. Secrets never
reach the output: values that look like credentials (``Bearer ...``, ``api_key=...``)
are masked by :class:`SecretMaskingFilter`, a last line of defence behind the code's
own care (messages are rendered with redacted protos, settings hold ``SecretStr``).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Literal

from opentelemetry import trace
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

__all__ = ["SecretMaskingFilter", "TraceContextFilter", "configure_logging"]

LogFormat = Literal["auto", "text", "json"]
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(trace_suffix)s"
_SECRET_VALUE = re.compile(
    r"(?i)((?:api[_-]?key|access[_-]?token|refresh[_-]?token|client[_-]?secret|password|secret|token|"
    r"authorization)[\"']?\s*[:=]\s*[\"']?(?:bearer\s+|basic\s+)?|bearer\s+|basic\s+)([^\s\"',;&}]{4,})"
)


class TraceContextFilter(logging.Filter):
    """Adds ``trace_id``/``span_id`` of the current span (empty outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        trace_id = span_id = suffix = ""
        if context.is_valid:
            trace_id, span_id = f"{context.trace_id:032x}", f"{context.span_id:016x}"
            suffix = f" [trace_id={trace_id} span_id={span_id}]"
        # LogRecord takes extra attributes; these three are what the formats name.
        record.__dict__.update(trace_id=trace_id, span_id=span_id, trace_suffix=suffix)
        return True


class SecretMaskingFilter(logging.Filter):
    """Masks credential-looking values in the rendered message and its arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is the logging module's to report
            return True
        masked = _SECRET_VALUE.sub(lambda m: m.group(1) + "[REDACTED]", message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_HANDLER_NAME = "mesh-adapter"


def configure_logging(level: str, fmt: LogFormat = "auto", *, stream: object = None) -> None:
    """Installs one root handler that writes ``fmt`` to ``stream`` (stderr);
    ``auto`` is text on a terminal and JSON lines otherwise. Calling it again
    replaces that handler; handlers others installed (a test runner's, an
    embedding application's) are left alone."""
    out = stream if stream is not None else sys.stderr
    if fmt == "auto":
        fmt = "text" if getattr(out, "isatty", lambda: False)() else "json"
    handler = logging.StreamHandler(out)  # type: ignore[arg-type]
    handler.addFilter(TraceContextFilter())
    handler.addFilter(SecretMaskingFilter())
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(levelname)s %(name)s %(message)s %(trace_id)s %(span_id)s",
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp="time",  # ISO 8601, UTC
                reserved_attrs=[*RESERVED_ATTRS, "trace_suffix"],
            )
        )
    else:
        handler.setFormatter(logging.Formatter(_TEXT))
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
