# The user's commands. `make test` and the local target's `make up`/`make demo` run `make setup`
# first; the docker target needs only Docker (the images resolve their dependencies themselves).
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= uv
RUN := $(UV) run --frozen
DOCKER ?= docker
# Which stack `up`, `down`, `logs`, `ps`/`status` and `clean` act on: `docker` (compose) when a
# Docker engine answers, else `local` (processes under supervisord). TARGET=local|docker forces.
TARGET ?= $(shell $(DOCKER) info >/dev/null 2>&1 && echo docker || echo local)
# Docker's compose plugin when installed, else the same Compose v2 from PyPI (dev dependency).
COMPOSE_CLI ?= $(shell $(DOCKER) compose version >/dev/null 2>&1 && echo "$(DOCKER) compose" || echo .venv/bin/docker-compose)
COMPOSE ?= $(COMPOSE_CLI) -f compose/docker-compose.yml --env-file .env

.PHONY: help setup up down status ps logs lint checkov test test-jvm test-unit test-integration test-compose ci clean \
	check-target $(foreach t,local docker,up-$(t) down-$(t) ps-$(t) logs-$(t) clean-$(t))

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup: ## install Python deps (uv.lock), JVM jars (jvm/pom.xml) and Node tools (node/) into .cache/
	@command -v $(UV) >/dev/null || python3 -m pip install --quiet uv
	$(UV) sync --frozen
	scripts/resolve-jvm.sh
	scripts/resolve-node.sh
	@# mitmproxy (the chaos suite's S3 fault proxy) in a tool env of its own: its pins clash with uv.lock
	@.cache/tools/bin/mitmdump --version 2>/dev/null | grep -q "Mitmproxy: $(MITMPROXY_VERSION)" || \
	  UV_TOOL_DIR=.cache/tools UV_TOOL_BIN_DIR=.cache/tools/bin $(UV) tool install --quiet --force \
	  --python 3.11 mitmproxy==$(MITMPROXY_VERSION)
	@[ -f .env ] || cp .env.example .env

MITMPROXY_VERSION := 11.0.2

check-target:
	@case "$(TARGET)" in local|docker) ;; \
	  *) echo "TARGET must be local or docker, not '$(TARGET)'" >&2; exit 2 ;; esac

up: check-target ## start the stack (TARGET=local|docker) and provision bucket, topics, streams
	@$(MAKE) --no-print-directory up-$(TARGET) TARGET=$(TARGET)

down: check-target ## stop everything the stack started (TARGET=local|docker)
	@$(MAKE) --no-print-directory down-$(TARGET) TARGET=$(TARGET)

ps: check-target ## each service's state (docker: compose ps; local: as `make status`)
	@$(MAKE) --no-print-directory ps-$(TARGET) TARGET=$(TARGET)

status: ps ## each component's state (local: also URL and memory)

logs: check-target ## follow the stack's logs
	@$(MAKE) --no-print-directory logs-$(TARGET) TARGET=$(TARGET)

up-local: setup
	$(RUN) pinpipe up

down-local:
	$(RUN) pinpipe down

ps-local:
	$(RUN) pinpipe status

logs-local:
	tail -n 50 -F .run/logs/*.log

# .env from .env.example with plain shell: no host Python, uv, JDK or Maven on the docker target
.env:
	cp .env.example .env

# Airflow always (the daily DAG), whatever COMPOSE_PROFILES an older .env names
up-docker: .env
	$(COMPOSE) --profile airflow up --detach --build --wait
	@$(COMPOSE) ps
	@for url in "API docs|api 8000|/openapi/swagger" "Kafka UI|kafka-ui 8080|/" "Airflow|airflow 8080|/" \
	  "Connect|connect 8083|/connectors" "S3 (S3Proxy)|s3 4566|/" \
	  "Kinesis (kinesalite)|kinesis 4568|/"; do \
	  IFS='|' read -r what port path <<<"$$url"; \
	  address=$$($(COMPOSE) port $$port 2>/dev/null) && echo "  $$what: http://$$address$$path"; \
	done; true

# every profile: also services started with another COMPOSE_PROFILES than .env's
# Producers first, then Connect while the broker and S3 are up (`stop X` stops X's dependents
# before X), then the rest in reverse dependency order, each within its stop_grace_period.
down-docker:
	$(COMPOSE) --profile '*' stop api spark-stream
	$(COMPOSE) --profile '*' stop connect
	$(COMPOSE) --profile '*' down --remove-orphans

ps-docker:
	$(COMPOSE) --profile '*' ps --all

logs-docker:
	$(COMPOSE) logs --follow --tail 50

.PHONY: demo mwaa demo-local demo-docker
demo: check-target ## on the stack of TARGET: seed, post N=3000 records, wait until landed, run the DAG, print results
	@$(MAKE) --no-print-directory demo-$(TARGET) TARGET=$(TARGET)

demo-local: setup
	$(RUN) pinpipe demo --records $(or $(N),3000)

# The same steps in the compose stack's Airflow scheduler container (Spark, the Airflow login
# and the emulators' source database are there), after `up` (a running stack is reused); the
# ledger and the HTML report are copied to DEMO_OUT (.run/demo-docker/).
DEMO_OUT ?= .run/demo-docker
demo-docker: up-docker
	$(COMPOSE) --profile airflow exec -T airflow-scheduler pinpipe demo --records $(or $(N),3000)
	@mkdir -p $(DEMO_OUT)
	$(COMPOSE) --profile airflow cp airflow-scheduler:/var/lib/pinpipe/demo/. $(DEMO_OUT)/
	@echo "demo ledger and report: $$(ls -t $(DEMO_OUT)/report-*.html | head -1)"

mwaa: ## build dist/mwaa/ for Amazon MWAA: DAG folder, requirements.txt (Airflow constraints), startup.sh
	$(RUN) pinpipe mwaa-bundle --out dist/mwaa

.PHONY: bench
bench: setup ## every benchmark, one table beside references (ROWS="100000 1000000"); writes bench/results.json
	$(RUN) python bench/run_all.py $(foreach r,$(or $(ROWS),100000 1000000),--rows $(r))

lint: ## ruff + mypy + import layers (lint-imports); the CI workflow against GitHub's workflow schema
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) lint-imports --no-cache
	$(UV) tool run --quiet --from check-jsonschema==$(CHECK_JSONSCHEMA_VERSION) check-jsonschema \
	  --builtin-schema vendor.github-workflows .github/workflows/*.yml

CHECK_JSONSCHEMA_VERSION := 0.35.0

test-unit: setup
	$(RUN) pytest tests/unit -q

test-integration: setup
	$(RUN) pytest tests/integration tests/e2e -q

test-jvm: setup ## the S3 sink's Java unit tests (Maven Surefire, JUnit 5)
	mvn -B -ntp -Dstyle.color=never -s jvm/settings.xml -f jvm/s3-sink/pom.xml -DskipTests=false test

# checkov runs isolated and pinned (uv tool run): in the project's lock it resolves only to a
# 2024 release (3.1.x) and downgrades networkx for everyone else
CHECKOV ?= $(UV) tool run --isolated --from checkov==3.3.30 checkov
checkov: ## security checks of the aws target's templates (suppressions in them say why)
	$(CHECKOV) -d deploy --framework cloudformation --compact --quiet

test: setup lint checkov test-jvm ## lint, checkov, then every test (Java unit, unit, integration, e2e) against real components
	@# includes the reduced fault-injection run (tests/chaos: every fault, 10,500 records per
	@# layer, ~14 min); the docker target is `make test-compose`
	$(RUN) pytest tests -q -ra --durations=25 --ignore=tests/compose

test-chaos: setup ## the reduced fault-injection run (every fault, 10,500 records per layer)
	$(RUN) pytest tests/chaos -q -ra

.PHONY: chaos test-chaos
chaos: setup ## fault-injection suite: RUNS=3 runs x RECORDS=100000 per layer, every fault (FAULTS=...)
	$(RUN) python -m tests.chaos.runner --runs $(or $(RUNS),3) --records $(or $(RECORDS),100000) \
		$(if $(FAULTS),--faults $(FAULTS)) $(if $(OUT),--out $(OUT))

test-compose: setup ## the docker target end to end: own dockerd, local base images, compose stack (root)
	COMPOSE_CLI="$(COMPOSE_CLI)" scripts/test-compose.sh

ci: test test-compose ## what CI runs

clean: check-target ## stop the stack and delete its data (local: .run/, docker: volumes); keeps the jar cache
	@$(MAKE) --no-print-directory clean-$(TARGET) TARGET=$(TARGET)

clean-local: down-local
	rm -rf .run

clean-docker:
	$(COMPOSE) --profile '*' down --remove-orphans --volumes

# -- the aws target: one stage (STAGE=dev) on AWS + Databricks, see README "Deploy to AWS" ------
# Credentials: the standard AWS chain (PROFILE=... or AWS_PROFILE) and the Databricks CLI
# profile / DATABRICKS_* variables; options: PINPIPE_DEPLOY_* (pipeline/deploy/stage.py).
.PHONY: deploy deploy-plan destroy
DEPLOY_ARGS = $(if $(STAGE),--stage $(STAGE)) $(if $(REGION),--region $(REGION)) \
	$(if $(PROFILE),--profile $(PROFILE))

deploy-plan: ## show what `make deploy` would create, change or replace (STAGE, REGION, PROFILE)
	@[ -d dist/mwaa ] || $(MAKE) --no-print-directory mwaa
	$(RUN) pinpipe deploy plan $(DEPLOY_ARGS)

deploy: ## plan, confirm, apply a stage: stacks, plugin, wheel, image, DAGs, Databricks jobs (AUTO_APPROVE=1)
	@$(MAKE) --no-print-directory mwaa
	$(RUN) pinpipe deploy apply $(DEPLOY_ARGS) $(if $(AUTO_APPROVE),--auto-approve)

destroy: ## remove a stage; keeps the lake bucket unless DELETE_LAKE=1 (AUTO_APPROVE=1 skips the question)
	$(RUN) pinpipe deploy destroy $(DEPLOY_ARGS) $(if $(DELETE_LAKE),--delete-lake) \
		$(if $(AUTO_APPROVE),--auto-approve)
