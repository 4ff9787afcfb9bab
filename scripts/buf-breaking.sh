#!/usr/bin/env bash
# `make check`: fails when protos/ breaks the wire or generated-code contract of
# its last released state (buf breaking, FILE rules in buf.yaml).
#
# The released state, in this order:
#   1. BUF_BREAKING_AGAINST, any buf input (e.g. '../old.binpb', '.git#tag=v1.2.0');
#   2. the newest tag v* reachable from HEAD (a release);
#   3. on a branch: the commit where it left the local `main` (what main released);
#   4. on main itself, as in CI's fresh clone of main: main's previous commit
#      (HEAD^, the first parent), which every clone that is not shallow has.
# A shallow clone is deepened by one commit from its origin first.
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=${BUF:-.venv/bin/buf}

against=${BUF_BREAKING_AGAINST:-}
if [ -z "$against" ]; then
  gitdir=$(git rev-parse --path-format=absolute --git-common-dir)
  if ref=$(git describe --tags --abbrev=0 --match 'v*' HEAD 2>/dev/null); then
    why="release tag $ref"
  elif git rev-parse -q --verify main^{commit} >/dev/null &&
    ref=$(git merge-base HEAD main) && [ "$ref" != "$(git rev-parse HEAD)" ]; then
    why="where this branch left main (${ref:0:12})"
  else
    if [ "$(git rev-parse --is-shallow-repository)" = true ] && ! git rev-parse -q --verify HEAD^ >/dev/null; then
      git fetch -q --deepen=1 origin || {
        echo "buf breaking: shallow clone without HEAD^; fetch more history or set BUF_BREAKING_AGAINST" >&2
        exit 1
      }
    fi
    if ! ref=$(git rev-parse -q --verify HEAD^); then
      echo "buf breaking: skipped, HEAD is the first commit (no earlier protos/ to compare with)"
      exit 0
    fi
    why="main's previous commit (${ref:0:12})"
  fi
  against="$gitdir#format=git,ref=$ref"
else
  why="$against"
fi
"$BUF" breaking --against "$against"
echo "buf breaking: no breaking change against $why"
