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

:func:`limit_options` (``security.limits``): keepalive enforcement (a client that
pings more often than allowed while no data flows collects strikes and is sent
GOAWAY ``too_many_pings``), the server's own keepalive pings (a client that
vanished without a FIN is dropped, and its Subscribe streams with it), and a
maximum connection age: connections are closed gracefully (GOAWAY, in-flight
calls get the grace) so load spreads after a scale-out and long-lived clients
re-handshake, which re-checks their certificates. And how many connections may be open
(``grpc.max_allowed_incoming_connections``: core closes one more as it is accepted).

``grpc.compression_enabled_algorithms_bitset``: identity only, unless
``grpc.accept_compressed_requests``. gRPC core checks ``grpc.max_receive_message_length``
against the compressed size, inflates the whole message, and only then refuses it
as too large (grpc/grpc pull request 41996 proposed a check while inflating; it was
closed). Measured with grpcio 1.75.1: 1 MB of gzip (1 GB of zeros) cost the server 4.8 s of CPU,
1 GB of memory and a 4.8 s stall of its event loop, before any interceptor saw the
call. With the algorithm disabled, core ends such a call UNIMPLEMENTED ("Compression
algorithm 'gzip' is disabled") without inflating it.

``grpc.max_concurrent_streams`` (``max_streams_per_connection``, off by default): a call
waiting for its request message holds ~11 KB of the server before the authorization gate
can run, and a client may open any number on one connection. Off because a burst larger
than the cap gets many calls refused (REFUSED_STREAM) instead of queued by C-core clients
(556 of 1,500 at 256 on a plain grpc.aio server; 1,183 with grpcio 1.85.3). The adapter
ends error calls without ``context.abort``, which grpcio 1.75.1 can leave counted against
this limit (adapter/status/call_ending.py), so the cap is safe to turn on.
"""

from __future__ import annotations

from adapter.config.security import LimitsSettings
from adapter.config.settings import GrpcSettings

__all__ = ["limit_options", "server_options"]

# grpc_compression_algorithm bits: identity, deflate, gzip.
_IDENTITY = 0b001
_ALL_ALGORITHMS = 0b111


def server_options(settings: GrpcSettings) -> list[tuple[str, int]]:
    """Channel arguments for ``grpc.aio.server(options=...)``."""
    return [
        ("grpc.max_receive_message_length", settings.max_receive_message_bytes),
        # Off unless this is one of several workers: another process on the port is a mistake.
        ("grpc.so_reuseport", int(settings.reuse_port)),
        ("grpc.server.max_pending_requests", settings.max_pending_calls),
        ("grpc.server.max_pending_requests_hard_limit", settings.max_pending_calls),
        (
            "grpc.compression_enabled_algorithms_bitset",
            _ALL_ALGORITHMS if settings.accept_compressed_requests else _IDENTITY,
        ),
    ]


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def limit_options(limits: LimitsSettings) -> list[tuple[str, int]]:
    """Channel arguments of ``security.limits`` (grpc core's names)."""
    options = [
        ("grpc.http2.min_ping_interval_without_data_ms", _ms(limits.min_client_ping_interval_seconds)),
        ("grpc.http2.max_ping_strikes", limits.max_ping_strikes),
        ("grpc.keepalive_permit_without_calls", int(limits.permit_keepalive_without_calls)),
        ("grpc.keepalive_time_ms", _ms(limits.keepalive_time_seconds)),
        ("grpc.keepalive_timeout_ms", _ms(limits.keepalive_timeout_seconds)),
        # The server's pings go on while a Subscribe stream is quiet (0 = no cap).
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.server_handshake_timeout_ms", _ms(limits.handshake_timeout_seconds)),
    ]
    if limits.max_streams_per_connection:
        options.append(("grpc.max_concurrent_streams", limits.max_streams_per_connection))
    if limits.max_connections:
        options.append(("grpc.max_allowed_incoming_connections", limits.max_connections))
    if limits.max_connection_age_seconds > 0:
        options += [
            ("grpc.max_connection_age_ms", _ms(limits.max_connection_age_seconds)),
            ("grpc.max_connection_age_grace_ms", _ms(limits.max_connection_age_grace_seconds)),
        ]
    return options
