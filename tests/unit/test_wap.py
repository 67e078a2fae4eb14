"""Write-audit-publish on a small lake: the checks scoped to a run's window (rows landed,
freshness, reject rate), the staged gold audited, and publishing that copies staged gold over the
published one only when it is all there."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from pipeline.config import Settings
from pipeline.lake import QUERY_COLUMNS, LakePaths
from pipeline.landing import Window
from pipeline.orchestrate.publish import NothingStagedError, publish_gold
from pipeline.transform.lake import read_delta
from pipeline.transform.quality import Check, DataQualityError, run, window_checks

WINDOW = Window(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))
BRONZE_COLUMNS = "ind INT, _source_file STRING, _source_modified TIMESTAMP"
REJECTED_COLUMNS = "source STRING, reason STRING, record STRING, _source_file STRING"


def write(spark: SparkSession, rows: list[tuple[object, ...]], schema: str, path: str) -> None:
    spark.createDataFrame(rows, schema).write.format("delta").mode("overwrite").save(path)


def landed_lake(spark: SparkSession, root: Path, *, rejected: int, newest_hour: int) -> str:
    """Bronze with 10 rows per table landed in WINDOW (the newest at `newest_hour`), 5 rows the
    day before; `rejected` of the pin rows in the window rejected."""
    lake = str(root)
    paths = LakePaths(lake)
    in_window = WINDOW.start + timedelta(hours=newest_hour)
    before = WINDOW.start - timedelta(hours=3)
    for table in ("pin", "geo", "user"):
        rows = [(i, f"topics/t.{table}/new.json", in_window) for i in range(10)]
        rows += [(100 + i, f"topics/t.{table}/old.json", before) for i in range(5)]
        write(spark, rows, BRONZE_COLUMNS, paths.bronze(table))
    rejects = [("pin", "missing ind", "{}", "topics/t.pin/new.json")] * rejected
    rejects += [("pin", "missing ind", "{}", "topics/t.pin/old.json")] * 5  # outside the window
    write(spark, rejects, REJECTED_COLUMNS, paths.rejected)
    return lake


def failed(checks: list[Check]) -> dict[str, str]:
    return {f"{c.table}: {c.name}": c.found for c in checks if not c.passed}


def test_the_window_checks_pass_on_what_landed_in_the_window(
    spark: SparkSession, tmp_path: Path
) -> None:
    lake = landed_lake(spark, tmp_path / "lake", rejected=0, newest_hour=20)
    checks = window_checks(spark, lake, WINDOW, Settings())
    assert failed(checks) == {}
    rows = next(c for c in checks if c.table == "bronze.pin" and c.name.startswith("rows"))
    assert rows.found.startswith("10 rows")  # not the 5 that landed the day before


def test_stale_data_a_high_reject_rate_and_an_empty_window_each_fail(
    spark: SparkSession, tmp_path: Path
) -> None:
    settings = Settings(quality_max_reject_rate=0.05, quality_max_staleness_s=6 * 3600)
    lake = landed_lake(spark, tmp_path / "lake", rejected=2, newest_hour=2)
    found = failed(window_checks(spark, lake, WINDOW, settings))
    assert found["bronze.pin: reject rate in the window"] == "2 of 10 rejected (20.0%)"
    assert found["bronze.geo: fresh: newest landed row's age at the window's end"] == "22.0 h"
    later = Window(WINDOW.end, WINDOW.end + timedelta(days=1))
    empty = failed(window_checks(spark, lake, later, settings))
    assert empty["bronze.user: rows landed in the window"].startswith("0 rows")
    assert empty["bronze.user: fresh: newest landed row's age at the window's end"] == (
        "nothing landed"
    )


def stage_gold(spark: SparkSession, lake: str, value: str) -> None:
    for query_id, columns in QUERY_COLUMNS.items():
        schema = ", ".join(f"{column} STRING" for column in columns)
        row = tuple(value for _ in columns)
        write(spark, [row], schema, LakePaths(lake).staged_gold(query_id))


def test_the_checks_audit_the_staged_gold_not_the_published(
    spark: SparkSession, tmp_path: Path
) -> None:
    lake = str(tmp_path / "lake")
    for table in ("pin", "geo", "user"):
        write(spark, [(1, "a")], "ind INT, country STRING", LakePaths(lake).silver(table))
    stage_gold(spark, lake, "staged")
    run(lake, staged=True)  # the staged gold is complete: passes without any published gold
    with pytest.raises(DataQualityError) as raised:
        run(lake)
    assert "gold.q1_top_category_by_country: table present (no Delta table)" in str(raised.value)


def test_publishing_copies_the_staged_gold_and_refuses_an_incomplete_stage(
    spark: SparkSession, tmp_path: Path
) -> None:
    lake = str(tmp_path / "lake")
    paths = LakePaths(lake)
    stage_gold(spark, lake, "first")
    assert publish_gold(spark, lake) == list(QUERY_COLUMNS)
    assert publish_gold(spark, lake) == []  # the same content: nothing rewritten
    stage_gold(spark, lake, "second")
    last = list(QUERY_COLUMNS)[-1]
    shutil.rmtree(paths.staged_gold(last))
    with pytest.raises(NothingStagedError, match=last):
        publish_gold(spark, lake)
    # nothing was published: every gold table still holds the first run's rows
    for query_id in QUERY_COLUMNS:
        values = {v for row in read_delta(spark, paths.gold(query_id)).collect() for v in row}
        assert values == {"first"}, query_id
