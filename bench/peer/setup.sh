#!/usr/bin/env bash
# Builds what the peer bench runs besides Python (see bench/peer/__init__.py):
#   1. a descriptor set of protos/ (with imports) for vanguard-go and ghz;
#   2. the compiled upstream, the vanguard-go peer and the OTLP sink the adapter
#      exports its spans and metrics to (go/, dependencies from the Go module
#      proxy, pinned by go.sum);
#   3. ghz, the gRPC load generator (a `tool` line in go/go.mod pins it).
# Everything lands in bench/peer/.build (git-ignored). Idempotent: skipped while a
# stamp keyed on the hash of the inputs and the Go version matches and the outputs
# exist, so a rerun costs a second. Prints the directory of the outputs last.
#
# Environment: PY (default .venv/bin/python, needs grpcio-tools), GO (default go),
# PEER_BENCH_FORCE=1 to rebuild.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
PY=${PY:-$root/.venv/bin/python}
GO=${GO:-go}
build=$here/.build
log=$build/step.log
# The machine's Go, never one fetched because a go.mod line asks for a newer one.
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
mkdir -p "$build"

say() { printf 'peer bench: %s\n' "$*" >&2; }
fail() {
  say "FAILED: $*"
  exit 1
}
step() {
  local what=$1
  shift
  local start=$SECONDS
  if ! "$@" >"$log" 2>&1; then
    say "FAILED: $what; its output:"
    tail -n 40 "$log" | sed 's/^/  | /' >&2
    exit 1
  fi
  say "$what ($((SECONDS - start)) s)"
}

command -v "$GO" >/dev/null || fail "Go is not installed ('$GO' not on PATH); install Go >= 1.26"
[ -x "$PY" ] || fail "no Python at $PY: run 'make venv' first"

exec 9>"$build/.lock"
flock 9

key=$(
  {
    find protos third_party -name '*.proto' -print0
    find "$here/go" -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) -print0
    printf '%s\0' "$here/setup.sh"
  } | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
)-$("$GO" env GOVERSION)
outputs=("$build/protos.pb" "$build/upstream" "$build/vanguard" "$build/otlpsink" "$build/ghz")
fresh=1
[ "${PEER_BENCH_FORCE:-0}" != 1 ] && [ -f "$build/stamp" ] && [ "$(cat "$build/stamp")" = "$key" ] || fresh=0
for out in "${outputs[@]}"; do [ -e "$out" ] || fresh=0; done
if [ "$fresh" = 1 ]; then
  say "up to date ($build)"
else
  mapfile -t files < <(cd protos && find . -name '*.proto' -printf '%P\n' | LC_ALL=C sort)
  step "descriptor set of ${#files[@]} proto files" \
    "$PY" -m grpc_tools.protoc -I protos -I third_party --include_imports \
    --descriptor_set_out="$build/protos.pb" "${files[@]}"
  # -mod=readonly: a go.sum that does not cover the build fails here, not later.
  step "built the upstream, vanguard-go and the OTLP sink" \
    env -C "$here/go" "$GO" build -mod=readonly -trimpath -o "$build/" ./upstream ./vanguard ./otlpsink
  step "installed ghz (version from go/go.mod)" env -C "$here/go" GOBIN="$build" "$GO" install -mod=readonly tool
  echo "$key" >"$build/stamp"
fi
echo "$build"
