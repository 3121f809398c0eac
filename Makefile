# Needs only Python 3 and make: the first target run creates .venv and installs into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# Test files run side by side: most tests wait on real processes, not on the two cores.
PARALLEL_TESTS ?= -n 4 --dist loadfile
# The line `make test` runs on (tools/matrix.toml); `make matrix` runs the others.
HOST_LINE := py311-django52-prodserver3
MATRIX_LINES ?=

.PHONY: docs demo test lint typecheck soak bench matrix pins clean

$(BIN)/.installed: pyproject.toml requirements-test.txt requirements-lint.txt constraints/$(HOST_LINE).txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints/$(HOST_LINE).txt \
		-e . -r requirements-test.txt -r requirements-lint.txt
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
	$(BIN)/ruff check src tests example benchmarks tools
	$(BIN)/ruff format --check src tests example benchmarks tools

typecheck: $(BIN)/.installed
	$(BIN)/mypy src

# Absolute paths: processes that multiprocessing starts inside a worker (its sentinel) read
# coverage's settings and write their data relative to the test project they run in.
test: lint typecheck
	rm -f .coverage .coverage.*
	COVERAGE_FILE=$(CURDIR)/.coverage $(BIN)/coverage run --rcfile=$(CURDIR)/pyproject.toml \
		-m pytest -m "not soak and not benchmark" $(PARALLEL_TESTS) $(PYTEST_ARGS)
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report

soak: $(BIN)/.installed
	$(BIN)/python -m pytest -m soak $(PYTEST_ARGS)

bench: $(BIN)/.installed
	$(BIN)/python -m pytest -m benchmark -s $(PYTEST_ARGS)

# Every other line of tools/matrix.toml: Python 3.11 through tox, Python 3.13 and 3.14 in
# Debian chroots (as root; cached in .matrix/). `make matrix MATRIX_LINES="LINE..."` runs some.
matrix: $(BIN)/.installed
	$(BIN)/python tools/matrix.py run $(MATRIX_LINES)

# Resolve every line's environment again, newest releases within its bounds, into constraints/.
pins: $(BIN)/.installed
	$(BIN)/python tools/matrix.py pins

clean:
	rm -rf $(VENV) .coverage .coverage.* .mypy_cache .ruff_cache example/demo.sqlite3
