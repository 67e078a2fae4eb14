#!/usr/bin/env bash
# `make test-compose`: the docker target end to end (tests/compose) on a Docker engine of this
# run's own. Starts dockerd (scripts/docker-engine.sh), builds the base images locally
# (scripts/build-base-images.sh), builds the project's images, runs the tests (their fixture
# brings the compose stack up and down), then takes everything down and stops dockerd, also when
# a step fails. The engine's data root is kept, so a second run on the same machine reuses the
# base image and the image layers.
set -euo pipefail
cd "$(dirname "$0")/.."
COMPOSE_CLI=${COMPOSE_CLI:-.venv/bin/docker-compose}
export COMPOSE_CLI
DOCKER_HOST=$(scripts/docker-engine.sh host)
export DOCKER_HOST
project=${PINPIPE_COMPOSE_TEST_PROJECT:-pinpipe-test}
build_log=${TMPDIR:-/tmp}/pinpipe-compose-build.log
started=$SECONDS
step() { echo "== [$((SECONDS - started))s] $*"; }

finish() {
  status=$?
  step "tearing down: compose project $project, then dockerd"
  # shellcheck disable=SC2086  # COMPOSE_CLI is a command line
  $COMPOSE_CLI --project-name "$project" -f compose/docker-compose.yml --profile '*' down --volumes \
    --remove-orphans --timeout 20 >/dev/null 2>&1 || true
  scripts/docker-engine.sh stop || true
  step "make test-compose finished with status $status"
  exit "$status"
}
trap finish EXIT

step "starting a Docker engine"
scripts/docker-engine.sh start
step "base images (built from Debian packages: no registry answers here)"
scripts/build-base-images.sh
step "the project's images (log: $build_log)"
# One service per image (services sharing an image share its build): s3proxy, kinesis, kafka,
# connect, api, spark, airflow. The tests' `compose up` then finds them built.
# shellcheck disable=SC2086
$COMPOSE_CLI -f compose/docker-compose.yml --env-file .env.example --profile airflow \
  build s3 kinesis kafka connect api spark-stream airflow >"$build_log" 2>&1 \
  || { tail -n 60 "$build_log"; exit 1; }
step "the end-to-end tests against the compose stack"
uv run --frozen pytest tests/compose -ra -p no:cacheprovider --durations=12
