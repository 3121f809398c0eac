# Needs only Python 3 and make: the first target run creates .venv and installs into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck soak bench clean

$(BIN)/.installed: pyproject.toml requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e . -r requirements-test.txt
	touch $@

demo: $(BIN)/.installed
	$(BIN)/python example/run_demo.py

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests example benchmarks
	$(BIN)/ruff format --check src tests example benchmarks

typecheck: $(BIN)/.installed
	$(BIN)/mypy src

test: lint typecheck
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest -m "not soak and not benchmark" $(PYTEST_ARGS)
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report

soak: $(BIN)/.installed
	$(BIN)/python -m pytest -m soak $(PYTEST_ARGS)

bench: $(BIN)/.installed
	$(BIN)/python -m pytest -m benchmark -s $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .coverage .coverage.* .mypy_cache .ruff_cache example/demo.sqlite3
