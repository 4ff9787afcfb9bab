"""The permission each served RPC needs, read from the descriptors.

Every RPC declares one in ``(meshadapter.options.v1.method).permission``
(``<upstream>.<resource>.read|write|delete``). :func:`served_permissions` maps
each method the server will register to its permission, and refuses (SpecError
listing every offender) when a method declares none or a malformed one, so a new
RPC cannot be served open by forgetting it. Health is public; reflection, when
served, needs :data:`REFLECTION_PERMISSION`. ``EventService/Subscribe`` also
needs :func:`topic_permission` for each topic it streams.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from google.protobuf import descriptor as _d
from google.protobuf import descriptor_pool
from meshadapter.options.v1 import options_pb2

from .method_spec import SpecError

__all__ = [
    "HEALTH_SERVICE",
    "REFLECTION_PERMISSION",
    "REFLECTION_SERVICES",
    "declared_permission",
    "served_permissions",
    "topic_permission",
]

HEALTH_SERVICE = "grpc.health.v1.Health"
REFLECTION_SERVICES = ("grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection")
REFLECTION_PERMISSION = "meshadapter.reflection.read"
_REFLECTION_METHOD = "ServerReflectionInfo"

#: Lower-case dotted names; no glob characters (those belong in the policy).
_PERMISSION = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_-]+)+$")


def topic_permission(topic: str) -> str:
    """What ``EventService/Subscribe`` needs per topic (the topic as served)."""
    return f"events.{topic}.subscribe"


def declared_permission(method: _d.MethodDescriptor) -> str:
    """The method's declared permission, "" when none."""
    opts = method.GetOptions()
    if not opts.HasExtension(options_pb2.method):
        return ""
    return str(opts.Extensions[options_pb2.method].permission)


def served_permissions(
    service_names: Iterable[str], *, pool: descriptor_pool.DescriptorPool | None = None
) -> dict[str, str]:
    """``/pkg.Service/Method`` -> permission for every method of ``service_names``
    (health left out: public). Raises SpecError naming every method that lacks one."""
    pool = pool or descriptor_pool.Default()
    permissions: dict[str, str] = {}
    errors: list[str] = []
    for name in service_names:
        if name == HEALTH_SERVICE:
            continue
        if name in REFLECTION_SERVICES:
            permissions[f"/{name}/{_REFLECTION_METHOD}"] = REFLECTION_PERMISSION
            continue
        try:
            service = pool.FindServiceByName(name)
        except KeyError:
            errors.append(f"{name}: no such service in the descriptors")
            continue
        for method in service.methods:
            permission = declared_permission(method)
            if not permission:
                errors.append(f"{method.full_name}: no (meshadapter.options.v1.method).permission")
            elif not _PERMISSION.match(permission):
                errors.append(
                    f"{method.full_name}: permission {permission!r} is not a lower-case dotted name "
                    "such as openframe.alerts.read"
                )
            else:
                permissions[f"/{name}/{method.name}"] = permission
    if errors:
        listed = "\n  ".join(errors)
        raise SpecError(f"served RPCs without a valid permission (refusing to start):\n  {listed}")
    return permissions
