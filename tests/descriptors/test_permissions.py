"""Every served RPC declares a permission that says what it does; a served method
without one stops the adapter's start."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from meshadapter.options.v1 import options_pb2

from adapter.descriptors.loader import import_generated_modules
from adapter.descriptors.method_spec import SpecError
from adapter.descriptors.permissions import (
    HEALTH_SERVICE,
    REFLECTION_PERMISSION,
    REFLECTION_SERVICES,
    served_permissions,
)
from adapter.runtime import MeshAdapter
from simulator import Simulator
from tests.conftest import adapter_settings

# The verb a permission ends with, by what the RPC does upstream.
VERB_OF_HTTP = {"GET": "read", "DELETE": "delete", "POST": "write", "PUT": "write", "PATCH": "write"}


def _every_service() -> list[tuple[str, str]]:
    """(service, upstream) of every service in the protos ("" = the adapter's own)."""
    out = []
    for file in import_generated_modules():
        for service in file.services_by_name.values():
            opts = service.GetOptions()
            has = opts.HasExtension(options_pb2.service)
            out.append((service.full_name, opts.Extensions[options_pb2.service].upstream if has else ""))
    return out


def test_every_rpc_of_the_protos_declares_a_permission_fitting_what_it_does() -> None:
    services = _every_service()
    permissions = served_permissions([name for name, _ in services])
    pool = descriptor_pool.Default()
    checked = 0
    for name, upstream in services:
        for method in pool.FindServiceByName(name).methods:
            permission = permissions[f"/{name}/{method.name}"]
            if not upstream:
                assert permission == "events.subscribe", method.full_name
                checked += 1
                continue
            opts = method.GetOptions()
            if opts.HasExtension(options_pb2.graphql):
                mutation = opts.Extensions[options_pb2.graphql].document.lstrip().startswith("mutation")
                verb = "write" if mutation else "read"
            else:
                rule = opts.Extensions[annotations_pb2.http]
                verb = VERB_OF_HTTP[rule.WhichOneof("pattern").upper()]
            head, _, tail = permission.partition(".")
            assert head == upstream, f"{method.full_name}: {permission} is not under {upstream}"
            assert tail.count(".") == 1 and tail.endswith(f".{verb}"), f"{method.full_name}: {permission}"
            checked += 1
    assert checked == len(permissions) >= 38  # both vendors' RPCs and Subscribe


def test_reflection_is_a_permission_of_its_own_and_health_is_public() -> None:
    permissions = served_permissions([HEALTH_SERVICE, *REFLECTION_SERVICES])
    assert set(permissions.values()) == {REFLECTION_PERMISSION}
    assert not any(path.startswith(f"/{HEALTH_SERVICE}/") for path in permissions)


def _unguarded_service(package: str, permission: str = "") -> descriptor_pb2.FileDescriptorProto:
    """An openframe-backed service whose one method declares ``permission``."""
    fp = descriptor_pb2.FileDescriptorProto(
        name=f"{package.replace('.', '/')}.proto",
        package=package,
        syntax="proto3",
        dependency=[
            "google/api/annotations.proto",
            "google/protobuf/empty.proto",
            "meshadapter/options/v1/options.proto",
        ],
    )
    service = fp.service.add(name="OpenService")
    service.options.Extensions[options_pb2.service].upstream = "openframe"
    method = service.method.add(
        name="GetOpen", input_type=".google.protobuf.Empty", output_type=".google.protobuf.Empty"
    )
    method.options.Extensions[annotations_pb2.http].CopyFrom(http_pb2.HttpRule(get="/v1/open"))
    if permission:
        method.options.Extensions[options_pb2.method].permission = permission
    return fp


def _descriptor_set(tmp_path: Path, fp: descriptor_pb2.FileDescriptorProto) -> Path:
    path = tmp_path / "vendor.binpb"
    path.write_bytes(descriptor_pb2.FileDescriptorSet(file=[fp]).SerializeToString())
    return path


async def test_a_served_rpc_without_a_permission_stops_the_start(
    simulator: Simulator, tmp_path: Path
) -> None:
    path = _descriptor_set(tmp_path, _unguarded_service("unguarded.v1"))
    adapter = MeshAdapter(adapter_settings(simulator, descriptors={"descriptor_sets": [path]}))
    with pytest.raises(SpecError, match=r"unguarded\.v1\.OpenService\.GetOpen: no \(meshadapter"):
        await adapter.start()
    assert adapter.server is None or adapter.server.port == 0  # nothing listened


@pytest.mark.parametrize("bad", ["openframe.*.read", "OpenFrame.Alerts.Read", "read"])
def test_a_malformed_permission_is_refused(bad: str) -> None:
    package = f"malformed{abs(hash(bad))}.v1"
    descriptor_pool.Default().Add(_unguarded_service(package, bad))
    with pytest.raises(SpecError, match="not a lower-case dotted name"):
        served_permissions([f"{package}.OpenService"])
