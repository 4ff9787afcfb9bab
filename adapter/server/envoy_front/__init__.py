"""The envoy front (``grpc.front = "envoy"``): Envoy answers the gRPC port, the
adapter's unary calls run in an interpreter embedded in Envoy (pyvoy), the rest is
routed to its grpc.aio server. docs/envoy-front.md says what it buys and what it
does not do yet.

- :mod:`.grpc_over_asgi`: unary gRPC over ASGI, running the adapter's handlers;
- :mod:`.embedded`: the ASGI application inside Envoy (starts and stops the adapter);
- :mod:`.envoy_config`: Envoy's bootstrap from the settings;
- :mod:`.process`: ``python -m adapter`` starting and supervising Envoy;
- :mod:`.pyvoy_compat`: what is taken from pyvoy beyond its public API.
"""

from .grpc_over_asgi import CallContext, CallDetails, UnaryFront

__all__ = ["CallContext", "CallDetails", "UnaryFront"]
