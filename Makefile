# Quick start: `make run`, then `make test`. See README.md.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: run test lint install system-deps clean

# Debian packages some end-to-end tests need (nginx in front of Daphne, Chromium
# for the browser tests). Installed when missing and possible (root with
# apt-get); elsewhere the tests that need them skip with a loud message.
SYSTEM_PACKAGES := nginx chromium

$(INSTALLED): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is required (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

install: $(INSTALLED)

## run: migrate, start Redis if none answers, run Daphne on 127.0.0.1:8000 and the bridge
run: install
	$(PY) -m botrix_site.devrun

## lint: ruff and mypy (strict on jobupdates/)
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing system packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
		echo "!!! cannot install$$missing (needs root and apt-get): the tests that need them will be SKIPPED !!!"; \
	fi

## test: lint, then the whole suite against throwaway Redis servers of its own
test: lint system-deps
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .devdata .pytest_cache .mypy_cache .ruff_cache

## bench: fan-out benchmarks, project vs websockets vs stock Channels (docs/performance.md);
## `make bench BENCH_ARGS=--quick` for a smoke run, BENCH_ARGS="--connections 10000" for idle memory
bench: install
	$(PY) -m pip install --quiet --disable-pip-version-check -r benchmarks/requirements.txt
	$(PY) -m benchmarks $(BENCH_ARGS)
