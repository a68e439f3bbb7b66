# Relate Mail. `make run` starts the all-in-one server; `make test` runs the test suite.
# Both create the virtual environment (.venv) and install what is missing first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint venv system-deps test-deps bench clean

run: venv
	$(BIN)/python -m relate serve

test: test-deps venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check relate webapp tests bench
	$(BIN)/mypy

venv: system-deps $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

system-deps:
	@bash deploy/install-deps.sh run

test-deps:
	@bash deploy/install-deps.sh test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
