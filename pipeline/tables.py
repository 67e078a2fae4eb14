"""The lake's Delta tables by name: `<schema>.<table>`, a schema per layer, in a catalog.

On Databricks the names are registered in Unity Catalog, `<table_catalog>.<prefix><layer>.<table>`
(settings `table_catalog`, `table_schema_prefix`), as external tables over the lake's paths, so
SQL warehouses and notebooks can `SELECT` them. Elsewhere the same names resolve through the
Spark session's catalog: `register_tables` creates them (CREATE TABLE IF NOT EXISTS ... USING DELTA
LOCATION ...) in each session that wants them (`pinpipe analytics`, `pinpipe sql`), since the
local session keeps its catalog in memory.

    bronze.pin|geo|user    silver.pin|geo|user|rejected    gold.q1_top_category_by_country, ...
    stream.<prefix>_pin_table|..._geo_table|..._user_table|<prefix>_rejected
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from pipeline.config import Settings
from pipeline.lake import QUERY_COLUMNS, LakePaths, StreamPaths, is_delta_table
from pipeline.spark_session import on_databricks

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

TABLES: tuple[str, ...] = ("pin", "geo", "user")
LAYERS: tuple[str, ...] = ("bronze", "silver", "gold", "stream")


def _quoted(*parts: str) -> str:
    return ".".join(f"`{part.replace('`', '``')}`" for part in parts)


def schema_name(settings: Settings, layer: str) -> str:
    """The layer's schema, with the catalog in front when one is configured (quoted)."""
    schema = f"{settings.table_schema_prefix}{layer}"
    return _quoted(settings.table_catalog, schema) if settings.table_catalog else _quoted(schema)


def table_name(settings: Settings, layer: str, table: str) -> str:
    """The name to use in SQL, e.g. `silver`.`pin` or `main`.`pinpipe_gold`.`q6_...`."""
    return f"{schema_name(settings, layer)}.{_quoted(table)}"


def lake_tables(settings: Settings, lake_root: str) -> Iterator[tuple[str, str, str]]:
    """(layer, table, path) of every table the jobs write under `lake_root`."""
    paths = LakePaths(lake_root)
    for table in TABLES:
        yield "bronze", table, paths.bronze(table)
    for table in TABLES:
        yield "silver", table, paths.silver(table)
    yield "silver", "rejected", paths.rejected
    for query_id in QUERY_COLUMNS:
        yield "gold", query_id, paths.gold(query_id)
    stream = StreamPaths(lake_root, settings.topic_prefix)
    for table in TABLES:
        yield "stream", stream.table_name(table), stream.table(table)
    yield "stream", stream.rejected_name, stream.rejected


def _location(path: str) -> str:
    # Unity Catalog's external locations are s3:// URLs; Spark's S3A needs s3a:// elsewhere
    return path.replace("s3a://", "s3://", 1) if on_databricks() else path


def register_tables(
    spark: SparkSession, settings: Settings, lake_root: str | None = None
) -> dict[str, str]:
    """Name every Delta table that exists under the lake (the others are left for a later
    run); returns {name: location}. Idempotent: a name already registered is kept."""
    registered: dict[str, str] = {}
    schemas: set[str] = set()
    for layer, table, path in lake_tables(settings, lake_root or settings.lake_uri):
        if not is_delta_table(spark, path):
            continue
        if layer not in schemas:
            spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema_name(settings, layer)}")
            schemas.add(layer)
        name = table_name(settings, layer, table)
        location = _location(path)
        current = _registered_location(spark, name)
        if current is not None and current.rstrip("/") != location.rstrip("/"):
            if on_databricks():
                raise ValueError(f"{name} is registered at {current}, not at {location}")
            # a session's in-memory name for another lake: external, so dropping keeps the data
            spark.sql(f"DROP TABLE {name}")
        quoted = location.replace("'", "\\'")
        spark.sql(f"CREATE TABLE IF NOT EXISTS {name} USING DELTA LOCATION '{quoted}'")
        registered[name] = path
    return registered


def _registered_location(spark: SparkSession, name: str) -> str | None:
    from pyspark.errors import AnalysisException

    try:
        detail = spark.sql(f"DESCRIBE DETAIL {name}").select("location").first()
    except AnalysisException:
        return None  # not registered
    return None if detail is None else str(detail["location"])
