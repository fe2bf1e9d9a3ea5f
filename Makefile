# cdcrecon: `make run` runs the product, `make test` runs the tests. Both install what they need.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Debian packages the test suite needs beyond the services (Prometheus tools, Chromium).
TEST_PACKAGES := prometheus prometheus-alertmanager chromium

.PHONY: lock install services services-down pipeline pipeline-down migrate demo-data run test test-tools unit test-pipeline bench lint

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || python3 -m venv $(VENV) || { scripts/ensure-packages python3-venv && python3 -m venv $(VENV); }
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.lock
	@touch $(STAMP)

install: $(STAMP)

# Re-pin requirements.lock after changing the dependencies in pyproject.toml.
lock:
	$(VENV)/bin/pip install -q -e '.[dev]'
	$(VENV)/bin/pip freeze --exclude-editable | grep -v '^cdcrecon' > requirements.lock

services: install
	scripts/services up

services-down:
	scripts/services down

# The CDC pipeline (Kafka, the Debezium Cassandra 5 agent, the sink) beside the services; logs
# in .local/pipeline/. cdcrecon itself never needs it. `make run PIPELINE=1` and `make test` use it.
# Its daemons hold none of make's fds, so `make pipeline | tee x` returns once it is up.
pipeline: services
	scripts/pipeline up

pipeline-down:
	scripts/pipeline down

migrate: services
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v 0

demo-data: migrate
	$(PY) manage.py load_demo_data

# PIPELINE=1: the demo tables are filled through the real pipeline (see README, Demo data).
run: migrate $(if $(filter 1,$(PIPELINE)),pipeline)
	PIPELINE=$(PIPELINE) scripts/run

test-tools:
	scripts/ensure-packages $(TEST_PACKAGES)

# The fast layer: the tests that need no service (pure functions, the ledger's transition
# table, the import graph), in seconds.
unit: install
	$(PY) -m pytest -q tests/unit -p no:cacheprovider

# Only the end-to-end tests through the real CDC pipeline (tests/pipeline, marker `pipeline`;
# `make test` runs them too): a shortcut while working on the pipeline.
test-pipeline: pipeline
	$(PY) -m pytest tests/pipeline

# The whole suite, the pipeline's end-to-end tests included (about 5 minutes of it): the
# services and the pipeline are started first. A part of the pipeline that is down fails its
# tests naming the part; `pytest -m "not pipeline"` leaves them out.
test: pipeline test-tools lint
	$(PY) manage.py check --fail-level WARNING
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest

# The bench's own dependencies (pyproject's `bench` extra: the reladiff peer), installed into
# the venv when missing; they are not in requirements.lock.
BENCH_EXTRA := import subprocess, sys, tomllib; \
	extra = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["bench"]; \
	subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *extra])

bench: services
	@$(PY) -c 'import reladiff, psycopg2' 2>/dev/null || $(PY) -c '$(BENCH_EXTRA)'
	$(PY) bench/run.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy cdcrecon reconciliation gdpr pipeline
