"""The caller's address behind the envoy front, as Envoy hands it on.

Calls Envoy routes to the grpc.aio server (health, reflection, the event stream)
arrive over its private Unix socket, so ``context.peer()`` names that socket, not the
caller: a refusal's audit line would name no one. Envoy writes the caller's address
into :data:`PEER_HEADER` on that route, over any value a caller sent
(adapter/server/envoy_front/envoy_config.py), so the header is trusted only on a call
that came over the Unix socket; a call from anywhere else keeps its own peer (the
front's calls carry their caller's address already).
"""

from __future__ import annotations

from typing import Any

__all__ = ["PEER_HEADER", "caller_peer"]

PEER_HEADER = "x-mesh-adapter-peer"


def caller_peer(context: Any) -> str:
    """``context.peer()`` in grpc's form (``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``), with the
    address Envoy forwarded in place of its Unix socket's."""
    peer: str = context.peer()
    if not peer.startswith("unix:"):
        return peer
    for key, value in context.invocation_metadata() or ():
        if key == PEER_HEADER:
            address = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            return f"ipv6:{address}" if address.startswith("[") else f"ipv4:{address}"
    return peer
