# The two commands a new user needs: `make serve` and `make test`. Both build the virtualenv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
WAREHOUSE ?= ./warehouse
BENCH_OUT ?= bench-results

.PHONY: install serve test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: install
	$(VENV)/bin/iceshelf serve --warehouse $(WAREHOUSE)

test: install
	$(PY) -m pytest

bench: install
	mkdir -p $(BENCH_OUT)
	$(PY) -m bench --out $(BENCH_OUT)/catalog.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
