# Quick start: `make run`, then `make test`. See README.md.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: run test lint install clean

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

## test: lint, then the whole suite against throwaway Redis servers of its own
test: lint
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .devdata .pytest_cache .mypy_cache .ruff_cache
