"""gRPC core options of the adapter's server, each with the reason it is set.

``grpc.server.max_pending_requests`` (core default 1000, hard limit 3000):
calls the HTTP/2 transport accepted but the asyncio server has not picked up
yet wait in a backlog. The asyncio server picks them up one per event-loop turn,
so a burst of a thousand calls fills it. Past the soft limit core drops new
calls at random (random early detection up to the hard limit), and in the
filter-stack server grpc-python runs a dropped call is unreffed before it
starts: the client gets ``CANCELLED`` "CANCELLED" with no details, and the
adapter never sees the call (issue 7, item 8). The adapter sets both limits to
``grpc.max_pending_calls``: below it nothing is dropped, and a call that waits
too long in the backlog ends ``DEADLINE_EXCEEDED`` on its own deadline. The
requests themselves stay bounded by HTTP/2 flow control, not by this count.
"""

from __future__ import annotations

from adapter.config.settings import GrpcSettings

__all__ = ["server_options"]


def server_options(settings: GrpcSettings) -> list[tuple[str, int]]:
    """Channel arguments for ``grpc.aio.server(options=...)``."""
    return [
        ("grpc.max_receive_message_length", settings.max_receive_message_bytes),
        ("grpc.so_reuseport", 0),
        ("grpc.server.max_pending_requests", settings.max_pending_calls),
        ("grpc.server.max_pending_requests_hard_limit", settings.max_pending_calls),
    ]
