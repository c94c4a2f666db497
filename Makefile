# Two commands set up a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint check install clean bench soak

# The runtime install: exactly what the Dockerfile installs.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[speed]'
	touch $@

# What the tests need on top: Python test tools and the optional extras (aws, otel), then
# scripts/install-test-deps.sh adds redis-server, nginx, Chromium, promtool and oidc-provider.
$(VENV)/.test-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[speed,aws,otel,test]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/cognito-gateway demo

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mypy -p bench

test: $(VENV)/.test-installed
	bash scripts/install-test-deps.sh
	$(MAKE) lint
	$(BIN)/pytest

# The project's own benchmark (127.0.0.1 only, bounded): see bench/README.md.
bench: $(VENV)/.test-installed
	bash scripts/install-test-deps.sh
	$(BIN)/python -m bench

# A bounded load-with-faults run against the local stand-in: see docs/reliability.md.
soak: $(VENV)/.test-installed
	bash scripts/install-test-deps.sh
	$(BIN)/python -m tests.soak

clean:
	rm -rf $(VENV) tests/oidc_provider/node_modules .pytest_cache .mypy_cache .ruff_cache
