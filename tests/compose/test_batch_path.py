"""The batch layer on the compose stack: the emulator service posts through the API container to
Kafka, the Connect container lands the records in the S3 server, and the Spark image's batch
job (service spark-batch) cleans them and computes the nine gold tables. As on the local target
(tests/e2e/test_batch_dag.py): every acknowledged record lands and reaches silver, and the gold
tables equal what the batch job computes directly on the same landed objects."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pyspark.sql import SparkSession

from pipeline.transform.job import Row
from tests.support import batch_scenario
from tests.support.compose import ComposeStack

pytestmark = [pytest.mark.compose, pytest.mark.timeout(2400)]


@pytest.fixture(scope="module")
def results(compose_stack: ComposeStack, ledger: list[dict[str, Any]]) -> dict[str, Any]:
    """`pinpipe batch` in the Spark image over the landed data; its --results-json."""
    compose_stack.one_shot(
        "spark-batch", "pinpipe", "batch", "--results-json", "/out/results.json", timeout_s=1500
    )
    answer: dict[str, Any] = json.loads((compose_stack.out / "results.json").read_text())
    return answer


def test_the_job_in_the_container_computes_what_the_job_computes_directly(
    compose_stack: ComposeStack,
    results: dict[str, Any],
    direct_gold: dict[str, list[Row]],
    spark: SparkSession,
) -> None:
    batch_scenario.assert_results_json(results)
    batch_scenario.assert_gold_as_computed_directly(spark, compose_stack.host.lake_uri, direct_gold)


def test_no_acknowledged_record_is_missing_from_silver(
    compose_stack: ComposeStack,
    results: dict[str, Any],
    ledger: list[dict[str, Any]],
    spark: SparkSession,
) -> None:
    batch_scenario.assert_every_acknowledged_id_in_silver(
        spark, compose_stack.host.lake_uri, ledger
    )
