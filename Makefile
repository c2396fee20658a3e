# Quick start: `make run`, then `make test`. See README.md.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: run test test-django6 lint install system-deps clean chaos

# Debian packages some tests need (nginx in front of Daphne, Chromium
# for the browser tests, promtool from prometheus for the alert rules). Installed
# when missing and possible (root with apt-get); elsewhere the tests that need
# them skip with a loud message (and fail under CI).
SYSTEM_PACKAGES := nginx chromium prometheus

$(INSTALLED): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is required (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

install: $(INSTALLED)

# Django 6.1 on Python 3.13 (pyenv's, else python3.13 on PATH), in a venv of its own:
# requirements-dev.txt's pins, but Django $(DJANGO6).
DJANGO6 := 6.1.3
PY313 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) python3.13)
VENV6 := .venv-django6
INSTALLED6 := $(VENV6)/.installed

$(INSTALLED6): requirements.txt requirements-dev.txt
	$(PY313) -m venv $(VENV6)
	sed 's/^Django==.*/Django==$(DJANGO6)/' requirements.txt > $(VENV6)/requirements.txt
	cp requirements-dev.txt $(VENV6)/requirements-dev.txt
	$(VENV6)/bin/python -m pip install --quiet --disable-pip-version-check -r $(VENV6)/requirements-dev.txt
	@touch $@

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

## test: lint, then the whole suite against throwaway Redis servers of its own and, at the
## same time (two interpreters, two cores), the unit and end-to-end suites on Python 3.13
## with Django 6.1 (test-django6, its output in $(VENV6).log, printed after)
test: lint system-deps
	@$(MAKE) --no-print-directory test-django6 > $(VENV6).log 2>&1 & django6=$$!; \
	$(PY) -m pytest $(if $(HAS313),--ignore=$(SMOKE)); status=$$?; \
	wait $$django6; status6=$$?; \
	echo "=== make test-django6 (ran alongside) ==="; cat $(VENV6).log; \
	echo "=== Python 3.11 suite: exit $$status; Python 3.13 + Django $(DJANGO6): exit $$status6 ==="; \
	test $$status = 0 && test $$status6 = 0

## test-django6: the unit and end-to-end suites on Python 3.13 with Django 6.1 (all but
## what runs once, on the first: the browser tests, the compression benchmark's smoke run
## and the chaos run), and the other benchmarks' smoke runs (SMOKE: they run once, here,
## which evens out the two suites' times under make test; with no 3.13, on the first);
## without python3.13 they are skipped with a loud message, except under CI (CI set),
## where that fails
ONCE := --ignore=tests/browser --ignore=tests/test_bench_compression.py --ignore=tests/e2e/test_chaos.py
SMOKE := tests/test_bench_smoke.py
HAS313 := $(shell $(PY313) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null && echo yes)
test-django6:
	@if ! $(PY313) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then \
		if [ -n "$$CI" ]; then echo "python3.13 not found: CI runs the Django 6.1 suite on it" >&2; exit 1; fi; \
		echo "!!! python3.13 NOT FOUND: the Django $(DJANGO6) suite is SKIPPED !!!"; \
	else \
		$(MAKE) --no-print-directory $(INSTALLED6) && \
		echo "$(VENV6)/bin/python -m pytest $(ONCE)" && \
		$(VENV6)/bin/python -m pytest $(ONCE); \
	fi

clean:
	rm -rf $(VENV) $(VENV6) .devdata .pytest_cache .mypy_cache .ruff_cache

## bench: fan-out benchmarks, project vs websockets vs stock Channels (docs/performance.md);
## `make bench BENCH_ARGS=--quick` for a smoke run, BENCH_ARGS="--connections 10000" for idle memory
bench: install
	$(PY) -m pip install --quiet --disable-pip-version-check -r benchmarks/requirements.txt
	$(PY) -m benchmarks $(BENCH_ARGS)

## chaos: a randomized fault run (harness/chaos/): two bridges, two servers, a persistent Redis,
## 40 resuming clients, a nemesis; fails on any loss, duplicate, reorder or position regression;
## every process's log in chaos-runs/<seed>-<timestamp>/. `make chaos DURATION=600 SEED=1`
DURATION ?= 60
SEED ?= 1
chaos: install
	$(PY) -m harness.chaos --duration $(DURATION) --seed $(SEED)
