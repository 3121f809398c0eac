# Needs only Python 3 and make: the first target run creates .venv and installs into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
MATRIX_ENVS ?= django52-prodserver2,django42-prodserver3,django42-prodserver2

.PHONY: docs demo test lint typecheck soak bench matrix clean

$(BIN)/.installed: pyproject.toml requirements-test.txt requirements-lint.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e . -r requirements-test.txt -r requirements-lint.txt
	touch $@

# The documentation site, warnings as errors, into build/docs (ignored by git).
$(BIN)/.docs-installed: $(BIN)/.installed requirements-docs.txt
	$(BIN)/python -m pip install --quiet -r requirements-docs.txt
	touch $@

docs: $(BIN)/.docs-installed
	$(BIN)/python -m sphinx -W --keep-going -n -q -b html docs build/docs/html

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

# The other supported django-prodserver and Django lines (see tox.ini).
matrix: $(BIN)/.installed
	$(BIN)/tox run-parallel --parallel 2 --parallel-no-spinner -e $(MATRIX_ENVS)

clean:
	rm -rf $(VENV) .coverage .coverage.* .mypy_cache .ruff_cache example/demo.sqlite3
