# mesh-adapter: `make run` starts the demo stack, `make test` runs the suite.
# Both set up the virtualenv (and the Kafka jars) on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help venv codegen check lint fmt typecheck buflint bufbreaking asyncapi-check codegen-check test test-fast fuzz run simulator adapter kafka-up kafka-down bench clean

help:
	@echo "make run        simulator + Kafka + adapter, with a demo gRPC call and a Kafka event (Ctrl-C stops)"
	@echo "make run SECURE=1   the same with mTLS and an authorization policy (docs/security.md)"
	@echo "make run REPLICAS=3   the same with three adapters coordinated through Kafka (ports 50051-50053)"
	@echo "make test       the whole test suite (starts its own Kafka broker)"
	@echo "make codegen    regenerate generated/, docs/api/ and docs/asyncapi.yaml from protos/"
	@echo "make check      ruff, mypy, buf lint, buf breaking, codegen drift, AsyncAPI validation"
	@echo "make fuzz       long fuzzing run (docs/fuzzing.md; FUZZ_FACTOR, FUZZ_SECONDS)"
	@echo "make bench      benchmarks in bench/, printed side by side"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

venv: $(STAMP)

codegen: $(STAMP)
	PY=$(PY) scripts/codegen.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check adapter simulator tests bench scripts
	$(VENV)/bin/ruff format --check adapter simulator tests bench scripts

fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix adapter simulator tests bench scripts
	$(VENV)/bin/ruff format adapter simulator tests bench scripts

typecheck: $(STAMP)
	$(VENV)/bin/mypy

buflint: $(STAMP)
	$(VENV)/bin/buf lint

# Against the last released state of protos/ (see the script for which one).
bufbreaking: $(STAMP)
	BUF=$(VENV)/bin/buf scripts/buf-breaking.sh

ASYNCAPI_DEPS := scripts/asyncapi/node_modules/.installed
$(ASYNCAPI_DEPS): scripts/asyncapi/package-lock.json
	npm --prefix scripts/asyncapi ci --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error
	@touch $@

# docs/asyncapi.yaml parses with the AsyncAPI parser, its .proto payloads compile.
asyncapi-check: $(ASYNCAPI_DEPS)
	node scripts/asyncapi/validate.mjs

# Regenerates and fails when what is committed differs from what the protos give.
GENERATED := generated docs/api docs/asyncapi.yaml
codegen-check: codegen
	@git diff --exit-code --stat -- $(GENERATED) || (echo "$(GENERATED): stale, run 'make codegen' and commit" && exit 1)
	@test -z "$$(git status --porcelain -- $(GENERATED))" || (git status --porcelain -- $(GENERATED); echo "generated files not committed" && exit 1)

check: lint typecheck buflint bufbreaking codegen-check asyncapi-check

test: $(STAMP)
	scripts/run-tests.sh $(ARGS)

# The fuzz targets with FUZZ_FACTOR times the inputs of `make test`, then each
# target under Atheris for FUZZ_SECONDS (docs/fuzzing.md).
FUZZ_FACTOR ?= 50
FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	MESH_FUZZ_PROFILE=long MESH_FUZZ_LONG_FACTOR=$(FUZZ_FACTOR) $(VENV)/bin/pytest tests/fuzz -q -p no:cacheprovider
	$(PY) -m tests.fuzz.atheris_run --seconds $(FUZZ_SECONDS)

# SECURE=1: the same demo with mTLS and a policy (dev certificates in var/dev-certs/).
run: $(STAMP)
	$(PY) scripts/demo.py$(if $(SECURE), --secure)$(if $(REPLICAS), --replicas $(REPLICAS))

kafka-up:
	scripts/kafka start

kafka-down:
	scripts/kafka stop

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis var
