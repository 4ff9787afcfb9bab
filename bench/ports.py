"""Loopback ports for the processes a bench (or a test) starts and then tells
where to listen."""

from __future__ import annotations

import random
import socket

__all__ = ["listen_port"]

# Ports the kernel never picks as the source port of an outgoing connection sit below
# ip_local_port_range (32768-60999 by default). A port asked of the kernel with bind(0)
# comes from that very range: between the test closing it and the adapter binding it,
# one of the adapter's own Kafka or upstream connections can take it as its source port
# (seen in CI: "Failed to bind to address"). The test brokers listen below 20000.
_LISTEN_RANGE = range(20000, 32000)
_handed_out: set[int] = set()


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def listen_port(*, consecutive: int = 1) -> int:
    """A loopback port (and its ``consecutive - 1`` successors) free now, outside the
    ephemeral range, and never handed out before by this test process."""
    for _ in range(200):
        port = random.choice(_LISTEN_RANGE)
        wanted = range(port, port + consecutive)
        if _handed_out.intersection(wanted) or not all(_bindable(p) for p in wanted):
            continue
        _handed_out.update(wanted)
        return port
    raise RuntimeError(f"no {consecutive} free consecutive ports in {_LISTEN_RANGE}")
