# photostream: every target sets up what it needs, so a fresh clone needs only `make run` or `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/photostream
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=
FAULT_TESTS := tests/integration/test_faults.py tests/integration/test_gateway_killed_mid_request.py \
	tests/streams/test_worker_failover.py tests/sinks/test_sinks_crash.py tests/integration/test_kafka_cluster.py \
	tests/producers/test_tus_clients.py

.PHONY: help install jars run test test-unit test-integration test-faults bench bench-analytics stack-up stack-down stack-status lint typecheck clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is needed (found $$($(PYTHON) --version))" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(INSTALLED) ## Create the virtualenv and install photostream with its dev tools

jars: $(INSTALLED) ## Fetch the Kafka broker's jars from Maven Central (once, into .cache/)
	$(CLI) stack jars

run: jars ## Set everything up, start the local stack and run the pipeline (Ctrl-C stops it)
	$(CLI) run

test: jars ## Run every test; integration tests start the local stack themselves
	@$(PY) -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: that is a failure here" >&2; fi; \
	exit $$status

test-unit: $(INSTALLED) ## Run the tests that need no servers
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

test-integration: jars ## Run only the tests against the real local stack
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

test-faults: jars ## The fault tests, with the worker failover at five kill moments; prints their counts and a table
	PHOTOSTREAM_FAILOVER_RUNS=5 $(PY) -m pytest -s -p no:cacheprovider $(FAULT_TESTS) $(PYTEST_ARGS)

bench: jars ## Benchmarks side by side (image library, Pillow, sharp, pipeline, gateway vs S3, analytics); needs Node.js
	cd bench/sharp && npm ci --no-audit --no-fund --silent
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)

bench-analytics: $(INSTALLED) ## The analysts' questions, dashboard and status on 30 days of history made in chDB (no stack)
	$(PY) bench/analytics.py $(BENCH_ARGS)

stack-up: jars ## Start Kafka, S3 (SeaweedFS) and prepare chDB; idempotent
	$(CLI) stack up

stack-down: $(INSTALLED) ## Stop the servers that `stack up` started
	$(CLI) stack down

stack-status: $(INSTALLED) ## Tell which servers answer
	$(CLI) stack status

lint: $(INSTALLED) ## ruff: lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(INSTALLED) ## mypy over the packages, strict on the event contract, the image library and the read side
	$(VENV)/bin/mypy photostream producers streams sinks schemas
	$(VENV)/bin/mypy --strict schemas streams/imaging photostream/warehouse.py

clean: ## Remove the virtualenv and caches (not var/, the stack's data)
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache .mypy_cache
