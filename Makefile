# The two front-door commands (README): `make run` and `make test`. Both install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run convert test lint

$(BIN)/theraclaim: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,native]'
	touch $@

# The engine compiled with mypyc (adapter/native.py), rebuilt when a source changed; a stale build
# never runs. THERACLAIM_NATIVE=0 skips it (the same code then runs from its sources, slower).
install: $(BIN)/theraclaim
	@if [ "$${THERACLAIM_NATIVE:-1}" != 0 ]; then $(BIN)/python -m adapter.native_build --if-stale; fi

run: install
	$(BIN)/theraclaim serve

convert: install
	$(BIN)/theraclaim convert examples/medicare-visit.json --now 2025-01-15T12:00:00Z

lint: install
	$(BIN)/ruff check adapter tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest
