"""Publish the staged gold tables: the last step of the DAG's write-audit-publish.

The DAG's batch job writes gold to `<lake>/staging/gold/<query>` (`--stage-gold`), the quality
checks audit it there, and only when every check passed does this job copy each staged table over
the published one (`<lake>/gold/<query>`, what readers and the report use). A failed check stops
the run before this task, so the previous gold stays as it was.

Runs unchanged as a Spark application, like the batch job:

    spark-submit pipeline/orchestrate/publish.py --lake s3a://pinpipe-lake/lake
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Started as a script (`spark-submit .../publish.py`): make the `pipeline` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from typing import Annotated

import typer
from pyspark.sql import SparkSession

from pipeline.config import get_settings
from pipeline.lake import QUERY_COLUMNS, LakePaths, is_delta_table
from pipeline.spark_session import get_spark, on_databricks
from pipeline.tables import register_tables
from pipeline.transform.lake import read_delta, replace_if_changed


class NothingStagedError(RuntimeError):
    """A staged gold table is missing: there is nothing checked to publish."""


def publish_gold(spark: SparkSession, lake_root: str) -> list[str]:
    """Copy every staged gold table over the published one; returns the tables that changed."""
    paths = LakePaths(lake_root)
    missing = [q for q in QUERY_COLUMNS if not is_delta_table(spark, paths.staged_gold(q))]
    if missing:
        raise NothingStagedError(f"no staged gold table for {missing} under {lake_root}")
    return [
        query_id
        for query_id in QUERY_COLUMNS
        if replace_if_changed(
            spark, read_delta(spark, paths.staged_gold(query_id)), paths.gold(query_id)
        )
    ]


def main(
    lake_root: Annotated[
        str | None, typer.Option("--lake", help="Delta lake root (default: config)")
    ] = None,
) -> None:
    """Publish the checked, staged gold tables."""
    settings = get_settings()
    lake = lake_root or settings.lake_uri
    spark = get_spark("pinpipe-publish", settings)
    changed = publish_gold(spark, lake)
    if on_databricks():  # the first publish creates the gold tables: name them in the catalog
        register_tables(spark, settings, lake)
    print(f"gold published on {lake}: {', '.join(changed) or 'no table changed'}", flush=True)


if __name__ == "__main__":
    typer.run(main)
