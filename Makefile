# Garrison's two commands: `make demo` and `make test`. Each sets itself up on a fresh machine
# (a virtual environment in .venv, dependencies pinned by constraints.txt) and then runs.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CORE   := $(VENV)/.installed-core
DEV    := $(VENV)/.installed-dev
ASSESS := $(VENV)/.installed-assess
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt
DEMO   := examples/project
DEMO_DB := .garrison/demo.db
MODELS := examples/assess

.PHONY: demo test lint typecheck bench bench-modelscan examples clean help

help:
	@echo "make demo   - set up, scan the bundled example project, assess two example models, write HTML reports"
	@echo "make test   - set up, lint, type-check and run the whole test suite"
	@echo "make lint   - ruff and mypy only"
	@echo "make bench  - start-up and store benchmarks (writes benchmarks/results/)"
	@echo "make bench-modelscan - Garrison beside modelscan, picklescan, fickling and modelaudit (slow)"
	@echo "make examples - retrain the example models (torch==2.13.0, CPU, comes with the dev tools)"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Garrison needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)

# The demo needs only the core install; tests and lint need the dev tools too.
$(CORE): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e .
	@touch $@

$(DEV): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[dev]'
	@touch $@ $(CORE) $(ASSESS)

# The assessment part of the demo attacks a PyTorch and a scikit-learn model: torch (CPU) and sklearn.
$(ASSESS): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[torch,sklearn]'
	@touch $@ $(CORE)

demo: $(CORE) $(ASSESS)
	@rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
	@echo "== garrison scan $(DEMO)"
	@$(BIN)/garrison scan $(DEMO) --db $(DEMO_DB); code=$$?; \
	  echo; echo "exit code $$code (1 = findings at or above --fail-on high: what a CI job would gate on)"; \
	  test $$code -le 1
	@$(BIN)/garrison report latest --db $(DEMO_DB) --format html --output .garrison/demo-report.html
	@echo "open .garrison/demo-report.html in a browser to see the HTML report"
	@echo; echo "== garrison assess model: a PyTorch CNN under evasion attacks and a copycat (extraction)"
	@$(BIN)/garrison assess model --model $(MODELS)/digits_cnn.pt --data $(MODELS)/digits_test.npz \
	  --attacks evasion,extraction --samples 100 --queries 100,250 --valid-range 0,1 --db $(DEMO_DB); \
	  test $$? -le 1
	@echo; echo "== garrison assess model: a scikit-learn random forest under membership inference"
	@$(BIN)/garrison assess model --model $(MODELS)/digits_forest.joblib --data $(MODELS)/digits_test.npz \
	  --train-data $(MODELS)/digits_train.npz --attacks privacy --db $(DEMO_DB) \
	  --format html --output .garrison/demo-assess.html; test $$? -le 1
	@$(BIN)/garrison report latest --db $(DEMO_DB) --format console
	@echo "open .garrison/demo-assess.html for the membership-inference ROC curves"
	@echo; $(BIN)/garrison audit verify --db $(DEMO_DB)

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
	$(BIN)/python examples/train.py
	$(BIN)/python examples/assess/train.py

clean:
	rm -rf $(VENV) .garrison .pytest_cache .mypy_cache .ruff_cache .hypothesis
