"""The batch job: landed JSON lines → bronze → silver → gold, all Delta.

Runs unchanged in three ways, the Spark session and every endpoint coming from config:

    uv run pinpipe batch --input s3a://pinpipe-lake --lake s3a://pinpipe-lake/lake
    uv run spark-submit --jars "$JARS" pipeline/transform/job.py --input ... --lake ...
    a Databricks Python job with this file and the same parameters (active session reused)

Under `spark-submit` the driver JVM starts before Python, so the Delta and S3A jars must be on
its command line: JARS is the comma-joined `pipeline.spark_session.extra_jars(get_settings())`.

Every write commits only real changes (see `pipeline.transform.lake`), so a second run over the
same landed objects leaves every table at the same version.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Started as a script (`spark-submit .../job.py`): make the `pipeline` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

import typer
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.config import Settings, get_settings
from pipeline.config.settings import topic_names
from pipeline.lake import QUERY_COLUMNS, LakePaths, is_delta_table, sort_columns
from pipeline.spark_session import get_spark, on_databricks
from pipeline.tables import register_tables, table_name
from pipeline.transform.bronze import Ingested, bronze_schema, ingest_topic
from pipeline.transform.gold import QUERIES, SilverTables
from pipeline.transform.lake import (
    append_absent,
    create_empty,
    merge_changed,
    read_delta,
    replace_if_changed,
)
from pipeline.transform.schemas import SOURCE_ID_COLUMNS, SOURCE_SCHEMAS
from pipeline.transform.silver import REJECTED_COLUMNS, bronze_to_silver, split_rejected

TABLES: tuple[str, ...] = ("pin", "geo", "user")
# A broken line read again from a rewritten object is the same rejected record.
REJECTED_KEY: tuple[str, ...] = (*REJECTED_COLUMNS, "_source_file")

Row = dict[str, Any]


@dataclass
class BatchReport:
    """What one run changed: rows appended or merged per table, gold tables rewritten."""

    bronze_appended: dict[str, int] = field(default_factory=dict)
    silver_merged: dict[str, int] = field(default_factory=dict)
    rejected_appended: int = 0
    gold_rewritten: list[str] = field(default_factory=list)
    # Steps not run, each with why (an empty or unchanged landing zone skips most of the job).
    skipped: list[str] = field(default_factory=list)

    @property
    def changed_anything(self) -> bool:
        return bool(
            any(self.bronze_appended.values())
            or any(self.silver_merged.values())
            or self.rejected_appended
            or self.gold_rewritten
        )


def _update_silver(
    spark: SparkSession, paths: LakePaths, table: str, ingested: Ingested, report: BatchReport
) -> tuple[int, DataFrame | None, bool]:
    """Bring one silver table up to date with bronze: (rows merged, rejected rows to append,
    whether the table was just created empty from an empty bronze).

    A new silver table is built from all of bronze. After that only the ids of the lines bronze
    has just appended can change, so only their bronze rows are cleaned and deduplicated again
    (`latest_arrival` over every arrival of each such id, as in a full rebuild) and compared with
    their silver rows; only the new lines can hold new rejects.
    """
    silver_path = paths.silver(table)
    if not is_delta_table(spark, silver_path):
        silver, rejected = bronze_to_silver(read_delta(spark, paths.bronze(table)), table)
        if ingested.created_empty:
            # Bronze is empty: the same empty table `merge_changed` would create, without the
            # Spark jobs that clean and count no rows (most of an empty run's cost).
            create_empty(spark, silver.schema, silver_path)
            report.skipped.append(f"silver {table} MERGE: bronze is empty, table created empty")
            return 0, None, True
        return merge_changed(spark, silver, silver_path, "ind"), rejected, False
    if ingested.rows is None:
        report.skipped.append(f"silver {table} MERGE: bronze added nothing")
        return 0, None, False
    id_column = SOURCE_ID_COLUMNS[table]
    touched = (
        ingested.rows.select(F.col(id_column).alias("ind"))
        .where(F.col("ind").isNotNull())
        .distinct()
    )
    bronze = read_delta(spark, paths.bronze(table))
    arrivals = bronze.join(touched.withColumnRenamed("ind", id_column), id_column, "left_semi")
    silver, _ = bronze_to_silver(arrivals, table)
    _, rejected = split_rejected(ingested.rows, table)
    return merge_changed(spark, silver, silver_path, "ind", among=touched), rejected, False


def _create_empty_gold(
    spark: SparkSession, paths: LakePaths, targets: Mapping[str, str], report: BatchReport
) -> None:
    """Gold over empty silver, without running the queries: each one joins or groups silver
    rows, so over none it gives none (`tests/unit/test_gold.py` holds every query to that). Each
    table absent is created empty with its query's schema, from the plan alone."""
    silver = SilverTables(*(read_delta(spark, paths.silver(table)) for table in TABLES))
    for query_id, query in QUERIES.items():
        if not is_delta_table(spark, targets[query_id]):
            create_empty(spark, query(silver).schema, targets[query_id])
            report.gold_rewritten.append(query_id)
        elif replace_if_changed(spark, query(silver), targets[query_id]):
            report.gold_rewritten.append(query_id)


def run_batch(
    spark: SparkSession,
    input_root: str,
    lake_root: str,
    topics: Mapping[str, str],
    stage_gold: bool = False,
) -> BatchReport:
    """Bronze → silver → gold over the three topics; returns what changed.

    `stage_gold`: write gold to its staging location (`LakePaths.staged_gold`), for the DAG's
    checks to audit and `pipeline/orchestrate/publish.py` to publish (write-audit-publish).
    """
    paths = LakePaths(lake_root)
    report = BatchReport()

    ingested = {
        table: ingest_topic(
            spark,
            input_root,
            topics[table],
            SOURCE_SCHEMAS[table],
            paths.bronze(table),
            paths.ingested(table),
        )
        for table in TABLES
    }
    try:
        rejected: DataFrame | None = None
        created_empty: set[str] = set()  # silver tables this run created empty
        for table in TABLES:
            report.bronze_appended[table] = ingested[table].appended
            merged, rejected_rows, created = _update_silver(
                spark, paths, table, ingested[table], report
            )
            report.silver_merged[table] = merged
            if created:
                created_empty.add(table)
            if rejected_rows is not None:
                rejected = (
                    rejected_rows if rejected is None else rejected.unionByName(rejected_rows)
                )
        if rejected is not None:
            report.rejected_appended = append_absent(spark, rejected, paths.rejected, REJECTED_KEY)
        elif not is_delta_table(spark, paths.rejected):
            nothing = spark.createDataFrame([], bronze_schema(SOURCE_SCHEMAS["pin"]))
            create_empty(spark, split_rejected(nothing, "pin")[1].schema, paths.rejected)
    finally:
        for table_ingested in ingested.values():
            table_ingested.release()

    targets = {
        query_id: paths.staged_gold(query_id) if stage_gold else paths.gold(query_id)
        for query_id in QUERIES
    }
    silver_unchanged = not any(report.silver_merged.values())
    if silver_unchanged and all(is_delta_table(spark, path) for path in targets.values()):
        report.skipped.append("gold queries: silver unchanged")
        return report  # gold is a function of silver alone
    if created_empty == set(TABLES):
        report.skipped.append("gold queries: silver is empty, gold tables created empty")
        _create_empty_gold(spark, paths, targets, report)
        return report

    # Nine queries read the same three tables: keep them in memory for the gold step.
    # Cached hash-partitioned and sorted by `ind`: the eight joins on `ind` then reuse that layout
    # instead of shuffling and sorting both sides again for every query.
    configured = str(spark.conf.get("spark.sql.shuffle.partitions", "4"))
    partitions = int(configured) if configured.isdigit() else 4  # Databricks may say "auto"
    silver_tables = SilverTables(
        *(
            read_delta(spark, paths.silver(table))
            .repartition(partitions, "ind")
            .sortWithinPartitions("ind")
            .persist()
            for table in TABLES
        )
    )
    try:
        for query_id, query in QUERIES.items():
            if replace_if_changed(spark, query(silver_tables), targets[query_id]):
                report.gold_rewritten.append(query_id)
    finally:
        for frame in silver_tables:
            frame.unpersist()
    return report


def _jsonable(value: Any) -> Any:
    """Row values as JSON: ISO strings for times, numbers for decimals (medians)."""
    if isinstance(value, datetime):
        # PySpark hands timestamps back as naive local times; astimezone reads them as such.
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def read_gold(spark: SparkSession, lake_root: str) -> dict[str, list[Row]]:
    """Every gold table as rows with the data contract's columns, sorted by the leading ones."""
    paths = LakePaths(lake_root)
    results: dict[str, list[Row]] = {}
    for query_id, columns in QUERY_COLUMNS.items():
        path = paths.gold(query_id)
        if not is_delta_table(spark, path):
            raise FileNotFoundError(f"gold table {query_id} missing under {lake_root}: run batch")
        table = read_delta(spark, path).select(*columns).orderBy(*sort_columns(query_id))
        results[query_id] = [
            {name: _jsonable(value) for name, value in row.asDict().items()}
            for row in table.collect()
        ]
    return results


def read_gold_by_name(
    spark: SparkSession, settings: Settings
) -> dict[str, list[dict[str, object]]]:
    """Every gold table, read by its name, as rows in the order `pinpipe analytics` prints."""
    results = {}
    for query_id, columns in QUERY_COLUMNS.items():
        frame = spark.table(table_name(settings, "gold", query_id))
        ordered = frame.select(*columns).orderBy(*sort_columns(query_id))
        results[query_id] = [
            {key: _jsonable(value) for key, value in row.asDict().items()}
            for row in ordered.collect()
        ]
    return results


def write_results_json(results: Mapping[str, list[Row]], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def run(
    input_root: str | None = None,
    lake_root: str | None = None,
    prefix: str | None = None,
    results_json: Path | None = None,
    settings: Settings | None = None,
    stage_gold: bool = False,
) -> BatchReport:
    """The whole job with defaults from config: landing zone, lake root and topic prefix."""
    settings = settings or get_settings()
    spark = get_spark("pinpipe-batch", settings)
    lake = lake_root or settings.lake_uri
    report = run_batch(
        spark,
        input_root or settings.landing_uri,
        lake,
        topic_names(prefix or settings.topic_prefix),
        stage_gold=stage_gold,
    )
    if on_databricks():  # names in Unity Catalog persist; a local session names them on demand
        register_tables(spark, settings, lake)
    if results_json is not None:
        write_results_json(read_gold(spark, lake), results_json)
    return report


def main(
    input_root: Annotated[
        str | None, typer.Option("--input", help="landing root holding topics/<topic>/...")
    ] = None,
    lake_root: Annotated[str | None, typer.Option("--lake", help="Delta lake root")] = None,
    prefix: Annotated[str | None, typer.Option(help="topic prefix (default: config)")] = None,
    results_json: Annotated[
        Path | None, typer.Option("--results-json", help="write gold results to this file")
    ] = None,
    stage_gold: Annotated[
        bool, typer.Option("--stage-gold", help="gold to staging, published after the checks")
    ] = False,
) -> None:
    """Run bronze → silver → gold once."""
    report = run(input_root, lake_root, prefix, results_json, stage_gold=stage_gold)
    print(json.dumps(report.__dict__, sort_keys=True))


if __name__ == "__main__":
    typer.run(main)
