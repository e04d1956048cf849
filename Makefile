# Garrison's two commands: `make demo` and `make test`. Each sets itself up on a fresh machine
# (a virtual environment in .venv, dependencies pinned by constraints.txt) and then runs.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CORE   := $(VENV)/.installed-core
DEV    := $(VENV)/.installed-dev
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt
DEMO   := examples/project
DEMO_DB := .garrison/demo.db

.PHONY: demo test lint typecheck bench bench-modelscan examples clean help

help:
	@echo "make demo   - set up, scan the bundled example project, write an HTML report"
	@echo "make test   - set up, lint, type-check and run the whole test suite"
	@echo "make lint   - ruff and mypy only"
	@echo "make bench  - start-up and store benchmarks (writes benchmarks/results/)"
	@echo "make bench-modelscan - Garrison beside modelscan, picklescan, fickling and modelaudit (slow)"
	@echo "make examples - retrain the example models (installs torch==2.13.0, CPU)"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Garrison needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)

# The demo needs only the core install; tests and lint need the dev tools too.
$(CORE): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e .
	@touch $@

$(DEV): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[dev]'
	@touch $@ $(CORE)

demo: $(CORE)
	@rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
	@echo "== garrison scan $(DEMO)"
	@$(BIN)/garrison scan $(DEMO) --db $(DEMO_DB); code=$$?; \
	  echo; echo "exit code $$code (1 = findings at or above --fail-on high: what a CI job would gate on)"; \
	  test $$code -le 1
	@$(BIN)/garrison report latest --db $(DEMO_DB) --format html --output .garrison/demo-report.html
	@$(BIN)/garrison audit verify --db $(DEMO_DB)
	@echo "open .garrison/demo-report.html in a browser to see the HTML report"

test: $(DEV) lint
	$(BIN)/python -m pytest -q

lint: $(DEV)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy

bench: $(DEV)
	$(BIN)/python benchmarks/run.py

# Installs the peers in their own environments under benchmarks/.work on first use.
bench-modelscan: $(DEV)
	$(BIN)/python benchmarks/modelscan/run.py --large

examples: $(DEV)
	$(PIP) 'torch==2.13.0'
	$(BIN)/python examples/train.py

clean:
	rm -rf $(VENV) .garrison .pytest_cache .mypy_cache .ruff_cache .hypothesis
