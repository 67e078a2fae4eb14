"""The batch layer on the compose stack: the emulator service posts through the API container to
Kafka, the Connect container lands the records in the emulator's S3, and the Spark image's batch
job (service spark-batch) cleans them and computes the nine gold tables. As on the local target
(tests/e2e/test_batch_dag.py): every acknowledged record lands and reaches silver, and the gold
tables equal what the batch job computes directly on the same landed objects."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pyspark.sql import SparkSession

from pipeline.lake import QUERY_COLUMNS, LakePaths
from pipeline.transform.job import TABLES, Row, read_gold
from pipeline.transform.lake import read_delta
from tests.compose.conftest import ComposeStack

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
    host = compose_stack.host
    assert list(results) == list(QUERY_COLUMNS)
    for query_id, rows in results.items():
        assert rows, f"{query_id}: no rows"
        assert all(list(row) == list(QUERY_COLUMNS[query_id]) for row in rows), query_id
    from_container = read_gold(spark, host.lake_uri)
    assert len(from_container) == 9 and all(from_container.values())
    assert from_container == direct_gold


def test_no_acknowledged_record_is_missing_from_silver(
    compose_stack: ComposeStack,
    results: dict[str, Any],
    ledger: list[dict[str, Any]],
    spark: SparkSession,
) -> None:
    paths = LakePaths(compose_stack.host.lake_uri)
    for table in TABLES:
        rows = read_delta(spark, paths.silver(table)).select("ind").collect()
        silver = {row["ind"] for row in rows}
        acknowledged = {entry["id"] for entry in ledger if entry["table"] == table}
        assert acknowledged, f"no {table} record in the ledger"
        missing = sorted(acknowledged - silver)
        assert not missing, f"{table}: {len(missing)} acknowledged ids missing: {missing[:10]}"
