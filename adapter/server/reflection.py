"""Server reflection that also resolves method names.

grpcio-reflection asks the descriptor pool for the file containing a symbol,
and the upb pool does not know method names, so ``grpcurl describe
pkg.Service.Method`` fails with "Symbol not found" (grpc/grpc issue #34743,
open). This subclass falls back to the method's service, which is the file a
client needs anyway; everything else is the library's.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

__all__ = ["enable_reflection"]


class _MethodAwareReflectionServicer(reflection.aio.ReflectionServicer):  # type: ignore[misc,name-defined]
    def _file_containing_symbol(self, request: Any, fully_qualified_name: str) -> Any:
        response = super()._file_containing_symbol(request, fully_qualified_name)
        if response.WhichOneof("message_response") != "error_response":
            return response
        service, _, method = fully_qualified_name.rpartition(".")
        try:
            found = self._pool.FindServiceByName(service)
        except KeyError:
            return response
        if method in found.methods_by_name:
            return super()._file_containing_symbol(request, service)
        return response


def enable_reflection(service_names: list[str], server: Any) -> None:
    """Registers reflection for ``service_names`` on an aio server (or what stands in
    for one while services register, adapter/server/method_table.py)."""
    servicer = _MethodAwareReflectionServicer(service_names, pool=descriptor_pool.Default())
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
