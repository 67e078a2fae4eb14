"""The DAG's data-quality checks on small DataFrames: each check passes on clean tables and
fails, saying what it found, on a table with the defect it looks for."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from pipeline.lake import QUERY_COLUMNS
from pipeline.transform.quality import Check, DataQualityError, gold_checks, run, silver_checks

SILVER_COLUMNS = "ind INT, country STRING"


def failed(checks: list[Check]) -> dict[str, str]:
    return {check.name: check.found for check in checks if not check.passed}


def test_a_clean_silver_table_passes(spark: SparkSession) -> None:
    df = spark.createDataFrame([(1, "France"), (2, "Chad")], SILVER_COLUMNS)
    checks = silver_checks("geo", df)
    assert [check.name for check in checks] == ["rows present", "no null ind", "no duplicate ind"]
    assert failed(checks) == {}


def test_silver_defects_each_fail_their_own_check(spark: SparkSession) -> None:
    empty = spark.createDataFrame([], SILVER_COLUMNS)
    assert failed(silver_checks("geo", empty)) == {"rows present": "0 rows"}
    nulls = spark.createDataFrame([(1, "a"), (None, "b"), (None, "c")], SILVER_COLUMNS)
    assert failed(silver_checks("geo", nulls)) == {"no null ind": "2 null"}
    duplicates = spark.createDataFrame([(1, "a"), (1, "b"), (2, "c"), (2, "d")], SILVER_COLUMNS)
    assert failed(silver_checks("geo", duplicates)) == {"no duplicate ind": "2 duplicated"}


def test_gold_tables_must_exist_with_spec_columns_and_rows(spark: SparkSession) -> None:
    query_id = "q6_users_joined_by_year"
    good = spark.createDataFrame([(2015, 3)], "post_year INT, number_users_joined BIGINT")
    assert failed(gold_checks(query_id, good)) == {}
    assert failed(gold_checks(query_id, None)) == {"table present": "no Delta table"}
    assert failed(gold_checks(query_id, good.limit(0))) == {"rows present": "0 rows"}
    renamed = good.withColumnRenamed("number_users_joined", "users")
    assert failed(gold_checks(query_id, renamed)) == {
        "SPEC columns": "missing ['number_users_joined']"
    }


def test_a_lake_missing_tables_fails_with_every_defect_named(
    spark: SparkSession, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    spark.createDataFrame([(1, "a"), (1, "b")], SILVER_COLUMNS).write.format("delta").save(
        str(lake / "silver" / "pin")
    )
    with pytest.raises(DataQualityError) as raised:
        run(str(lake))
    message = str(raised.value)
    assert "silver.pin: no duplicate ind (1 duplicated)" in message
    assert "silver.geo: table present (no Delta table)" in message
    assert len(raised.value.failed) == 1 + 2 + len(QUERY_COLUMNS)
