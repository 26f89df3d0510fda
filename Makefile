# Two entry points: `make dev` serves the app on local services, `make test` runs every suite.
# Both bootstrap what they need: uv (into .tools/ unless already on PATH), the locked
# Python deps (.venv/), and the pinned Azurite (node_modules/).

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python
export UV_PYTHON_DOWNLOADS := never

.PHONY: dev dev-reset test lint format deps system-packages clean bench

dev: deps
	$(PY) -m devstack $(if $(FRESH),--fresh)

# `make dev`, after forgetting the accounts, photos and rows it keeps in .devstack/data/.
dev-reset: deps
	$(PY) -m devstack --fresh

test: deps system-packages
	@$(PY) -m compileall -q -j 0 app devstack bench infra tests
	$(PY) -m pytest $(PYTEST_ARGS)

lint: deps
	$(VENV)/bin/ruff check app infra devstack bench tests
	$(VENV)/bin/ruff format --check app infra devstack bench tests
	$(VENV)/bin/mypy app infra devstack bench tests

format: deps
	$(VENV)/bin/ruff format app infra devstack bench tests
	$(VENV)/bin/ruff check --fix app infra devstack bench tests

deps: $(VENV)/.synced node_modules/.installed

# What the suites need from the system, installed with apt-get as root on Debian/Ubuntu when
# missing: Chromium for the browser tests (elsewhere Playwright's own build), and nginx, which
# plays App Service's TLS front end (without it the suites say so and use gunicorn's own TLS).
# A package install that starts nginx as a system service is stopped again: the tests run their own.
system-packages: deps
	@missing=""; \
	if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
	   && ! ls $${PLAYWRIGHT_BROWSERS_PATH:-$$HOME/.cache/ms-playwright}/chromium-* >/dev/null 2>&1; then \
	  missing="$$missing chromium"; fi; \
	if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then missing="$$missing nginx"; fi; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing$$missing with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  case "$$missing" in *nginx*) [ -d /run/systemd/system ] && systemctl disable --now nginx >/dev/null 2>&1 || :;; esac; \
	else \
	  case "$$missing" in *chromium*) $(VENV)/bin/playwright install chromium;; esac; \
	  case "$$missing" in *nginx*) echo "nginx not found: the suites serve the app over gunicorn's own TLS";; esac; \
	fi

# The benchmark (bench/, never part of `make test`): wrk drives the load when it is installed
# (as root on Debian/Ubuntu it is installed with apt-get), else Python threads do.
bench: deps
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || :
	$(PY) -m bench

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

# Bytecode is compiled once here: every process the suites start (gunicorn workers, the CLI)
# would otherwise compile its imports again where PYTHONDONTWRITEBYTECODE is set. Pulumi's
# generated provider (6,000 modules, a few of them imported) is left to import on demand.
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-groups --python $(PYTHON)
	$(PY) -m compileall -q -j 0 -x pulumi_azure_native $$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))') >/dev/null
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) .tools node_modules .devstack
