# The two commands of a fresh machine:
#   make run    set up .venv and run the gateway on config.yaml
#   make test   set up .venv, build the test peers, lint (ruff, mypy, import layers and cycles), run the whole suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup run peers lint test bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

run: setup
	$(PY) -m gateway --config config.yaml

peers:
	bash .ci/peers.sh
	bash .ci/helm.sh

lint: setup
	$(VENV)/bin/ruff check gateway pipelines tests bench tools
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) tools/check_imports.py gateway pipelines

test: setup peers lint
	$(VENV)/bin/pytest -q -rs

bench: setup
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(PY) -m bench run
