# The two front-door commands (README): `make run` and `make test`. Both install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run convert test lint

$(BIN)/theraclaim: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/theraclaim

run: install
	$(BIN)/theraclaim serve

convert: install
	$(BIN)/theraclaim convert examples/medicare-visit.json --now 2025-01-15T12:00:00Z

lint: install
	$(BIN)/ruff check adapter tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest
