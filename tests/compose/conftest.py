"""The docker target end to end: the compose stack of compose/docker-compose.yml, built and
started on a Docker engine, driven from the host through its published ports only.

`make test-compose` starts a Docker engine of its own and builds the base images the Dockerfiles
start FROM, then the project's images (scripts/test-compose.sh); the `compose_stack` fixture
brings the stack up waiting on its healthchecks, and takes it down with its volumes at the end,
also after a failure (`tests.support.compose.start_compose_stack`). The scenarios are the local
target's (tests/e2e, tests/integration), written once in tests/support/batch_scenario.py and
stream_scenario.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pyspark.sql import SparkSession

from pipeline.config import LocalSettings
from pipeline.transform.job import Row
from tests.support import batch_scenario
from tests.support.compose import (
    PORT_OFFSET,
    PROJECT,
    ComposeStack,
    post_and_land,
    start_compose_stack,
)

# The long-running services brought up; their one-shot init services (provision,
# register-connector, seed) run as their dependencies.
SERVICES = [
    *("s3", "kinesis", "kafka", "connect", "api", "spark-stream"),
    *("airflow", "airflow-scheduler", "airflow-dag-processor"),
]
LEFT_OUT = {
    "kafka-ui": "profile `ui`: its upstream image (ghcr.io/kafbat/kafka-ui) can be neither pulled"
    " nor rebuilt from Debian packages here",
    "localstack": "profile `localstack`: S3Proxy and kinesalite (services s3, kinesis) are the"
    " default S3 and Kinesis servers; test_localstack.py runs a stack of its own on LocalStack",
    "emulator-batch, emulator-stream": "not as endless feeds: the tests run these services as"
    " one-shots posting a counted number of records",
}


def pytest_report_header() -> list[str]:
    return [f"compose stack {PROJECT}: left out {name} ({why})" for name, why in LEFT_OUT.items()]


@pytest.fixture(scope="session")
def compose_stack() -> Iterator[ComposeStack]:
    with start_compose_stack(
        PROJECT, PORT_OFFSET, {"COMPOSE_PROFILES": "airflow"}, SERVICES
    ) as stack:
        yield stack


DRAWS = 100  # about 300 records


@pytest.fixture(scope="session")
def ledger(compose_stack: ComposeStack) -> list[dict[str, Any]]:
    """The emulator service, run once for a counted number of draws, all landed in S3."""
    return post_and_land(compose_stack, DRAWS)


@pytest.fixture(scope="session")
def spark_settings(compose_stack: ComposeStack) -> LocalSettings:
    """`spark` (tests/conftest.py) reads the stack's lake through the published S3 port."""
    return compose_stack.host


@pytest.fixture(scope="session")
def direct_gold(
    compose_stack: ComposeStack, ledger: list[dict[str, Any]], spark: SparkSession
) -> dict[str, list[Row]]:
    """The gold tables the batch job computes on the host, directly on the landed objects."""
    return batch_scenario.gold_computed_directly(spark, compose_stack.host, "direct-lake")
