"""The batch job end to end over landed JSON lines: plain folders in-process, and `s3a://`
against a moto S3 server started here, with the job file run as a script (config from env).

The landing layout is the S3 sink's: `topics/<topic>/partition=<p>/<topic>+<p>+<offset>.json`.
The data set (tests/support/landed_data.py) is small enough that every expected result was
worked out by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import typer
from pyspark.sql import SparkSession
from typer.testing import CliRunner

from pipeline.config import get_settings
from pipeline.config.settings import topic_names
from pipeline.lake import LakePaths
from pipeline.landing import object_key
from pipeline.transform.cli import register
from pipeline.transform.gold import QUERIES
from pipeline.transform.job import TABLES, BatchReport, read_gold, run_batch
from pipeline.transform.lake import read_delta, table_version
from tests.support.landed_data import (
    BROKEN_LINES,
    EXPECTED_REASONS,
    EXPECTED_RESULTS,
    FIRST_LANDING,
    PREFIX,
    SECOND_LANDING,
    landed_objects,
    write_folder,
)
from tests.support.moto import PLAIN_MOTO, moto_server

PROJECT_ROOT = Path(__file__).resolve().parents[2]
JOB_FILE = PROJECT_ROOT / "pipeline" / "transform" / "job.py"


def all_table_paths(lake: str) -> list[str]:
    paths = LakePaths(lake)
    return [
        *(paths.bronze(table) for table in TABLES),
        *(paths.silver(table) for table in TABLES),
        paths.rejected,
        *(paths.gold(query_id) for query_id in QUERIES),
    ]


def delta_versions(spark: SparkSession, lake: str) -> dict[str, int]:
    return {path: table_version(spark, path) for path in all_table_paths(lake)}


# -- plain folders, in-process ------------------------------------------------------------------


@dataclass
class FirstRun:
    """A landing folder, its lake after one batch run, and what that run produced."""

    landing: Path
    lake: str
    report: BatchReport
    silver_inds: dict[str, list[int]]
    rejected: list[dict[str, Any]]
    pin_4: dict[str, Any]
    results: dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def first_run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> FirstRun:
    root = tmp_path_factory.mktemp("plain")
    landing, lake = root / "landing", str(root / "lake")
    write_folder(landing, landed_objects(PREFIX, FIRST_LANDING, broken=True))

    report = run_batch(spark, str(landing), lake, topic_names(PREFIX))

    # Captured now: a later test lands more objects in the same folder.
    paths = LakePaths(lake)
    silver = {table: read_delta(spark, paths.silver(table)) for table in TABLES}
    pin_4 = silver["pin"].where("ind = 4").first()
    assert pin_4 is not None
    return FirstRun(
        landing=landing,
        lake=lake,
        report=report,
        silver_inds={
            table: sorted(row["ind"] for row in frame.collect()) for table, frame in silver.items()
        },
        rejected=[row.asDict() for row in read_delta(spark, paths.rejected).collect()],
        pin_4=pin_4.asDict(),
        results=read_gold(spark, lake),
    )


def test_first_run_cleans_and_computes_the_expected_results(first_run: FirstRun) -> None:
    # 4 + 4 lines and one broken line per topic; ids 1 and 3 twice.
    assert first_run.report.bronze_appended == {"pin": 9, "geo": 9, "user": 9}
    assert first_run.report.silver_merged == {"pin": 6, "geo": 6, "user": 6}
    assert first_run.silver_inds == {table: [1, 2, 3, 4, 5, 6] for table in TABLES}
    assert first_run.report.rejected_appended == 3
    assert {row["source"]: row["reason"] for row in first_run.rejected} == EXPECTED_REASONS
    rejected = {row["source"]: row for row in first_run.rejected}
    assert rejected["pin"]["record"] == BROKEN_LINES["pin"]
    assert rejected["user"]["_source_file"].endswith(object_key(f"{PREFIX}.user", 0, 0))
    pin_4 = first_run.pin_4
    assert (pin_4["poster_name"], pin_4["follower_count"], pin_4["tag_list"]) == (None,) * 3
    assert pin_4["save_location"] == "/data/travel"
    assert sorted(first_run.report.gold_rewritten) == sorted(QUERIES)
    assert first_run.results == EXPECTED_RESULTS


def test_second_run_changes_nothing(spark: SparkSession, first_run: FirstRun) -> None:
    versions = delta_versions(spark, first_run.lake)
    bronze_rows = read_delta(spark, LakePaths(first_run.lake).bronze("pin")).count()

    report = run_batch(spark, str(first_run.landing), first_run.lake, topic_names(PREFIX))

    assert not report.changed_anything, report
    assert delta_versions(spark, first_run.lake) == versions
    assert read_delta(spark, LakePaths(first_run.lake).bronze("pin")).count() == bronze_rows


def test_analytics_cli_prints_the_gold_tables(spark: SparkSession, first_run: FirstRun) -> None:
    app = typer.Typer()
    register(app)
    runner = CliRunner()

    as_json = runner.invoke(app, ["analytics", "--lake", first_run.lake, "--format", "json"])
    as_csv = runner.invoke(
        app,
        [
            "analytics",
            "--lake",
            first_run.lake,
            "--format",
            "csv",
            "--query",
            "q3b_top_country_by_followers",
        ],
    )
    as_table = runner.invoke(app, ["analytics", "--lake", first_run.lake])
    unknown = runner.invoke(app, ["analytics", "--lake", first_run.lake, "--query", "q9"])

    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output) == read_gold(spark, first_run.lake)
    assert as_csv.exit_code == 0, as_csv.output
    q3b = read_gold(spark, first_run.lake)["q3b_top_country_by_followers"][0]
    assert as_csv.output == f"country,follower_count\n{q3b['country']},{q3b['follower_count']}\n"
    assert as_table.exit_code == 0, as_table.output
    for query_id in QUERIES:
        assert query_id in as_table.output
    assert unknown.exit_code != 0
    assert "q9" in unknown.output


def test_new_landed_objects_add_only_their_rows(spark: SparkSession, first_run: FirstRun) -> None:
    paths = LakePaths(first_run.lake)
    rejected_before = read_delta(spark, paths.rejected).count()
    write_folder(first_run.landing, landed_objects(PREFIX, SECOND_LANDING, broken=False))

    report = run_batch(spark, str(first_run.landing), first_run.lake, topic_names(PREFIX))

    # The new object's 2 lines and the grown object's 5, read again in full.
    assert report.bronze_appended == {"pin": 7, "geo": 7, "user": 7}
    assert report.silver_merged == {"pin": 2, "geo": 2, "user": 2}  # ids 7 and 8 only
    assert report.rejected_appended == 0
    assert read_delta(spark, paths.rejected).count() == rejected_before
    for table in TABLES:
        inds = [row["ind"] for row in read_delta(spark, paths.silver(table)).collect()]
        assert sorted(inds) == [1, 2, 3, 4, 5, 6, 7, 8], table
    results = read_gold(spark, first_run.lake)
    assert results["q1_top_category_by_country"][0] == {
        "country": "Chad",
        "category": "finance",
        "category_count": 1,
    }
    assert results["q3a_top_user_by_country"][0] == {
        "country": "Chad",
        "poster_name": "Gus",
        "follower_count": 3_000,
    }
    assert results["q6_users_joined_by_year"] == [
        *EXPECTED_RESULTS["q6_users_joined_by_year"],
        {"post_year": 2018, "number_users_joined": 1},
    ]
    # 25-35 now holds 900, 3000 and 2000000.
    assert results["q5_median_followers_by_age_group"][2] == {
        "age_group": "25-35",
        "median_follower_count": 3_000.0,
    }
    assert results["q2_top_category_by_year"] == [
        *EXPECTED_RESULTS["q2_top_category_by_year"],
        {"post_year": 2021, "category": "finance", "category_count": 1},
    ]


def table_shape(spark: SparkSession, path: str) -> list[tuple[str, str]]:
    """Column names and types, not nullability (an empty table is created, not written)."""
    return [(f.name, f.dataType.simpleString()) for f in read_delta(spark, path).schema.fields]


def test_empty_landing_creates_every_table_empty_with_the_written_schemas(
    spark: SparkSession, first_run: FirstRun, tmp_path: Path
) -> None:
    landing, lake = tmp_path / "landing", str(tmp_path / "lake")
    landing.mkdir()

    report = run_batch(spark, str(landing), lake, topic_names(PREFIX))
    again = run_batch(spark, str(landing), lake, topic_names(PREFIX))

    assert report.bronze_appended == report.silver_merged == {"pin": 0, "geo": 0, "user": 0}
    assert report.rejected_appended == 0
    assert sorted(report.gold_rewritten) == sorted(QUERIES)
    assert "gold queries: silver is empty, gold tables created empty" in report.skipped
    for path in all_table_paths(lake):
        assert read_delta(spark, path).count() == 0, path
        assert table_version(spark, path) == 0, path  # created, nothing written
        # The same tables a run over data writes, so readers downstream see no difference.
        same_table = path.replace(lake, first_run.lake)
        assert table_shape(spark, path) == table_shape(spark, same_table), path
    assert not again.changed_anything, again
    assert "gold queries: silver unchanged" in again.skipped


# -- s3a:// against a moto S3 server, the job in its own process ----------------------------------


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server(PLAIN_MOTO, tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Settings pointed at the moto server and a fresh bucket, via environment variables."""
    bucket = f"pinpipe-itest-{os.getpid()}-{time.monotonic_ns()}"
    values = {
        "PINPIPE_TARGET": "local",
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "PINPIPE_LAKE_BUCKET": bucket,
        "PINPIPE_LAKE_ROOT": "",
        "PINPIPE_SPARK_SHUFFLE_PARTITIONS": "1",
        "PINPIPE_SPARK_DRIVER_MEMORY": "1g",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield values
    monkeypatch.undo()
    get_settings.cache_clear()


def run_command(arguments: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        arguments,
        env={**os.environ, **env},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{arguments} failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    return done.stdout


def delta_commits(s3: Any, bucket: str) -> list[str]:
    listing = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="lake/")
    return sorted(
        item["Key"]
        for page in listing
        for item in page.get("Contents", [])
        if "/_delta_log/" in item["Key"] and item["Key"].endswith(".json")
    )


def test_job_over_s3a_from_config_then_as_a_script(s3_env: dict[str, str], tmp_path: Path) -> None:
    settings = get_settings()
    bucket = settings.lake_bucket
    s3 = boto3.client("s3", **settings.boto3_kwargs("s3"))
    s3.create_bucket(Bucket=bucket)
    for key, text in landed_objects(PREFIX, FIRST_LANDING, broken=True).items():
        s3.put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"))
    first_results, second_results = tmp_path / "first.json", tmp_path / "second.json"

    # `pinpipe batch` with input and lake left to config: s3a://<bucket> and s3a://<bucket>/lake.
    pinpipe = Path(sys.executable).parent / "pinpipe"
    run_command(
        [str(pinpipe), "batch", "--prefix", PREFIX, "--results-json", str(first_results)], s3_env
    )
    commits = delta_commits(s3, bucket)
    # Then the spark-submit / Databricks job file, run as a script, with explicit URIs.
    stdout = run_command(
        [
            sys.executable,
            str(JOB_FILE),
            "--input",
            f"s3a://{bucket}",
            "--lake",
            f"s3a://{bucket}/lake",
            "--prefix",
            PREFIX,
            "--results-json",
            str(second_results),
        ],
        s3_env,
    )

    assert json.loads(first_results.read_text(encoding="utf-8")) == EXPECTED_RESULTS
    assert len([key for key in commits if "/bronze/" in key]) == 3
    assert any(key.startswith("lake/gold/q8_") for key in commits)
    second_report = json.loads(stdout.strip().splitlines()[-1])
    assert second_report == {
        "bronze_appended": {"pin": 0, "geo": 0, "user": 0},
        "silver_merged": {"pin": 0, "geo": 0, "user": 0},
        "rejected_appended": 0,
        "gold_rewritten": [],
        "skipped": [
            "silver pin MERGE: bronze added nothing",
            "silver geo MERGE: bronze added nothing",
            "silver user MERGE: bronze added nothing",
            "gold queries: silver unchanged",
        ],
    }
    assert delta_commits(s3, bucket) == commits
    assert json.loads(second_results.read_text(encoding="utf-8")) == EXPECTED_RESULTS


def test_empty_bucket_run_is_quiet(s3_env: dict[str, str]) -> None:
    """Nothing landed yet (a new deployment): the job creates its tables and logs no exception."""
    settings = get_settings()
    boto3.client("s3", **settings.boto3_kwargs("s3")).create_bucket(Bucket=settings.lake_bucket)
    pinpipe = Path(sys.executable).parent / "pinpipe"

    done = subprocess.run(
        [str(pinpipe), "batch", "--prefix", PREFIX],
        env={**os.environ, **s3_env},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-4000:]
    assert "Exception" not in done.stderr, done.stderr[-4000:]
    assert "gold tables rewritten: q1_top_category_by_country" in done.stdout
    assert "skipped: gold queries: silver is empty, gold tables created empty" in done.stdout
