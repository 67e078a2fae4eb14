# The user's commands. `make up` and `make test` each run `make setup` first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
TARGET ?= local
UV ?= uv
RUN := $(UV) run --frozen

.PHONY: help setup up down status logs lint test test-unit test-integration ci clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup: ## install Python deps (uv.lock) and resolve JVM jars (jvm/pom.xml) into .cache/
	@command -v $(UV) >/dev/null || python3 -m pip install --quiet uv
	$(UV) sync --frozen
	scripts/resolve-jvm.sh
	@[ -f .env ] || cp .env.example .env

up: setup ## start the stack (TARGET=local|docker) and provision bucket, topics, streams
	$(RUN) pinpipe up

down: ## stop everything the stack started
	$(RUN) pinpipe down

status: ## each component's state, URL and memory
	$(RUN) pinpipe status

logs: ## follow the local stack's logs
	tail -n 50 -F .run/logs/*.log

lint: ## ruff + mypy
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

test-unit: setup
	$(RUN) pytest tests/unit -q

test-integration: setup
	$(RUN) pytest tests/integration tests/e2e -q

test: setup lint ## lint, then every test (unit, integration, e2e) against real components
	$(RUN) pytest tests -q -ra

ci: test ## what CI runs

clean: down ## remove the run folder (data, logs); keeps the jar cache
	rm -rf .run
