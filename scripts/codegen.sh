#!/usr/bin/env bash
# Regenerates, from protos/, everything derived from them (deterministic, so CI can
# regenerate and fail on any diff: `make check`):
#   generated/                 messages (_pb2.py), gRPC stubs (_pb2_grpc.py), typed stubs
#                              (.pyi, mypy-protobuf, async-aware), and pyproject.toml: the
#                              stubs install on their own as `mesh-adapter-client`;
#   generated/mesh_adapter.binpb  a self-contained descriptor set (imports and comments
#                              included) for grpcurl -protoset, dynamic clients, gateways;
#   docs/api/reference.md      the API reference, from the proto comments (protoc-gen-doc);
#   docs/asyncapi.yaml         the Kafka side as AsyncAPI 3.0, from the event options.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
GO=${GO:-go}
BIN=$(dirname "$PY")
out=generated
rm -rf "$out"
mkdir -p "$out"
mapfile -t files < <(cd protos && find . -name '*.proto' -printf '%P\n' | LC_ALL=C sort)
# protoc-gen-mypy and protoc-gen-mypy_grpc live next to the interpreter.
PATH="$BIN:$PATH" "$PY" -m grpc_tools.protoc -I protos -I third_party \
  --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out" \
  --descriptor_set_out="$out/mesh_adapter.binpb" --include_imports --include_source_info \
  "${files[@]}" 2> >(grep -v "^Writing mypy" >&2)
# Regular packages (not namespace packages) so setuptools, mypy and pytest agree.
find "$out" -mindepth 1 -type d | while read -r d; do : > "$d/__init__.py"; done
: > "$out/py.typed"
# PEP 561: a type checker looks for py.typed in each top-level package.
for d in "$out"/*/; do : > "$d/py.typed"; done
# The loader imports these packages, not every package beside them: installed as a wheel,
# they sit in site-packages among everything else.
{
  echo '"""Written by scripts/codegen.sh: the top-level packages it generated from protos/."""'
  echo
  printf 'PACKAGES = ('
  for d in "$out"/*/; do printf '"%s", ' "$(basename "$d")"; done
  echo ')'
} > "$out/meshadapter/codegen.py"
"$PY" scripts/client_package.py > "$out/pyproject.toml"
echo "generated ${#files[@]} proto files into $out/ (and $out/mesh_adapter.binpb)"

# protoc-gen-doc, pinned in scripts/tools/go.mod, installed once per version.
tools=.cache/tools
key=$(cat scripts/tools/go.mod scripts/tools/go.sum | sha256sum | cut -c1-16)-$(GOTOOLCHAIN=local "$GO" env GOVERSION)
if [ ! -x "$tools/protoc-gen-doc" ] || [ "$(cat "$tools/.stamp" 2>/dev/null)" != "$key" ]; then
  mkdir -p "$tools"
  (cd scripts/tools && GOTOOLCHAIN=local GOBIN="$PWD/../../$tools" "$GO" install tool)
  echo "$key" > "$tools/.stamp"
fi
mkdir -p docs/api
"$PY" -m grpc_tools.protoc -I protos -I third_party \
  --plugin=protoc-gen-doc="$tools/protoc-gen-doc" \
  --doc_out=docs/api --doc_opt=markdown,reference.md "${files[@]}"
echo "wrote docs/api/reference.md"

"$PY" scripts/asyncapi.py > docs/asyncapi.yaml
echo "wrote docs/asyncapi.yaml"
