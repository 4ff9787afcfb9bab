"""Which address a refusal names behind the envoy front (adapter/security/forwarded_peer.py)."""

from __future__ import annotations

import pytest

from adapter.security.forwarded_peer import PEER_HEADER, caller_peer


class _Context:
    def __init__(self, peer: str, metadata: tuple[tuple[str, str | bytes], ...]) -> None:
        self._peer, self._metadata = peer, metadata

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._metadata


CASES = [
    # (the connection's peer, the header's value or None, what a refusal names)
    ("unix:/tmp/mesh-adapter-envoy-x/grpc.sock", "127.0.0.1:5123", "ipv4:127.0.0.1:5123"),
    ("unix:/tmp/mesh-adapter-envoy-x/grpc.sock", "[::1]:5123", "ipv6:[::1]:5123"),
    ("unix:/tmp/mesh-adapter-envoy-x/grpc.sock", b"10.0.0.7:80", "ipv4:10.0.0.7:80"),
    ("unix:", None, "unix:"),  # nothing forwarded: the socket, as before
    ("ipv4:127.0.0.1:4000", "6.6.6.6:1", "ipv4:127.0.0.1:4000"),  # not from Envoy: the header is ignored
    ("ipv6:[::1]:4000", "6.6.6.6:1", "ipv6:[::1]:4000"),
]


@pytest.mark.parametrize(("peer", "header", "named"), CASES)
def test_caller_peer(peer: str, header: str | bytes | None, named: str) -> None:
    metadata = (("user-agent", "grpc-go"),) + (((PEER_HEADER, header),) if header is not None else ())
    assert caller_peer(_Context(peer, metadata)) == named
