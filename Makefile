# Two commands set up a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint check install clean

# The runtime install: exactly what the Dockerfile installs.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[speed]'
	touch $@

# What the tests need on top: Python test tools, redis-server, Chromium, promtool, oidc-provider.
$(VENV)/.test-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[speed,test]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/cognito-gateway demo

lint: $(VENV)/.test-installed
	$(BIN)/ruff check gateway tests
	$(BIN)/mypy

test: $(VENV)/.test-installed
	bash scripts/install-test-deps.sh
	$(MAKE) lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) tests/oidc_provider/node_modules .pytest_cache .mypy_cache .ruff_cache
