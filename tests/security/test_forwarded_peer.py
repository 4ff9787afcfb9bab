"""Which address a refusal names behind the envoy front (adapter/security/forwarded_peer.py)."""

from __future__ import annotations

import pytest

from adapter.security.forwarded_peer import caller_peer

SOCKET = "unix:/tmp/mesh-adapter-envoy-x/grpc.sock"

CASES = [
    # (the connection's peer, what Envoy forwarded or None, what a refusal names)
    (SOCKET, "127.0.0.1:5123", "ipv4:127.0.0.1:5123"),
    (SOCKET, "[::1]:5123", "ipv6:[::1]:5123"),
    ("unix:", None, "unix:"),  # nothing forwarded: the socket, as before
    ("ipv4:127.0.0.1:4000", "6.6.6.6:1", "ipv4:127.0.0.1:4000"),  # not from Envoy: ignored
    ("ipv6:[::1]:4000", "6.6.6.6:1", "ipv6:[::1]:4000"),
]


@pytest.mark.parametrize(("peer", "forwarded", "named"), CASES)
def test_caller_peer(peer: str, forwarded: str | None, named: str) -> None:
    assert caller_peer(peer, forwarded) == named
