"""The batch path's scenario, written once for every target: counted records posted through the
API (the emulator keeps a ledger of what was acknowledged) until every one has landed; then the
batch job runs as the target runs it (the DAG on the local stack's Airflow, the `spark-batch`
container on the compose stack and on LocalStack), and

- silver holds every acknowledged id;
- the nine gold tables have rows, in their data contract columns;
- gold equals what the batch job computes directly, on the host, over the same landed objects.

A tier passes its stack handle: the host's `Settings` (how the host reaches the target's Kafka,
S3 and API) and, to post, a function returning the emulator's summary and ledger
(tests/e2e/test_batch_dag.py, tests/compose/conftest.py, tests/compose/test_localstack.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pyspark.sql import SparkSession

from pipeline.config import Settings
from pipeline.lake import QUERY_COLUMNS, LakePaths
from pipeline.landing import LedgerEntry, not_landed
from pipeline.transform.job import TABLES, Row, read_gold, run_batch
from pipeline.transform.lake import read_delta
from tests.support.waiting import wait_for

# The emulator's run as a tier makes it: (its summary, `EmulationSummary.as_dict()`, its ledger).
Post = Callable[[], tuple[Mapping[str, Any], list[dict[str, Any]]]]


def post_and_land(settings: Settings, post: Post) -> list[dict[str, Any]]:
    """Post (every record acknowledged), then wait until every acknowledged record landed."""
    summary, entries = post()
    assert summary["accepted"] == summary["sent"] > 0, summary
    assert summary["rejected"] == summary["failed"] == 0, summary
    assert len(entries) == summary["accepted"]
    wait_until_landed(settings, entries)
    return entries


def wait_until_landed(settings: Settings, entries: Sequence[LedgerEntry]) -> None:
    wait_for(
        lambda: not not_landed(settings, entries),
        settings.landing_flush_interval_ms / 1000 + 120,
        "every acknowledged record to land",
        interval_s=2,
        on_timeout=lambda: f"{len(not_landed(settings, entries))} acknowledged never landed",
    )


def assert_results_json(results: Mapping[str, list[Mapping[str, Any]]]) -> None:
    """The batch job's `--results-json`: every query, each with rows in its columns."""
    assert list(results) == list(QUERY_COLUMNS)
    for query_id, rows in results.items():
        assert rows, f"{query_id}: no rows"
        assert all(list(row) == list(QUERY_COLUMNS[query_id]) for row in rows), query_id


def assert_gold_filled(gold: Mapping[str, list[Row]]) -> None:
    assert len(gold) == 9 and all(gold.values()), {name: len(rows) for name, rows in gold.items()}


def assert_every_acknowledged_id_in_silver(
    spark: SparkSession, lake_uri: str, ledger: list[dict[str, Any]]
) -> None:
    paths = LakePaths(lake_uri)
    for table in TABLES:
        rows = read_delta(spark, paths.silver(table)).select("ind").collect()
        silver = {row["ind"] for row in rows}
        acknowledged = {entry["id"] for entry in ledger if entry["table"] == table}
        assert acknowledged, f"no {table} record in the ledger"
        missing = sorted(acknowledged - silver)
        assert not missing, f"{table}: {len(missing)} acknowledged ids missing: {missing[:10]}"


def gold_computed_directly(
    spark: SparkSession, settings: Settings, lake_folder: str
) -> dict[str, list[Row]]:
    """The batch job run on the host over everything landed, into `s3a://<bucket>/<folder>`."""
    direct_lake = f"s3a://{settings.lake_bucket}/{lake_folder}"
    run_batch(spark, settings.landing_uri, direct_lake, settings.topics)
    return read_gold(spark, direct_lake)


def assert_gold_as_computed_directly(
    spark: SparkSession, lake_uri: str, direct: Mapping[str, list[Row]]
) -> None:
    """The target's published gold: filled, and equal to the directly computed one."""
    published = read_gold(spark, lake_uri)
    assert_gold_filled(published)
    assert published == direct
