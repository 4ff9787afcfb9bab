"""Prints generated/pyproject.toml: the generated stubs as a package of their own.

``pip install ./generated`` gives Python consumers the messages and gRPC stubs
(``openframe.v1``, ``octospine.v1``, ``meshadapter.v1``) without the adapter.
Its version follows the project's; its requirements are what the generated
code imports at run time. Run by scripts/codegen.sh.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {d.split("=")[0].split(">")[0].split("<")[0]: d for d in project["dependencies"]}
    grpcio = pins["grpcio"].split("==")[-1]
    print(
        f'''# Written by scripts/codegen.sh (scripts/client_package.py): do not edit.
# The generated stubs as a package of their own: pip install ./generated
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "mesh-adapter-client"
version = "{project["version"]}"
description = "Messages and gRPC stubs of the mesh-adapter API (generated from its protos)"
requires-python = "{project["requires-python"]}"
dependencies = [
    # The _pb2_grpc modules refuse an older grpcio than the one that generated them.
    "grpcio>={grpcio}",
    "{pins["protobuf"]}",
    # google.api annotations and google.rpc error details.
    "{pins["googleapis-common-protos"]}",
]

[tool.setuptools.packages.find]
where = ["."]
include = ["openframe*", "octospine*", "meshadapter*"]

[tool.setuptools.package-data]
"*" = ["py.typed", "*.pyi"]
''',
        end="",
    )


if __name__ == "__main__":
    main()
