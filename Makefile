# Two entry points: `make dev` serves the app on local services, `make test` runs every suite.
# Both bootstrap what they need: uv (into .tools/ unless already on PATH), the locked
# Python deps (.venv/), and the pinned Azurite (node_modules/).

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python
export UV_PYTHON_DOWNLOADS := never

.PHONY: dev test lint format deps browser clean bench

dev: deps
	$(PY) -m devstack

test: deps browser
	$(PY) -m pytest $(PYTEST_ARGS)

lint: deps
	$(VENV)/bin/ruff check app infra devstack bench tests
	$(VENV)/bin/ruff format --check app infra devstack bench tests
	$(VENV)/bin/mypy app infra

format: deps
	$(VENV)/bin/ruff format app infra devstack bench tests
	$(VENV)/bin/ruff check --fix app infra devstack bench tests

deps: $(VENV)/.synced node_modules/.installed

# The browser tests use the system Chromium when there is one (as root on Debian/Ubuntu it is
# installed with apt-get), else Playwright's own build.
browser: deps
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
	   || ls $${PLAYWRIGHT_BROWSERS_PATH:-$$HOME/.cache/ms-playwright}/chromium-* >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else $(VENV)/bin/playwright install chromium; fi

# The benchmark (bench/, never part of `make test`): wrk drives the load when it is installed
# (as root on Debian/Ubuntu it is installed with apt-get), else Python threads do.
bench: deps
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || :
	$(PY) -m bench

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-groups --python $(PYTHON)
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) .tools node_modules .devstack
