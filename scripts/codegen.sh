#!/usr/bin/env bash
# Regenerates generated/ from protos/: messages (_pb2.py), gRPC stubs (_pb2_grpc.py)
# and typed stubs for both (.pyi, mypy-protobuf, async-aware). Deterministic, so CI
# can regenerate and fail on any diff (`make check`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
BIN=$(dirname "$PY")
out=generated
rm -rf "$out"
mkdir -p "$out"
mapfile -t files < <(cd protos && find . -name '*.proto' -printf '%P\n' | LC_ALL=C sort)
# protoc-gen-mypy and protoc-gen-mypy_grpc live next to the interpreter.
PATH="$BIN:$PATH" "$PY" -m grpc_tools.protoc -I protos -I third_party \
  --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out" \
  "${files[@]}" 2> >(grep -v "^Writing mypy" >&2)
# Regular packages (not namespace packages) so setuptools, mypy and pytest agree.
find "$out" -mindepth 1 -type d | while read -r d; do : > "$d/__init__.py"; done
: > "$out/py.typed"
echo "generated ${#files[@]} proto files into $out/"
