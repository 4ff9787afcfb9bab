"""Log lines: JSON with the current span's ids, text on a terminal, secrets masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from adapter.telemetry.logs import configure_logging


@pytest.fixture(autouse=True)
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_carry_the_trace_of_the_current_span() -> None:
    out = io.StringIO()
    configure_logging("INFO", "auto", stream=out)  # not a terminal: JSON
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("call") as span:
        logging.getLogger("adapter.test").info("calling %s", "openframe", extra={"route": "/v1/devices"})
    logging.getLogger("adapter.test").warning("outside")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    context = span.get_span_context()
    assert first["trace_id"] == f"{context.trace_id:032x}" and first["span_id"] == f"{context.span_id:016x}"
    assert first["message"] == "calling openframe" and first["route"] == "/v1/devices"
    assert first["level"] == "INFO" and first["logger"] == "adapter.test" and "time" in first
    assert second["trace_id"] == "" and "trace_suffix" not in second


def test_text_on_a_terminal() -> None:
    out = Terminal()
    configure_logging("INFO", "auto", stream=out)
    logging.getLogger("adapter.test").info("hello")
    line = out.getvalue()
    assert " INFO adapter.test: hello" in line and not line.startswith("{")


@pytest.mark.parametrize(
    "message",
    [
        "Authorization: Bearer abcdefghijkl",
        "api_key=0123456789abcdef",
        "client_secret: 's3cr3t-value'",
        '{"password": "hunter2-value"}',
        "refresh_token=rt-0123456789",
    ],
)
def test_credentials_are_masked_in_both_formats(message: str) -> None:
    for fmt in ("json", "text"):
        out = io.StringIO()
        configure_logging("INFO", fmt, stream=out)  # type: ignore[arg-type]
        logging.getLogger("adapter.test").info("got %s", message)
        text = out.getvalue()
        assert "[REDACTED]" in text
        secret = message.split()[-1].strip("'\"}").split("=")[-1].strip("'\"")
        assert secret not in text, (fmt, text)
