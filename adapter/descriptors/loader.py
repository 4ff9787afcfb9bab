"""Finds the services to serve: every generated proto module is imported, and
each service carrying a ``(meshadapter.options.v1.service)`` option is read
into :class:`~adapter.descriptors.method_spec.MethodSpec` values.

Adding an endpoint is a proto change plus ``make codegen``: nothing here lists
services or methods.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf import descriptor as _d
from google.protobuf import descriptor_pool
from meshadapter.codegen import PACKAGES as GENERATED_PACKAGES
from meshadapter.options.v1 import options_pb2

from .method_spec import MethodSpec, SpecError, method_spec

__all__ = ["ServiceSpec", "import_generated_modules", "load_service_specs", "rest_paths_by_upstream"]


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    upstream: str
    methods: tuple[MethodSpec, ...]
    descriptor: _d.ServiceDescriptor


def import_generated_modules() -> list[_d.FileDescriptor]:
    """Imports every ``*_pb2`` module of the generated packages; returns their files.

    The packages are the ones ``make codegen`` names, not every package beside them:
    installed as a wheel they sit in site-packages, where a scan would import everything.
    """
    files: list[_d.FileDescriptor] = []
    for package in GENERATED_PACKAGES:
        pkg = importlib.import_module(package)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
            if info.name.endswith("_pb2"):
                module = importlib.import_module(info.name)
                files.append(module.DESCRIPTOR)
    return files


def load_service_specs(
    pool: descriptor_pool.DescriptorPool | None = None,
    *,
    files: Sequence[_d.FileDescriptor] | None = None,
) -> list[ServiceSpec]:
    """Specs of every upstream-backed service of ``files`` (default: the generated
    ones; see :func:`adapter.descriptors.catalog.proto_files`), sorted by name."""
    if files is None:
        files = import_generated_modules()
    pool = pool or descriptor_pool.Default()
    specs: list[ServiceSpec] = []
    errors: list[str] = []
    for file in files:
        for service in pool.FindFileByName(file.name).services_by_name.values():
            opts = service.GetOptions()
            if not opts.HasExtension(options_pb2.service):
                continue
            upstream = opts.Extensions[options_pb2.service].upstream
            if not upstream:
                errors.append(f"{service.full_name}: the service option names no upstream")
                continue
            methods = []
            for method in service.methods:
                try:
                    methods.append(method_spec(method, upstream))
                except SpecError as exc:
                    errors.append(str(exc))
            specs.append(ServiceSpec(service.full_name, upstream, tuple(methods), service))
    if errors:
        raise SpecError("invalid proto annotations:\n  " + "\n  ".join(errors))
    return sorted(specs, key=lambda s: s.name)


@functools.cache
def rest_paths_by_upstream() -> dict[str, tuple[str, ...]]:
    """Path templates of every REST method, by upstream (GraphQL methods left out)."""
    paths: dict[str, list[str]] = {}
    for service in load_service_specs():
        for method in service.methods:
            if method.graphql is None:
                paths.setdefault(service.upstream, []).append(method.template.text)
    return {name: tuple(found) for name, found in paths.items()}
