"""Descriptor sets named in configuration: loaded into the pool beside the generated
protos, each file once, and refused with a message naming the problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from adapter.descriptors.catalog import DescriptorSetError, load_descriptor_sets, proto_files
from adapter.descriptors.loader import import_generated_modules, load_service_specs

ROOT = Path(__file__).resolve().parents[2]
ACME = ROOT / "tests" / "thirdvendor" / "protos"


def compile_set(out: Path, *, include_imports: bool) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ACME}",
            f"-I{ROOT / 'protos'}",
            f"-I{ROOT / 'third_party'}",
            *(["--include_imports"] if include_imports else []),
            f"--descriptor_set_out={out}",
            "acme/v1/shipments.proto",
        ],
        check=True,
        capture_output=True,
    )
    return out


def test_a_set_adds_its_services_once(tmp_path: Path) -> None:
    path = compile_set(tmp_path / "acme.binpb", include_imports=True)
    files = proto_files([path, path])  # named twice: loaded once
    names = [f.name for f in files]
    assert names.count("acme/v1/shipments.proto") == 1
    assert len(names) == len(set(names))
    assert set(names) >= {f.name for f in import_generated_modules()}
    specs = {s.name: s for s in load_service_specs(files=files)}
    acme = specs["acme.v1.ShipmentService"]
    assert acme.upstream == "acme"
    assert {m.name for m in acme.methods} == {
        "CreateShipment",
        "GetShipment",
        "ListShipments",
        "DeliverShipment",
    }
    assert "acme.v1.ShipmentService" not in {s.name for s in load_service_specs()}  # default: generated only


def test_unreadable_sets_are_named(tmp_path: Path) -> None:
    with pytest.raises(DescriptorSetError, match="cannot read"):
        load_descriptor_sets([tmp_path / "missing.binpb"])
    garbage = tmp_path / "garbage.binpb"
    garbage.write_bytes(b"\xff\xff\xff not a descriptor set")
    with pytest.raises(DescriptorSetError, match="not a FileDescriptorSet"):
        load_descriptor_sets([garbage])


def test_a_set_without_its_imports_says_so(tmp_path: Path) -> None:
    # A file importing something neither the set nor the pool holds.
    orphan = tmp_path / "orphan"
    (orphan / "orphan" / "v1").mkdir(parents=True)
    (orphan / "orphan" / "v1" / "dep.proto").write_text(
        'syntax = "proto3";\npackage orphan.v1;\nmessage Dep {}\n'
    )
    (orphan / "orphan" / "v1" / "use.proto").write_text(
        'syntax = "proto3";\npackage orphan.v1;\nimport "orphan/v1/dep.proto";\n'
        "message Use { Dep dep = 1; }\n"
    )
    out = tmp_path / "orphan.binpb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{orphan}",
            f"--descriptor_set_out={out}",
            "orphan/v1/use.proto",
        ],
        check=True,
        capture_output=True,
    )
    with pytest.raises(DescriptorSetError, match="--include_imports"):
        load_descriptor_sets([out])
