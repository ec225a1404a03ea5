# Two commands do everything on a fresh clone: `make local` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt layers/chorus/requirements.txt pyproject.toml client/pyproject.toml examples/package-lock.json | cksum | cut -d' ' -f1)

.PHONY: install local test test-unit test-e2e test-faults lint format compile-ensembles validate-registry openapi benchmark build clean

$(STAMP): requirements-dev.txt layers/chorus/requirements.txt pyproject.toml client/pyproject.toml examples/package-lock.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e ./client  # chorus_client; its dependencies are pinned in requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .  # the `chorus` command
	npm ci --prefix examples --no-audit --no-fund --silent  # the Node.js webhook receiver example (tests run it)
	# Browser tests drive Debian's chromium through its chromedriver (tests/support/browser.py).
	@if [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo 'installing chromium and chromium-driver for the browser tests'; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; \
	else echo 'browser tests need chromium and chromium-driver (apt-get install chromium chromium-driver as root); they will be skipped'; fi
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# checkov has its own venv: its dependencies conflict with the project's pins (boto3, pydantic...).
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

$(CHECKOV_STAMP):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)
	rm -f $(CHECKOV_VENV)/.installed-* && touch $@

## Serve the whole system (API on http://127.0.0.1:3000) with the demo models.
local: install
	$(PY) -m chorus_local --ready-file .chorus-local.json  # the token and names `chorus ... --local` reads

## Every test: unit, integration (handlers, local runtime, template, sam build) and end-to-end.
test: install
	$(PY) -m pytest

test-unit: install
	$(PY) -m pytest tests/unit

test-e2e: install
	$(PY) -m pytest tests/e2e

test-faults: install
	$(PY) -m pytest tests/faults

lint: install $(CHECKOV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/cfn-lint template.yaml
	SAM_CLI_TELEMETRY=0 $(VENV)/bin/sam validate --lint --region us-east-1
	# Fails on any failed check; the skips and their reasons are Metadata.checkov.skip on each resource.
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation --quiet --compact --skip-download
	PYTHONPATH=layers/chorus $(PY) -m chorus_compiler --check
	$(PY) -m scripts.openapi --check

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## Regenerate statemachines/*.asl.json from the registry (validates it first).
compile-ensembles: install
	PYTHONPATH=layers/chorus $(PY) -m chorus_compiler

validate-registry: install
	PYTHONPATH=layers/chorus $(PY) -m chorus_compiler --check

## Regenerate docs/openapi.json from the API functions' resolvers (Powertools).
openapi: install
	$(PY) -m scripts.openapi

benchmark: install
	$(PY) -m benchmarks.run

build: install
	SAM_CLI_TELEMETRY=0 PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/sam build

clean:
	rm -rf .aws-sam build .pytest_cache .ruff_cache .mypy_cache
