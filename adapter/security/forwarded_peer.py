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

__all__ = ["PEER_HEADER", "caller_peer"]

PEER_HEADER = "x-mesh-adapter-peer"


def caller_peer(peer: str, forwarded: str | None) -> str:
    """``peer`` (grpc's form: ``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``), or, when it is the
    Unix socket and Envoy forwarded an address in :data:`PEER_HEADER`, that address."""
    if forwarded is None or not peer.startswith("unix:"):
        return peer
    return f"ipv6:{forwarded}" if forwarded.startswith("[") else f"ipv4:{forwarded}"
