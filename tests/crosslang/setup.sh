#!/usr/bin/env bash
# Prepares the cross-language clients of tests/crosslang (see docs/crosslang.md):
#   1. protoc-gen-go and protoc-gen-go-grpc, at the versions go.mod pins (`tool` lines);
#   2. Go stubs generated from protos/ into go/gen/ (git-ignored);
#   3. the Go client binary, .build/crosslang-go, the Go load driver,
#      .build/crosslang-go-load (steady calls over round_robin), and the Go Kafka
#      consumer, .build/crosslang-go-consumer (IBM/sarama + the CloudEvents SDK);
#   4. the Node client's dependencies (`npm ci` from package-lock.json, no
#      install scripts run);
#   5. Debian's grpc_java_plugin (apt, when missing: Maven Central serves no
#      linux-x86_64 protoc-gen-grpc-java of the 1.84/1.85 lines), then the Java
#      client and Kafka consumer (`mvn process-classes` in java/: protoc from Maven
#      Central generates the stubs from protos/; dependencies into ~/.m2).
# Idempotent: each part is skipped while a stamp keyed on the hash of its inputs
# matches and its output exists. Prints one line per step; on failure, the
# failing step's output and the cause. Called by scripts/run-tests.sh.
#
# Environment: PY (default .venv/bin/python, needs grpcio-tools), GO (default go),
# NPM (default npm), MVN (default mvn), CROSSLANG_FORCE=1 to redo every step.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
PY=${PY:-$root/.venv/bin/python}
GO=${GO:-go}
NPM=${NPM:-npm}
MVN=${MVN:-mvn}
build=$here/.build
gen=$here/go/gen
log=$build/step.log
module=meshadapter.test/crosslang
# The machine's Go, never one fetched because a go.mod line asks for a newer one.
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
mkdir -p "$build"

say() { printf 'crosslang: %s\n' "$*"; }
fail() {
  say "FAILED: $*" >&2
  exit 1
}

# Runs a step quietly into $log; on failure shows its output and stops.
step() {
  local what=$1
  shift
  local start=$SECONDS rc=0
  "$@" >"$log" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    say "FAILED: $what (exit status $rc); its output ($log):" >&2
    if [ "$(wc -l <"$log")" -le 60 ]; then
      sed 's/^/  | /' "$log" >&2
    else
      { head -n 20 "$log" && echo '...' && tail -n 40 "$log"; } | sed 's/^/  | /' >&2
    fi
    fail "$what. Fix the cause above and rerun tests/crosslang/setup.sh"
  fi
  say "$what ($((SECONDS - start)) s)"
}

# sha256 over the names and contents of the given files (sorted, stable).
hash_files() {
  LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
}

up_to_date() { # stamp-name key output...
  local stamp=$build/$1.stamp key=$2
  shift 2
  [ "${CROSSLANG_FORCE:-0}" != 1 ] || return 1
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] || return 1
  local out
  for out in "$@"; do [ -e "$out" ] || return 1; done
}

# --- prerequisites, checked up front so a missing tool names itself ----------
command -v "$GO" >/dev/null || fail "Go is not installed ('$GO' not on PATH); install Go >= 1.26"
command -v node >/dev/null || fail "Node.js is not installed ('node' not on PATH); install Node.js >= 20"
command -v "$NPM" >/dev/null || fail "npm is not installed ('$NPM' not on PATH)"
command -v java >/dev/null || fail "Java is not installed ('java' not on PATH); install a JDK >= 17"
command -v "$MVN" >/dev/null || fail "Maven is not installed ('$MVN' not on PATH); install Maven >= 3.8"
[ -x "$PY" ] || fail "no Python at $PY: run 'make venv' first (it installs grpcio-tools)"
"$PY" -c 'import grpc_tools.protoc' 2>/dev/null ||
  fail "$PY has no grpc_tools: run 'make venv' (grpcio-tools is a dev dependency)"

# Serialise concurrent runs (two shells in one work tree).
exec 9>"$build/.lock"
flock 9

# --- Go: plugins, stubs, binary ----------------------------------------------
go_key=$(
  {
    find protos third_party -name '*.proto' -print0
    find "$here/go" -path "$gen" -prune -o -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) -print0
    printf '%s\0' "$here/setup.sh"
  } | hash_files
)-$("$GO" env GOVERSION)
gobin=$build/gobin
binary=$build/crosslang-go
consumer=$build/crosslang-go-consumer
load=$build/crosslang-go-load

[ -f "$here/go/go.sum" ] || fail "$here/go/go.sum is missing: the Go client's dependencies must be pinned"
if up_to_date go "$go_key" "$binary" "$load" "$consumer" "$gobin/protoc-gen-go" "$gobin/protoc-gen-go-grpc"; then
  touch "$build/go.stamp" # checked now: the tests compare its mtime with the inputs'
  say "Go client up to date ($binary)"
else
  # `tool` lines in go.mod pin the plugins and go.sum verifies them.
  step "installed protoc-gen-go, protoc-gen-go-grpc (versions from go/go.mod) into $gobin" \
    env -C "$here/go" GOBIN="$gobin" "$GO" install tool

  # The protos declare no go_package: map each file to a Go import path here.
  mapfile -t files < <(cd protos && find . -name '*.proto' -printf '%P\n' | LC_ALL=C sort)
  maps=()
  for f in "${files[@]}"; do
    dir=$(dirname "$f")                                   # openframe/v1, meshadapter/options/v1
    pkg=$(basename "$(dirname "$dir")")$(basename "$dir") # openframev1, optionsv1
    maps+=("M$f=$module/gen/$dir;$pkg")
  done
  while read -r f; do
    case $f in
      google/api/annotations.proto | google/api/http.proto | google/api/field_behavior.proto | \
        google/api/client.proto | google/api/resource.proto | google/api/launch_stage.proto)
        maps+=("M$f=google.golang.org/genproto/googleapis/api/annotations") ;;
      *) fail "no Go package mapping for third_party/$f: add one in tests/crosslang/setup.sh" ;;
    esac
  done < <(cd third_party && find . -name '*.proto' -printf '%P\n' | LC_ALL=C sort)
  go_opts=() grpc_opts=()
  for m in "${maps[@]}" "module=$module"; do
    go_opts+=("--go_opt=$m")
    grpc_opts+=("--go-grpc_opt=$m")
  done

  tmp=$(mktemp -d "$build/gen.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  step "generated Go stubs for ${#files[@]} proto files from protos/" \
    "$PY" -m grpc_tools.protoc -I protos -I third_party \
    --plugin=protoc-gen-go="$gobin/protoc-gen-go" --plugin=protoc-gen-go-grpc="$gobin/protoc-gen-go-grpc" \
    --go_out="$tmp" --go-grpc_out="$tmp" "${go_opts[@]}" "${grpc_opts[@]}" "${files[@]}"
  rm -rf "$gen"
  mv "$tmp/gen" "$gen"
  rm -rf "$tmp"

  # -mod=readonly: a go.sum that does not cover the build fails here, not later.
  step "built the Go client into $binary" \
    env -C "$here/go" "$GO" build -mod=readonly -trimpath -o "$binary" .
  step "built the Go load driver into $load" \
    env -C "$here/go" "$GO" build -mod=readonly -trimpath -o "$load" ./load
  step "built the Go Kafka consumer into $consumer" \
    env -C "$here/go" "$GO" build -mod=readonly -trimpath -o "$consumer" ./consumer
  echo "$go_key" >"$build/go.stamp"
fi

# --- Node: dependencies ------------------------------------------------------
node_dir=$here/node
[ -f "$node_dir/package-lock.json" ] || fail "$node_dir/package-lock.json is missing (npm ci needs it)"
node_key=$(printf '%s\0' "$node_dir/package.json" "$node_dir/package-lock.json" | hash_files)-$(node --version)
if up_to_date node "$node_key" "$node_dir/node_modules/@grpc/grpc-js/package.json"; then
  touch "$build/node.stamp"
  say "Node client dependencies up to date ($node_dir/node_modules)"
else
  step "installed the Node client's dependencies (npm ci, package-lock.json)" \
    "$NPM" --prefix "$node_dir" ci --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error
  echo "$node_key" >"$build/node.stamp"
fi

# --- Java: gRPC plugin, stubs, client and consumer ---------------------------
java_dir=$here/java
if ! command -v grpc_java_plugin >/dev/null; then
  [ "$(id -u)" = 0 ] || fail "grpc_java_plugin is missing: apt-get install protobuf-compiler-grpc-java-plugin (as root)"
  install_plugin() {
    # The package lists may be old or absent on a fresh machine: update once on failure.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends protobuf-compiler-grpc-java-plugin ||
      { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends protobuf-compiler-grpc-java-plugin; }
  }
  step "installed grpc_java_plugin (apt: protobuf-compiler-grpc-java-plugin)" install_plugin
fi
java_key=$(
  {
    find protos third_party -name '*.proto' -print0
    find "$java_dir/src" -type f -name '*.java' -print0
    printf '%s\0' "$java_dir/pom.xml" "$here/setup.sh"
  } | hash_files
)-$(readlink -f "$(command -v java)") # the JDK's path names its version; cheaper than starting a JVM
if up_to_date java "$java_key" "$java_dir/target/classpath.txt" "$java_dir/target/classes/meshadapter/crosslang/Client.class"; then
  touch "$build/java.stamp"
  say "Java client and consumer up to date ($java_dir/target)"
else
  # process-classes: generate stubs, compile, write target/classpath.txt (no jar, no tests).
  step "built the Java client and consumer (mvn process-classes; stubs from protos/)" \
    "$MVN" -f "$java_dir/pom.xml" -B -q process-classes
  echo "$java_key" >"$build/java.stamp"
fi
