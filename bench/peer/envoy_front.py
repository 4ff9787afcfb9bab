"""The Envoy front's own ceiling: every GetDevice answered with the fixed Device
behind Envoy, by the shipped front's gRPC-over-ASGI (:class:`UnaryFront`), as
``bench/peer/ceiling.py`` answers it on grpc.aio: what the front alone costs.

Run by ``python -m bench.peer.front`` as ``pyvoy bench.peer.envoy_front:app``. The
adapter itself behind Envoy is ``python -m adapter`` with ``grpc.front = "envoy"``.
"""

from __future__ import annotations

from typing import Any

from adapter.server.envoy_front import CallDetails, UnaryFront
from adapter.server.envoy_front.abandoned_calls import Receive
from adapter.server.envoy_front.grpc_over_asgi import Scope, Send
from bench.peer.__main__ import BODY
from bench.peer.ceiling import fixed_device, handler

__all__ = ["app"]

_METHOD = "/openframe.v1.DeviceService/GetDevice"


def _ceiling_front() -> UnaryFront:
    generic = handler(fixed_device(BODY))
    method = generic.service(CallDetails(_METHOD, ()))  # type: ignore[arg-type]
    return UnaryFront({_METHOD: method}, (), max_message_bytes=4 * 1024 * 1024, accept_compressed=False)


class _App:
    def __init__(self) -> None:
        self._front = _ceiling_front()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        elif scope["type"] == "http":
            await self._front(scope, receive, send)


app: Any = _App()
