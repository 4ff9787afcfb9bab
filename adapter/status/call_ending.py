"""Ending a call with an error status, without ``context.abort``.

With grpcio 1.75.1 (to 1.78.0; 1.80.0 no longer does it) a call ended by
``context.abort`` or ``abort_with_status`` can stay counted against the connection's
``grpc.max_concurrent_streams``: with a limit of 5, the 7th aborted call on a
connection, and every call after it, was refused (RST_STREAM REFUSED_STREAM,
UNAVAILABLE), for good. A status set on the context, the handler then returning,
frees the stream (``tests/server/test_grpc_stream_limit.py`` watches both). So every
error the adapter answers is ended here (one exception: a broken request in the middle
of a request stream, adapter/server/request_decoding.py): the caller gets the same status, message and
rich details (the ``grpc-status-details-bin`` trailer), and the connection's streams
can be capped (``security.limits.max_streams_per_connection``).

The handler must return right after: a unary one returns None (grpc.aio sends no
message when the code is not OK), a streaming one stops yielding.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import status_pb2
from grpc_status import rpc_status

__all__ = ["end_call"]


def end_call(context: Any, status: grpc.Status | status_pb2.Status) -> None:
    """Sets ``status`` as the call's final status (code, message, rich details)."""
    if isinstance(status, status_pb2.Status):
        status = rpc_status.to_status(status)
    context.set_code(status.code)
    context.set_details(status.details)
    context.set_trailing_metadata(status.trailing_metadata)
