"""The protos, read once: the files served, their upstream-backed services, the
event routes and the declared event sources. Everything else receives these
values; nothing below the composition root loads descriptors again."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.descriptor import FileDescriptor

from adapter.config.settings import Settings
from adapter.descriptors.catalog import proto_files
from adapter.descriptors.loader import ServiceSpec, load_service_specs
from adapter.descriptors.method_spec import MethodSpec, SpecError
from adapter.events.declarations import EventSourceDeclarations, load_event_sources
from adapter.events.routing import EventRoute, load_event_routes

__all__ = ["Catalog", "load_catalog"]


@dataclass(frozen=True)
class Catalog:
    files: tuple[FileDescriptor, ...]
    specs: tuple[ServiceSpec, ...]
    routes: tuple[EventRoute, ...]
    declarations: EventSourceDeclarations

    def methods_by_upstream(self) -> dict[str, list[MethodSpec]]:
        out: dict[str, list[MethodSpec]] = {}
        for spec in self.specs:
            out.setdefault(spec.upstream, []).extend(spec.methods)
        return out


def load_catalog(settings: Settings) -> Catalog:
    """Reads the protos (generated and configured descriptor sets); raises SpecError
    when a service needs an upstream the configuration lacks."""
    files = proto_files(settings.descriptors.descriptor_sets)
    specs = load_service_specs(files=files)
    missing = sorted({s.upstream for s in specs} - set(settings.upstreams))
    if missing:
        users = {m: [s.name for s in specs if s.upstream == m] for m in missing}
        raise SpecError(
            "; ".join(
                f"upstream {m!r} (used by {', '.join(users[m])}) is not configured: "
                f"set MESH_UPSTREAMS__{m.upper()}__BASE_URL and "
                f"MESH_UPSTREAMS__{m.upper()}__AUTH__API_KEY"
                for m in missing
            )
        )
    routes = load_event_routes(settings.events, files)
    declarations = load_event_sources(files, specs=specs, routes=routes)
    return Catalog(tuple(files), tuple(specs), tuple(routes), declarations)
