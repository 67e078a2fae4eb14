"""Tables by name: the lake's Delta tables resolve as `<layer>.<table>` through the Spark
session's catalog, `pinpipe analytics` reads gold by those names and `pinpipe sql` runs users'
SQL over them; with a catalog configured the names carry it (Unity Catalog on Databricks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import Settings, get_settings
from pipeline.lake import QUERY_COLUMNS, LakePaths
from pipeline.tables import register_tables, table_name

SILVER_COLUMNS = "ind INT, country STRING"


def small_lake(spark: SparkSession, root: Path, countries: list[str]) -> str:
    lake = str(root)
    paths = LakePaths(lake)
    rows = [(i, country) for i, country in enumerate(countries)]
    spark.createDataFrame(rows, SILVER_COLUMNS).write.format("delta").save(paths.silver("geo"))
    for query_id, columns in QUERY_COLUMNS.items():
        schema = ", ".join(f"{column} STRING" for column in columns)
        row = tuple(f"{query_id}-{column}" for column in columns)
        spark.createDataFrame([row], schema).write.format("delta").save(paths.gold(query_id))
    return lake


def test_names_carry_the_configured_catalog_and_schema_prefix() -> None:
    assert table_name(Settings(), "silver", "pin") == "`silver`.`pin`"
    configured = Settings(table_catalog="main", table_schema_prefix="pinpipe_")
    assert table_name(configured, "gold", "q6_users_joined_by_year") == (
        "`main`.`pinpipe_gold`.`q6_users_joined_by_year`"
    )


def test_existing_tables_resolve_by_name_and_follow_the_lake(
    spark: SparkSession, tmp_path: Path
) -> None:
    settings = Settings()
    first = small_lake(spark, tmp_path / "first", ["Chad", "Peru"])
    named = register_tables(spark, settings, first)
    # only what exists: silver.geo and the nine gold tables, not bronze or the stream tables
    assert set(named) == {"`silver`.`geo`"} | {
        table_name(settings, "gold", query_id) for query_id in QUERY_COLUMNS
    }
    assert register_tables(spark, settings, first) == named  # again: nothing changes
    count = spark.sql("SELECT count(*) AS n FROM silver.geo").first()
    assert count is not None and count["n"] == 2

    second = small_lake(spark, tmp_path / "second", ["Fiji"])
    register_tables(spark, settings, second)
    countries = [row["country"] for row in spark.sql("SELECT country FROM silver.geo").collect()]
    assert countries == ["Fiji"]
    # the first lake's data is untouched by re-pointing the name (the tables are external)
    first_rows = spark.read.format("delta").load(LakePaths(first).silver("geo")).count()
    assert first_rows == 2


def test_analytics_and_sql_read_the_tables_by_name(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = small_lake(spark, tmp_path / "lake", ["Chad", "Peru", "Fiji"])
    monkeypatch.setenv("PINPIPE_LAKE_ROOT", lake)
    get_settings.cache_clear()
    runner = CliRunner()

    analytics = runner.invoke(
        app, ["analytics", "--format", "json", "--query", "q1_top_category_by_country"]
    )
    assert analytics.exit_code == 0, analytics.output
    results = json.loads(analytics.stdout)
    assert results["q1_top_category_by_country"][0]["country"] == (
        "q1_top_category_by_country-country"
    )

    query = "SELECT country FROM silver.geo WHERE ind > 0 ORDER BY country"
    answered = runner.invoke(app, ["sql", query, "--format", "json"])
    assert answered.exit_code == 0, answered.output
    assert json.loads(answered.stdout) == [{"country": "Fiji"}, {"country": "Peru"}]

    unknown = runner.invoke(app, ["sql", "SELECT * FROM silver.nope"])
    assert unknown.exit_code == 2 and "nope" in unknown.output


def test_analytics_without_gold_says_run_batch(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PINPIPE_LAKE_ROOT", str(tmp_path / "empty"))
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["analytics"])
    assert result.exit_code == 1 and "run batch" in result.output
