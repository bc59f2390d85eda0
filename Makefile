# The two commands of a fresh machine:
#   make run    set up .venv and run the gateway on config.yaml
#   make test   set up .venv, build the test peers, lint (ruff, mypy, import layers and cycles), run the whole suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup run peers browser lint test bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	# The SDK's Zipkin protobuf exporter, a test client: its protobuf~=3.12 pin is stale (the tests give
	# it current messages, tests/interop/_zipkin.py), so it is installed without its dependencies.
	$(PY) -m pip install -q --no-deps opentelemetry-exporter-zipkin-proto-http==1.45.1
	# The SDK's last Jaeger Thrift exporter, a test client (HTTP and the agent's UDP): its SDK pin is
	# stale (tests/interop/_jaeger.py gives it the names it reads), so it too goes in without dependencies.
	$(PY) -m pip install -q --no-deps opentelemetry-exporter-jaeger-thrift==1.21.0
	touch $@

run: setup
	$(PY) -m gateway --config config.yaml

peers: browser
	bash .ci/peers.sh
	bash .ci/helm.sh

# Debian's chromium and its driver, for the admin page's browser test (tests/test_admin_page.py); never
# fails the build: without apt (or root) the test skips and says why.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(sudo -n sh -c 'apt-get update -qq && apt-get install -y chromium chromium-driver' || \
		 (apt-get update -qq && apt-get install -y chromium chromium-driver)) \
		>/dev/null 2>&1 || echo "browser: chromium/chromium-driver not installed (apt unavailable): the admin page test will skip"

lint: setup
	$(VENV)/bin/ruff check gateway pipelines tests bench tools
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) tools/check_imports.py gateway pipelines

# The bench extras too: the bench smoke test draws the results plot with matplotlib.
test: setup peers lint
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(VENV)/bin/pytest -q -rs

# The grid by request size, then the 1,000-connection fixed-rate load, into bench/RESULTS.md.
bench: setup
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(PY) -m bench run --spans 10,50,512 --concurrency 64 --connections 32 --duration 10
	$(PY) -m bench rate --connections 1000 --rate 1 --spans 10 --duration 30
