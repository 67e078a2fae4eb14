"""Data-quality checks of the batch job's output, run by the DAG after it (data contract §3, §4).

silver (pin, geo, user): rows present, no null `ind`, no duplicate `ind`;
gold (the nine queries): table present with the data contract columns, rows present;
with a window (the DAG run's data interval, `--window-start/--window-end`), per table, over what
landed in it by landing time (bronze `_source_modified`, the object's LastModified): rows landed,
freshness (the newest landed at most `quality_max_staleness_s` before the window's end) and the
reject rate (rejected / landed rows, at most `quality_max_reject_rate`).
With `--staged` the gold checks read the staged tables (`LakePaths.staged_gold`) the DAG's batch
job wrote: write-audit-publish, the DAG's `pipeline/orchestrate/publish.py` publishes them next.

Runs unchanged as a Spark application, like the batch job:

    spark-submit pipeline/transform/quality.py --lake s3a://pinpipe-lake/lake
    a Databricks Python task with this file and the same parameters

and exits non-zero, naming every failed check, when any check fails. Every run appends its
results (check, threshold, measured value, pass/fail) to the Delta table `<lake>/quality/checks`
first, so the HTML report (`pipeline.report`) can show the history of the checks.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Started as a script (`spark-submit .../quality.py`): make the `pipeline` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import typer
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, StringType, StructField, StructType, TimestampType

from pipeline.config import Settings, get_settings
from pipeline.lake import QUERY_COLUMNS, LakePaths, is_delta_table
from pipeline.landing import Window
from pipeline.spark_session import get_spark
from pipeline.transform.bronze import SOURCE_FILE, SOURCE_MODIFIED
from pipeline.transform.lake import read_delta

SILVER_TABLES: tuple[str, ...] = ("pin", "geo", "user")
SILVER_KEY = "ind"
# One row per check per run: what the report reads back as the checks' history.
HISTORY_SCHEMA = StructType(
    [
        StructField("run_id", StringType(), False),
        StructField("run_at", TimestampType(), False),
        StructField("table", StringType(), False),
        StructField("check", StringType(), False),
        StructField("threshold", StringType(), False),
        StructField("measured", StringType(), False),
        StructField("passed", BooleanType(), False),
    ]
)


@dataclass(frozen=True)
class Check:
    """One check of one table: `passed`, and what was found either way."""

    table: str  # "silver.pin", "gold.q1_top_category_by_country", ...
    name: str
    passed: bool
    found: str
    threshold: str = ""  # what passing means, e.g. "> 0 rows"

    def __str__(self) -> str:
        return f"{'ok  ' if self.passed else 'FAIL'} {self.table}: {self.name} ({self.found})"


class DataQualityError(RuntimeError):
    """At least one check failed; the message lists every failed check."""

    def __init__(self, failed: list[Check]) -> None:
        super().__init__(
            f"{len(failed)} data-quality check(s) failed: " + "; ".join(map(str, failed))
        )
        self.failed = failed


def silver_checks(table: str, df: DataFrame) -> list[Check]:
    """Rows present, no null and no duplicate ids: one aggregation over the table."""
    key = F.col(SILVER_KEY)
    stats = df.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_if(key.isNull()).alias("null_ids"),
        (F.count(key) - F.count_distinct(key)).alias("duplicate_ids"),
    ).first()
    if stats is None:  # an aggregation without grouping always yields one row
        raise RuntimeError(f"no statistics for silver.{table}")
    rows, nulls, duplicates = (int(stats[c]) for c in ("rows", "null_ids", "duplicate_ids"))
    name = f"silver.{table}"
    return [
        Check(name, "rows present", rows > 0, f"{rows} rows", "> 0 rows"),
        Check(name, f"no null {SILVER_KEY}", nulls == 0, f"{nulls} null", "0 null"),
        Check(
            name,
            f"no duplicate {SILVER_KEY}",
            duplicates == 0,
            f"{duplicates} duplicated",
            "0 duplicated",
        ),
    ]


def gold_checks(query_id: str, df: DataFrame | None) -> list[Check]:
    """The table exists with the data contract columns and holds rows (`df` None: no table)."""
    name = f"gold.{query_id}"
    if df is None:
        return [Check(name, "table present", False, "no Delta table", "Delta table")]
    expected = QUERY_COLUMNS[query_id]
    missing = [column for column in expected if column not in df.columns]
    rows = df.count()
    return [
        Check(name, "table present", True, "Delta table", "Delta table"),
        Check(
            name,
            "SPEC columns",
            not missing,
            f"missing {missing}" if missing else "all",
            f"all of {', '.join(expected)}",
        ),
        Check(name, "rows present", rows > 0, f"{rows} rows", "> 0 rows"),
    ]


def window_checks(
    spark: SparkSession, lake_root: str, window: Window, settings: Settings
) -> list[Check]:
    """Per table, over the rows that landed within `window`: rows present, freshness, reject
    rate (rejected rows of the objects that landed then / their landed rows)."""
    paths = LakePaths(lake_root)
    rejected = read_delta(spark, paths.rejected) if is_delta_table(spark, paths.rejected) else None
    max_rate, max_age = settings.quality_max_reject_rate, settings.quality_max_staleness_s
    checks: list[Check] = []
    for table in SILVER_TABLES:
        name = f"bronze.{table}"
        if not is_delta_table(spark, paths.bronze(table)):
            checks.append(Check(name, "table present", False, "no Delta table", "Delta table"))
            continue
        # epoch seconds: compared as instants, whatever the session time zone
        modified = F.col(SOURCE_MODIFIED).cast("double")
        landed = read_delta(spark, paths.bronze(table)).where(
            (modified >= window.start.timestamp()) & (modified < window.end.timestamp())
        )
        stats = landed.agg(F.count(F.lit(1)).alias("rows"), F.max(modified).alias("newest")).first()
        if stats is None:  # an aggregation without grouping always yields one row
            raise RuntimeError(f"no statistics for {name}")
        rows = int(stats["rows"])
        age = None if stats["newest"] is None else window.end.timestamp() - stats["newest"]
        rejects = 0
        if rejected is not None and rows:
            files = landed.select(SOURCE_FILE).distinct()
            rejects = rejected.where(F.col("source") == table).join(files, SOURCE_FILE).count()
        rate = rejects / rows if rows else 0.0
        span = f"{window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} UTC"
        checks += [
            Check(name, "rows landed in the window", rows > 0, f"{rows} rows, {span}", "> 0 rows"),
            Check(
                name,
                "fresh: newest landed row's age at the window's end",
                age is not None and age <= max_age,
                "nothing landed" if age is None else f"{age / 3600:.1f} h",
                f"<= {max_age / 3600:g} h",
            ),
            Check(
                name,
                "reject rate in the window",
                rate <= max_rate,
                f"{rejects} of {rows} rejected ({rate:.1%})",
                f"<= {max_rate:.1%}",
            ),
        ]
    return checks


def check_lake(spark: SparkSession, lake_root: str, staged: bool = False) -> list[Check]:
    """Every silver and gold check against the lake at `lake_root` (`staged`: the gold tables
    the DAG's batch job staged for publishing, instead of the published ones)."""
    paths = LakePaths(lake_root)
    checks: list[Check] = []
    for table in SILVER_TABLES:
        path = paths.silver(table)
        if is_delta_table(spark, path):
            checks += silver_checks(table, read_delta(spark, path))
        else:
            checks.append(
                Check(f"silver.{table}", "table present", False, "no Delta table", "Delta table")
            )
    for query_id in QUERY_COLUMNS:
        path = paths.staged_gold(query_id) if staged else paths.gold(query_id)
        result = read_delta(spark, path) if is_delta_table(spark, path) else None
        checks += gold_checks(query_id, result)  # staged: what is about to be published
    return checks


def record_history(
    spark: SparkSession, lake_root: str, checks: list[Check], run_at: datetime | None = None
) -> str:
    """Append this run's results to `<lake>/quality/checks`; returns the run's id."""
    run_at = run_at or datetime.now(UTC)
    run_id = f"{run_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    rows = [(run_id, run_at, c.table, c.name, c.threshold, c.found, c.passed) for c in checks]
    history = spark.createDataFrame(rows, HISTORY_SCHEMA)
    history.write.format("delta").mode("append").save(LakePaths(lake_root).quality_checks)
    return run_id


def run(
    lake_root: str | None = None,
    settings: Settings | None = None,
    window: Window | None = None,
    staged: bool = False,
) -> list[Check]:
    """Check the configured lake and record the results in it; raise `DataQualityError`
    naming every failed check."""
    settings = settings or get_settings()
    lake = lake_root or settings.lake_uri
    spark = get_spark("pinpipe-quality", settings)
    checks = check_lake(spark, lake, staged)
    if window is not None:
        checks += window_checks(spark, lake, window, settings)
    for check in checks:
        print(check, flush=True)
    # Failed runs too: the report's history shows when a check started failing.
    record_history(spark, lake, checks)
    failed = [check for check in checks if not check.passed]
    if failed:
        raise DataQualityError(failed)
    print(f"data quality: all {len(checks)} checks passed on {lake}", flush=True)
    return checks


def main(
    lake_root: Annotated[
        str | None, typer.Option("--lake", help="Delta lake root (default: config)")
    ] = None,
    window_start: Annotated[
        datetime | None,
        typer.Option("--window-start", help="the run's data interval start (ISO 8601, UTC)"),
    ] = None,
    window_end: Annotated[
        datetime | None, typer.Option("--window-end", help="its end (exclusive)")
    ] = None,
    staged: Annotated[
        bool, typer.Option("--staged", help="check the staged gold tables, not the published")
    ] = False,
) -> None:
    """Check silver and gold; exit 1 naming every failed check."""
    if (window_start is None) != (window_end is None):
        raise typer.BadParameter("--window-start and --window-end go together")
    window = None
    if window_start is not None and window_end is not None:
        # naive times are UTC, as Airflow's data intervals are
        window = Window(
            *(t if t.tzinfo else t.replace(tzinfo=UTC) for t in (window_start, window_end))
        )
    try:
        run(lake_root, window=window, staged=staged)
    except DataQualityError as error:
        print(f"DATA QUALITY CHECK FAILED: {error}", file=sys.stderr, flush=True)
        raise typer.Exit(1) from error


if __name__ == "__main__":
    typer.run(main)
