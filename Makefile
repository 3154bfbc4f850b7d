# Two commands do all the set-up on a fresh machine:
#   make train [ARGS="experiment=wine_mlp trainer.max_epochs=5"]   run an experiment
#   make test  [PYTEST_ARGS="-k csv"]                             lint + the test suite
# Each creates .venv and installs dlrecipe (editable, with [dev]) when it is missing or
# pyproject.toml changed.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
PYTEST_ARGS ?=

.PHONY: train eval test lint format venv clean-outputs

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

train: $(VENV)/.installed
	$(PY) -m dlrecipe.train $(ARGS)

eval: $(VENV)/.installed
	$(PY) -m dlrecipe.eval $(ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)
