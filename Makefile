# Two commands on a fresh machine with Python 3.11+ and pip:
#   make run    creates .venv, installs the locked versions, starts the whole platform
#   make test   creates .venv if needed, installs, checks the code (lint) and runs the whole suite

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LOCK   := requirements/dev.lock
STAMP  := $(VENV)/.installed

.PHONY: run test test-quick test-explore lint bench lock clean

# The exact versions tested (the lock), then the project itself on top, without re-resolving.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r $(LOCK)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# make run SIMULATE=1 also starts the simulator: stand-in pipeline, a demo campaign, live traffic.
run: $(STAMP)
	$(BIN)/campaigns run $(if $(SIMULATE),--simulate)

test: lint
	HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest

# The property tests with many more random examples (docs/development.md): run it often, and
# pin every failure it finds as an @example.
test-explore: $(STAMP)
	HYPOTHESIS_PROFILE=explore $(BIN)/python -m pytest -m pure -q $$(grep -rl "@given" tests)

# What a developer runs between edits: the tests that need no service, in seconds.
test-quick: $(STAMP)
	$(BIN)/python -m pytest -m pure -q

lint: $(STAMP)
	$(BIN)/ruff check campaigns
	$(BIN)/ruff format --check campaigns
	$(BIN)/mypy campaigns
	$(BIN)/python -m pytest -q tests/test_layout.py

bench: $(STAMP)
	for b in create worker_kill schedules ingest ab ab_errors webhooks cache viewers console scale chaos; do test -f bench/$$b.py && $(BIN)/python -m bench.$$b || exit 1; done

# Re-resolve the locks after changing dependencies in pyproject.toml.
lock:
	$(PYTHON) -m venv .lockenv && .lockenv/bin/pip install --quiet pip-tools
	.lockenv/bin/pip-compile -q --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
		--no-emit-trusted-host --extra embedded --extra test --extra lint -o requirements/dev.lock pyproject.toml
	.lockenv/bin/pip-compile -q --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
		--no-emit-trusted-host -o requirements/runtime.lock pyproject.toml
	rm -rf .lockenv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
