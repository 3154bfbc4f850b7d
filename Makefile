# Two commands do all the set-up on a fresh machine:
#   make train [ARGS="experiment=wine_mlp trainer.max_epochs=5"]   run an experiment
#   make test  [PYTEST_ARGS="-k csv"]                             lint + the test suite
# Each creates .venv and installs dlrecipe (editable, with every extra and [dev], pinned by
# constraints.txt) when it is missing or pyproject.toml / constraints.txt changed; `make test`
# also installs PostgreSQL (apt-get) for the storage tests and Chromium (apt-get) for the
# report's browser test when they are absent.
#   make lock                                                     newest allowed versions -> constraints.txt

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
PYTEST_ARGS ?=

.PHONY: train eval test lint format venv lock postgres browser bench

# constraints.txt pins every package to the versions CI tested: a fresh machine gets the same.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[all,dev]'
	touch $@

venv: $(VENV)/.installed

# Re-resolve to the newest versions pyproject.toml allows, then pin them (run the tests after).
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[all,dev]'
	{ sed -n '1,2p' constraints.txt; $(PY) -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	touch $(VENV)/.installed

train: $(VENV)/.installed
	$(PY) -m dlrecipe.train $(ARGS)

eval: $(VENV)/.installed
	$(PY) -m dlrecipe.eval $(ARGS)

# dlrecipe against a hand-written PyTorch loop, side by side in one process.
bench: $(VENV)/.installed
	$(PY) scripts/bench_throughput.py $(ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The Optuna PostgreSQL storage is tested against a real server, which the tests start
# themselves from Debian's package.
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "installing PostgreSQL for the storage tests (apt-get)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq postgresql >/dev/null; \
	fi

# The report is checked in a real headless browser (tests/browser.py): Debian's chromium,
# never a browser downloaded by a test tool.
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  echo "installing Chromium for the report's browser test (apt-get)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

# -n auto --dist worksteal: one pytest worker per core (pytest-xdist), idle workers take tests
# from busy ones; on 2 idle cores the suite takes about 9 minutes instead of 17.
test: lint postgres browser
	$(PY) -m pytest -n auto --dist worksteal $(PYTEST_ARGS)
