#!/usr/bin/env bash
# `make test`: the whole suite against real components. Starts the project's own
# Kafka broker for tests on 127.0.0.1:19092 (never a developer's 9092) and stops
# it afterwards if it started it. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# KAFKA_TEST_PORT lets several work trees run the suite side by side.
export KAFKA_TEST_PORT=${KAFKA_TEST_PORT:-19092}
export KAFKA_PORT=$KAFKA_TEST_PORT
started=0
if ! scripts/kafka status >/dev/null 2>&1; then
  scripts/kafka start
  started=1
fi
cleanup() { if [ "$started" = 1 ]; then scripts/kafka stop; fi; }
trap cleanup EXIT
if [ -f tests/crosslang/setup.sh ]; then tests/crosslang/setup.sh; fi
.venv/bin/pytest "$@"
