"""End to end: emulator → API → Kafka → Connect → S3 → `airflow dags test` → gold tables.

The DAG runs with its real operators (a sensor on the lake, `spark-submit` of the batch job and of
the quality checks) in an Airflow home of its own. Its gold tables must equal what the batch job
computes directly on the same landed objects, and every record the API acknowledged must be in
silver. A lake made to fail a quality check must fail the DAG run.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from pyspark.sql import SparkSession

from pipeline.config import Settings
from pipeline.lake import QUERY_COLUMNS, LakePaths
from pipeline.landing import landed_topics, read_ledger
from pipeline.orchestrate.dag import DAG_ID
from pipeline.source import database
from pipeline.source.emulator import EmulationConfig, run_emulation
from pipeline.source.loader import seed_database
from pipeline.stack.airflow import AIRFLOW, airflow_environment
from pipeline.transform.job import read_gold
from pipeline.transform.lake import read_delta
from tests.support import batch_scenario
from tests.support.webhook import Webhook

# a DAG run and a Spark job each take minutes on a busy 2-core machine
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3000)]

DRAWS = 400  # about 1,200 records


@dataclass
class DagEnvironment:
    settings: Settings  # the stack's, with a lake root of this module
    env: dict[str, str]  # what Airflow and its tasks see

    def run(self, *arguments: str, timeout_s: float = 1500) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AIRFLOW, *arguments],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def dags_test(self, *options: str) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        result = self.run("dags", "test", DAG_ID, *options)
        log = Path(self.env["AIRFLOW_HOME"]) / f"dags-test-{int(time.time())}.log"
        log.write_text(result.stdout + result.stderr)
        print(f"airflow dags test {' '.join(options)}: {time.monotonic() - started:.0f}s, {log}")
        return result

    def cli_json(self, *arguments: str) -> list[dict[str, Any]]:
        """A CLI command's `-o json` answer (log lines before it are skipped)."""
        result = self.run(*arguments, "-o", "json")
        assert result.returncode == 0, tail(result)
        answer = [line for line in result.stdout.splitlines() if line.startswith("[{")]
        assert answer, tail(result)
        rows: list[dict[str, Any]] = json.loads(answer[-1])
        return rows

    def latest_task_states(self) -> dict[str, str]:
        runs = self.cli_json("dags", "list-runs", DAG_ID)
        latest = max(runs, key=lambda run: run["start_date"] or "")
        states = self.cli_json("tasks", "states-for-dag-run", DAG_ID, latest["run_id"])
        return {item["task_id"]: item["state"] for item in states}


def tail(result: subprocess.CompletedProcess[str], lines: int = 60) -> str:
    return "\n".join((result.stdout + result.stderr).splitlines()[-lines:])


@pytest.fixture(scope="module")
def ledger(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Records posted through the API (with the emulator's ledger), all landed in S3."""
    folder = tmp_path_factory.mktemp("dag-source")
    engine = database.connect(f"sqlite:///{folder / 'source.db'}")
    seed_database(engine, 3000, seed=17)
    config = EmulationConfig.from_settings(
        stack,
        "batch",
        count=DRAWS,
        seed=23,
        ledger=folder / "ledger.jsonl",
        concurrency=4,
        records_per_request=10,
    )

    def post() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        summary = run_emulation(engine, config)
        engine.dispose()
        return summary.as_dict(), read_ledger(folder / "ledger.jsonl")

    return batch_scenario.post_and_land(stack, post)


@pytest.fixture(scope="module")
def dag_environment(
    stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DagEnvironment]:
    """A migrated Airflow home of its own; the DAG writes to `s3a://<bucket>/dag-lake`."""
    settings = stack.model_copy(update={"lake_root": f"s3a://{stack.lake_bucket}/dag-lake"})
    home = tmp_path_factory.mktemp("airflow-home")
    env = {**os.environ, **airflow_environment(settings, home)}
    environment = DagEnvironment(settings, env)
    migrated = environment.run("db", "migrate", timeout_s=600)
    assert migrated.returncode == 0, tail(migrated)
    yield environment


@pytest.fixture(scope="module")
def dag_run(ledger: list[dict[str, Any]], dag_environment: DagEnvironment) -> Settings:
    """One successful `airflow dags test` over the landed data; returns its settings."""
    settings = dag_environment.settings
    landed_before = landed_topics(settings)
    result = dag_environment.dags_test()
    assert result.returncode == 0, tail(result)
    assert dag_environment.latest_task_states() == {
        "wait_for_landed_data": "success",
        "run_batch_job": "success",
        "check_data_quality": "success",
        "publish_gold": "success",
        "write_report": "success",
    }
    # the comparison below is only meaningful if nothing landed meanwhile
    assert landed_topics(settings) == landed_before, "records landed during the DAG run"
    return settings


def test_the_dag_computes_what_the_batch_job_computes_on_the_same_landed_data(
    dag_run: Settings, spark: SparkSession
) -> None:
    direct = batch_scenario.gold_computed_directly(spark, dag_run, "direct-lake")
    batch_scenario.assert_gold_as_computed_directly(spark, dag_run.lake_uri, direct)


def test_the_dag_writes_its_report_into_the_lake(dag_run: Settings) -> None:
    """The last task: `<lake>/reports/<run date>/index.html`, every query in it, no network."""
    s3 = boto3.client("s3", **dag_run.boto3_kwargs("s3"))
    prefix = dag_run.lake_uri.split(f"{dag_run.lake_bucket}/", 1)[1] + "/reports/"
    listed = s3.list_objects_v2(Bucket=dag_run.lake_bucket, Prefix=prefix).get("Contents", [])
    keys = [item["Key"] for item in listed]
    assert len(keys) == 1 and keys[0].endswith("/index.html"), keys
    run_date = keys[0][len(prefix) :].split("/")[0]
    assert len(run_date) == 10 and run_date[4] == run_date[7] == "-", run_date
    page = s3.get_object(Bucket=dag_run.lake_bucket, Key=keys[0])
    assert page["ContentType"].startswith("text/html")
    html = page["Body"].read().decode("utf-8")
    assert all(f'data-query-id="{query_id}"' in html for query_id in QUERY_COLUMNS)
    assert "<script src=" not in html and "<link" not in html  # self-contained


def test_no_acknowledged_record_is_missing_from_silver(
    dag_run: Settings, ledger: list[dict[str, Any]], spark: SparkSession
) -> None:
    batch_scenario.assert_every_acknowledged_id_in_silver(spark, dag_run.lake_uri, ledger)


def test_a_failing_quality_check_fails_the_dag_run(
    dag_run: Settings, dag_environment: DagEnvironment, spark: SparkSession
) -> None:
    """A copy of the DAG's lake with one silver row duplicated and different gold staged: the
    checks must fail the run, alert, and leave the published gold as it was."""
    broken = "broken-lake"
    s3 = boto3.client("s3", **dag_run.boto3_kwargs("s3"))
    source_prefix = dag_run.lake_uri.split(f"{dag_run.lake_bucket}/", 1)[1] + "/"
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=dag_run.lake_bucket, Prefix=source_prefix):
        for item in page.get("Contents", []):
            s3.copy_object(
                Bucket=dag_run.lake_bucket,
                Key=broken + "/" + item["Key"][len(source_prefix) :],
                CopySource={"Bucket": dag_run.lake_bucket, "Key": item["Key"]},
            )
    broken_lake = f"s3a://{dag_run.lake_bucket}/{broken}"
    paths = LakePaths(broken_lake)
    pins = paths.silver("pin")
    read_delta(spark, pins).limit(1).write.format("delta").mode("append").save(pins)
    # staged gold that differs from the published: it must not be published
    first_query = next(iter(QUERY_COLUMNS))
    staged = paths.staged_gold(first_query)
    read_delta(spark, staged).limit(1).write.format("delta").mode("overwrite").save(staged)
    published_before = read_gold(spark, broken_lake)

    webhook = Webhook()
    failing = DagEnvironment(
        dag_run,
        {
            **dag_environment.env,
            "PINPIPE_LAKE_ROOT": broken_lake,
            "PINPIPE_ALERT_WEBHOOK_URL": webhook.url,
        },
    )
    # the batch job is marked successful without running: the broken table goes straight to QA
    result = failing.dags_test("--mark-success-pattern", "run_batch_job")
    output = result.stdout + result.stderr
    assert result.returncode != 0, tail(result)
    assert "DagRun failed" in output
    assert "silver.pin: no duplicate ind (1 duplicated)" in output, tail(result, 120)
    states = failing.latest_task_states()
    assert states["check_data_quality"] == "failed"
    assert states["publish_gold"] == "upstream_failed"
    assert states["write_report"] == "upstream_failed"
    assert states["wait_for_landed_data"] == "success"
    # write-audit-publish: the previous gold is still what readers see
    assert read_gold(spark, broken_lake) == published_before
    assert read_delta(spark, staged).count() == 1 < len(published_before[first_query])
    # failing loudly: the task's failure reached the configured webhook
    webhook.server.shutdown()
    alerts = [alert for alert in webhook.received if alert["task_id"] == "check_data_quality"]
    # the operator's error names the failed command: the quality job
    assert alerts and "pipeline/transform/quality.py" in alerts[0]["reason"], webhook.received
