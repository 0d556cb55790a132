# Two commands on a fresh machine with Python 3.11+ and pip:
#   make run    creates .venv, installs, starts the whole platform
#   make test   creates .venv if needed, installs, runs the whole suite

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# make run SIMULATE=1 also starts the simulator: stand-in pipeline, a demo campaign, live traffic.
run: $(STAMP)
	$(BIN)/campaigns run $(if $(SIMULATE),--simulate)

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	for b in create schedules ingest ab webhooks cache; do test -f bench/$$b.py && $(BIN)/python -m bench.$$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
