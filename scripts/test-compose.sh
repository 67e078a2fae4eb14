#!/usr/bin/env bash
# `make test-compose`: the docker target end to end (tests/compose) on a Docker engine of this
# run's own. Starts dockerd (scripts/docker-engine.sh), builds the base images locally
# (scripts/build-base-images.sh), builds the project's images (from the build context alone:
# .dockerignore keeps the host's .cache/ out), runs the tests (their fixture
# brings the compose stack up and down), then takes everything down and stops dockerd, also when
# a step fails. The engine's data root is kept, so a second run on the same machine reuses the
# base image and the image layers.
#   scripts/test-compose.sh          all of it
#   scripts/test-compose.sh --build  only the engine, the base images and the images, leaving our
#                                    dockerd running (.ci/run builds while `make test` runs)
set -euo pipefail
cd "$(dirname "$0")/.."
build_only=false
[[ ${1:-} == --build ]] && build_only=true
COMPOSE_CLI=${COMPOSE_CLI:-.venv/bin/docker-compose}
export COMPOSE_CLI
# PINPIPE_DOCKER_HOST: use an engine that already runs (a hosted CI runner's, where the upstream
# base images can be pulled) instead of starting our own and building local stand-ins.
existing_engine=${PINPIPE_DOCKER_HOST:-}
DOCKER_HOST=${existing_engine:-$(scripts/docker-engine.sh host)}
export DOCKER_HOST
project=${PINPIPE_COMPOSE_TEST_PROJECT:-pinpipe-test}
build_log=${TMPDIR:-/tmp}/pinpipe-compose-build.log
started=$SECONDS
step() { echo "== [$((SECONDS - started))s] $*"; }

finish() {
  status=$?
  if $build_only; then
    step "images built (status $status); dockerd left running for the tests"
    exit "$status"
  fi
  step "tearing down: compose project $project, then dockerd"
  # shellcheck disable=SC2086  # COMPOSE_CLI is a command line
  for name in "$project" "$project-localstack"; do
    $COMPOSE_CLI --project-name "$name" -f compose/docker-compose.yml --profile '*' down --volumes \
      --remove-orphans --timeout 20 >/dev/null 2>&1 || true
  done
  [[ -n $existing_engine ]] || scripts/docker-engine.sh stop || true
  step "make test-compose finished with status $status"
  exit "$status"
}
trap finish EXIT

if [[ -n $existing_engine ]]; then
  step "using the Docker engine at $existing_engine (base images pulled from their registries)"
else
  step "starting a Docker engine"
  scripts/docker-engine.sh start
  step "base images (built from Debian packages: no registry answers here)"
  scripts/build-base-images.sh
fi
step "the project's images, resolving jars, Node and Python packages in the build (log: $build_log)"
# One service per image (services sharing an image share its build), one at a time in the
# order of their Dockerfiles' targets: without BuildKit (no buildx here) a build runs every stage
# before its target, so each build reuses the stages the one before it built, where parallel
# builds would each resolve the same jars and packages. The tests' `compose up` finds them built.
: >"$build_log"
for service in kafka connect s3 kinesis api spark-stream airflow; do
  image_started=$SECONDS
  # shellcheck disable=SC2086
  $COMPOSE_CLI -f compose/docker-compose.yml --env-file .env.example --profile airflow \
    build "$service" >>"$build_log" 2>&1 || { tail -n 60 "$build_log"; exit 1; }
  echo "   built $service in $((SECONDS - image_started))s"
done
$build_only && exit 0
# Two pytest runs, so that the default stack is down before the LocalStack one starts (half
# the memory and CPU at a time); both run even when the first fails.
tests_status=0
step "the end-to-end tests against the compose stack (S3Proxy, kinesalite)"
uv run --frozen pytest tests/compose --ignore=tests/compose/test_localstack.py -ra \
  -p no:cacheprovider --durations=12 || tests_status=$?
step "the batch and stream scenarios on LocalStack 4.14.0 (profile localstack, a stack of its own)"
uv run --frozen pytest tests/compose/test_localstack.py -ra -p no:cacheprovider --durations=6 \
  || tests_status=$?
exit "$tests_status"
