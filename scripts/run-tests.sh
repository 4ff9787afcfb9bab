#!/usr/bin/env bash
# `make test`: the whole suite against real components, on TEST_WORKERS pytest-xdist
# workers (2 by default; most of the suite waits on sockets, brokers and timers, so
# two workers on two cores halve the wall time). Each worker has its own Kafka broker
# on 127.0.0.1:KAFKA_TEST_PORT + 10 * n (19092, 19102, ...; never a developer's 9092),
# because outage tests stop and restart theirs. Brokers this script started are stopped
# afterwards. Extra arguments go to pytest: `-n 0` runs in this process, one broker.
set -euo pipefail
cd "$(dirname "$0")/.."
# KAFKA_TEST_PORT lets several work trees run the suite side by side.
export KAFKA_TEST_PORT=${KAFKA_TEST_PORT:-19092}
export KAFKA_PORT=$KAFKA_TEST_PORT
workers=${TEST_WORKERS:-2}
[[ $workers =~ ^[1-9][0-9]*$ ]] || { echo "TEST_WORKERS=$workers is not a positive number" >&2; exit 2; }

started=()
cleanup() {
  local port
  for port in "${started[@]}"; do KAFKA_PORT=$port scripts/kafka stop || true; done
}
trap cleanup EXIT
must_start() {  # must_start PORT: true, and remembered for cleanup, unless a broker answers
  KAFKA_PORT=$1 scripts/kafka status >/dev/null 2>&1 && return 1
  started+=("$1")
}
# The first broker alone (on a new machine it downloads the jars), the others at once.
if must_start "$KAFKA_TEST_PORT"; then KAFKA_PORT=$KAFKA_TEST_PORT scripts/kafka start; fi
pids=()
for ((n = 1; n < workers; n++)); do
  port=$((KAFKA_TEST_PORT + 10 * n))
  if must_start "$port"; then
    KAFKA_PORT=$port scripts/kafka start &
    pids+=($!)
  fi
done
if [ -f tests/crosslang/setup.sh ]; then tests/crosslang/setup.sh; fi
for pid in "${pids[@]}"; do wait "$pid"; done
# A crashed worker fails the run: its replacement would have a new number, so no broker.
.venv/bin/pytest -n "$workers" --dist loadgroup --max-worker-restart 0 --durations=15 "$@"
