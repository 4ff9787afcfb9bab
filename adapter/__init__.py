"""mesh-adapter: one gRPC + Kafka front for the OpenFrame and OCTOSPINE APIs.

The public surface, for embedding the adapter in another program or a test::

    from adapter import MeshAdapter, load_settings

    async with MeshAdapter(load_settings()) as mesh:
        await mesh.wait_for_termination()

Layout: ``descriptors`` reads the protos, ``transcoding`` maps messages to REST
calls and back (``graphql`` to GraphQL operations), ``upstream`` talks HTTP,
``resilience`` and ``auth`` wrap it, ``status`` maps failures to gRPC statuses,
``server`` serves gRPC, ``events`` carries vendor events to Kafka, ``telemetry``
traces and measures.
"""

from __future__ import annotations

from adapter.config.settings import ConfigError, Settings, load_settings
from adapter.runtime import MeshAdapter
from adapter.server.app import AdapterServer

__all__ = ["AdapterServer", "ConfigError", "MeshAdapter", "Settings", "load_settings"]
