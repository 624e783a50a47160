# Two entry points for a fresh machine: `make demo` runs a full release on the
# local sandbox; `make test` runs every test tier. Both install what is missing.
# The host's Python, one that Airflow 3.3 supports: the first of python3.11, python3.12 and
# python3.13 on PATH that runs (pyenv's shims name every version pyenv has, and the shim of one it
# does not select fails); `make PYTHON=/path/to/python ...` names another. Only making the
# virtualenv uses it.
SUPPORTED_PYTHONS := 3.11 3.12 3.13
PYTHON ?= $(shell for v in $(SUPPORTED_PYTHONS); do python$$v -c '' 2>/dev/null && echo python$$v && break; done)
# Run by PYTHON: exits 1 unless it is one of SUPPORTED_PYTHONS (for `make PYTHON=...`).
PYTHON_SUPPORTED := import sys; sys.exit("%d.%d" % sys.version_info[:2] not in "$(SUPPORTED_PYTHONS)".split())
# Python writes bytecode caches in every process the targets start (the tests' workers, the sandbox,
# the demo): uv installs none, and an environment with PYTHONDONTWRITEBYTECODE=1 (CI's machine has
# it) would otherwise compile Airflow, moto and botocore from source at every process start, ~3 s of
# CPU each on the 2-core machine against 0.1 s with the caches.
unexport PYTHONDONTWRITEBYTECODE
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install lock lock-check lint test test-fast test-unit test-sandbox demo demo-rollback up down

# The targets, and how long each takes on the 2-core machine (uv's cache warm; first install longer).
help:
	@echo 'make demo           a full release on the local sandbox, triggered and approved over REST (~3 min)'
	@echo 'make demo-rollback  a release whose smoke tests fail, rolled back (~3 min)'
	@echo 'make test           lint and every test tier (~27 min)'
	@echo 'make test-fast      lint, unit and sandbox tiers (~5 min)'
	@echo 'make lint           ruff and the production image checks (~1 min)'
	@echo 'make check-deploy   hadolint, the image build replayed, the Helm values (~45 s)'
	@echo 'make up / make down the stack in the background / stop every process of it (~1 min)'
	@echo 'make install        the virtualenv and the pinned set (~30 s; as root, Chromium and Node from Debian when missing)'
	@echo 'make lock           constraints.txt re-locked for Python 3.11 to 3.13 and resolved for each (~20 s)'
	@echo 'make lock-check     requirements-dev.txt resolved against constraints.txt for each, nothing rewritten (~15 s)'

# uv resolves and installs the pinned set into the venv (pip took about 90 s of each CI run, uv a
# few seconds with its cache warm); pip only bootstraps uv itself.
UV_VERSION := 0.13.8

$(BIN)/python:
	@test -n "$(PYTHON)" && $(PYTHON) -c '$(PYTHON_SUPPORTED)' 2>/dev/null || { \
		echo "make: Airflow 3.3 runs on Python 3.11, 3.12 or 3.13, $(if $(PYTHON),and PYTHON=$(PYTHON) is not one of them,and none of python3.11 python3.12 python3.13 runs from PATH): install one, or name it: make PYTHON=/path/to/python3.12 $(MAKECMDGOALS)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(BIN)/uv: $(BIN)/python
	$(BIN)/pip install --quiet uv==$(UV_VERSION)

# chromium and Node.js are the only packages from the system: as root on a machine with apt-get
# (CI's Debian) the install puts in those missing; anyone else is told what needs them and how to
# get them, and the install goes on (lint and check-deploy need neither).
ROOT_WITH_APT = [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null
APT_INSTALL = apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq

$(STAMP): $(BIN)/uv requirements.txt requirements-dev.txt constraints.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-dev.txt -c constraints.txt
	# Debian's chromium for the Deployments view's browser test (Playwright drives /usr/bin/chromium).
	@command -v chromium >/dev/null || if $(ROOT_WITH_APT); then $(APT_INSTALL) chromium; else \
		echo "make install: no chromium: the real-engine tier's browser test skips without /usr/bin/chromium (Debian: sudo apt-get install chromium)"; fi
	# Debian's Node.js runs the front door's CloudFront Function: every sandbox starts it, the unit tier tests it.
	@command -v node >/dev/null || if $(ROOT_WITH_APT); then $(APT_INSTALL) nodejs; else \
		echo "make install: no node: make demo and the unit, sandbox and real-engine tiers need Node.js (Debian, Ubuntu: sudo apt-get install nodejs; macOS: brew install node)"; fi
	touch $(STAMP)

install: $(STAMP)

# constraints.txt rewritten by uv's universal resolution, one lock for every supported Python (its
# header says more), then checked by lock-check. Its pins are uv's preferences, so only what a
# changed requirement needs moves. uv rewrites the whole file: the header is put back.
lock: $(BIN)/uv
	header="$$(sed '/^[^#]/,$$d' constraints.txt)" && \
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --no-header --no-annotate \
		requirements-dev.txt -o constraints.txt && \
	{ echo "$$header"; cat constraints.txt; } > constraints.txt.new && mv constraints.txt.new constraints.txt
	@$(MAKE) --no-print-directory lock-check

# requirements-dev.txt resolved against constraints.txt for each of LOCK_PYTHONS alone, writing
# nothing: the oldest 3.11, Debian 12's 3.11.2, CI's 3.11.7, 3.12 and 3.13. No interpreter of each
# is needed; uv would try to download one (to build any sdist with), and where only the package
# registries answer it waited out the failing downloads (28-47 s for the five here, 15-18 s without).
LOCK_PYTHONS := 3.11.0 3.11.2 3.11.7 3.12 3.13
lock-check: $(BIN)/uv
	for v in $(LOCK_PYTHONS); do \
		$(BIN)/uv pip compile --quiet --no-python-downloads --python-version $$v \
			requirements-dev.txt -c constraints.txt >/dev/null || { \
			echo "make lock-check: requirements-dev.txt does not resolve against constraints.txt for Python $$v"; \
			exit 1; }; \
	done

# ruff, the package's layers (import-linter: pyproject.toml's contract), then the production image's
# checks (hadolint, its build replayed into a fresh virtualenv, the Helm values): about 45 s with
# uv's cache warm.
lint: install check-deploy
	$(TIMED) $(BIN)/ruff check . && $(BIN)/ruff format --check . && PYTHONPATH=plugins $(BIN)/lint-imports

# Fast tiers first (unit, DAG policy, sandbox contracts), then the tiers that run
# the DAG against a started sandbox and on real Airflow components.
# The unit tier uses moto in-process (mock_aws) and the sandbox tier runs one sandbox per
# process whose moto backend lives in that process: separate runs keep the two tiers apart.
# The real-engine tier runs in E2E_WORKERS pytest-xdist workers, each with its own sandbox and
# LocalExecutor stack: a release mostly waits, so two share the 2 cores (~80 % busy). Three
# kept them 97 % busy for a tier only 5 % shorter, and a timing-sensitive canary test failed.
# Each tier prints its time when it ends (TIMED).
TEST_WORKERS ?= 2
E2E_WORKERS ?= 2
TIMED = @started=$$(date +%s); trap 'echo "== $@: $$(( $$(date +%s) - started )) s"' EXIT;

test: test-fast
	$(TIMED) $(BIN)/python -m pytest -n $(E2E_WORKERS) --durations=25 tests/integration tests/e2e

# The main job: a full release on the local sandbox, triggered and approved over REST.
# The stack stays up afterwards for the UI; `make down` stops every process of it.
demo: install
	$(BIN)/python scripts/demo.py

# A release that fails its smoke tests and is rolled back.
demo-rollback: install
	$(BIN)/python scripts/demo.py --rollback

up: install
	$(BIN)/python scripts/stack.py up

down:
	$(BIN)/python scripts/stack.py down

test-fast: lint test-unit test-sandbox

# The unit tier is CPU-bound (moto in-process, DAG parses): two xdist workers on 2 cores.
test-unit: install
	$(TIMED) $(BIN)/python -m pytest -n $(TEST_WORKERS) tests/unit tests/dags bench/test_figures.py bench/test_cpu.py

# The sandbox tier mostly waits on its emulators' threads: two workers, a sandbox each.
test-sandbox: install
	$(TIMED) $(BIN)/python -m pytest -n $(TEST_WORKERS) tests/sandbox

# The production image and the Helm values, checked without a container engine: hadolint on the
# Dockerfile, the image's build replayed into a fresh virtualenv with the runtime requirements
# alone (both DAGs must import), the values' Airflow options and the chart's schema
# (scripts/check_deploy.py; deploy/README.md).
.PHONY: check-deploy
check-deploy: install
	$(TIMED) $(BIN)/python scripts/check_deploy.py
