"""The parts of the daily batch DAG (`dags/pinpipe_batch.py` only wires them together).

Which operator runs the Spark jobs is configuration, never an edit of the DAG:
`settings.batch_runner` is `spark-submit` on the local and docker targets (the job runs as a
local Spark application next to Airflow) and `databricks` on aws (a one-time run on an existing
cluster, as in the original). Both run the same two scripts with the same parameters:
`pipeline/transform/job.py` (the batch job) and `pipeline/transform/quality.py` (the checks).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from airflow.sdk import BaseOperator, PokeReturnValue, task

from pipeline.config import Settings, get_settings
from pipeline.config.settings import PROJECT_ROOT
from pipeline.landing import Window, landed_topics
from pipeline.orchestrate.alerts import notify_failure

DAG_ID = "pinpipe_batch"
TASK_IDS: tuple[str, ...] = (
    "wait_for_landed_data",
    "run_batch_job",
    "check_data_quality",
    "publish_gold",
    "write_report",
)
# Scripts run by the Spark jobs, relative to the project root (or `databricks_code_root`).
BATCH_JOB = PurePosixPath("pipeline/transform/job.py")
QUALITY_JOB = PurePosixPath("pipeline/transform/quality.py")
PUBLISH_JOB = PurePosixPath("pipeline/orchestrate/publish.py")
REPORT_JOB = PurePosixPath("pipeline/report/cli.py")
# The run's day: runs triggered without a logical date (Airflow 3) take the day they were due.
RUN_DATE = "{{ (logical_date or dag_run.run_after) | ds }}"
# The run's window: a scheduled run's data interval (the day before, 00:00 UTC), and for a
# manual run the DATA_INTERVAL before it was triggered — whatever logical date it carries (the
# demo gives its run the due tick's, to keep the scheduler from running that tick again). The
# sensor and the checks look at what landed in it (by S3 LastModified).
DATA_INTERVAL = timedelta(days=1)
_MANUAL = "dag_run.run_type == 'manual'"
_SECONDS = int(DATA_INTERVAL.total_seconds())
WINDOW_START = (
    "{{ ((dag_run.run_after - macros.timedelta(seconds="
    + str(_SECONDS)
    + ")) if "
    + _MANUAL
    + " else data_interval_start).isoformat() }}"
)
WINDOW_END = "{{ (dag_run.run_after if " + _MANUAL + " else data_interval_end).isoformat() }}"
# one poke of the sensor (a listing of the landing prefix), not its whole wait (`timeout`)
SENSOR_POKE_TIMEOUT = timedelta(minutes=10)
# The local "cluster" is a setting (`spark_master`): the DAG defines this connection from it
# unless the deployment defines one of the same id itself.
SPARK_CONN_ID = "pinpipe_spark"

log = logging.getLogger(__name__)

DOC_MD = """\
### pinpipe daily batch

The run's data interval is the day before a scheduled run (00:00 UTC to 00:00 UTC), the 24
hours before a manual one; "landed" means the S3 object's LastModified falls in it.

1. **wait_for_landed_data** — waits (rescheduling, not holding a slot) until the S3 sink has
   landed objects for all three topics within the run's data interval.
2. **run_batch_job** — the Spark job: landed JSON lines → bronze → silver → gold (Delta), gold
   to a staging location (`<lake>/staging/gold`). It only commits changes, so a re-run over the
   same data changes nothing.
3. **check_data_quality** — silver has rows and no null or duplicate `ind`; the nine staged gold
   tables exist and have rows; per topic, rows landed in the interval, the newest of them fresh
   enough, the reject rate under the limit. Any failed check fails the run (no retries: the
   data would not change). Results are kept in the lake (`quality/checks`, Delta).
4. **publish_gold** — only after every check passed: the staged gold replaces the published
   `<lake>/gold` (write-audit-publish). A failed check leaves the previous gold in place.
5. **write_report** — one self-contained HTML report (gold charts and tables, data quality with
   history, pipeline counts) at `<lake>/reports/<run date>/index.html`; reads Delta without Spark.

Spark jobs run with `spark-submit` locally and as Databricks runs on aws (`PINPIPE_BATCH_RUNNER`).
Every task has an execution timeout and the run a timeout; a failed task or run is logged and
alerted (`PINPIPE_ALERT_WEBHOOK_URL`, `PINPIPE_ALERT_SNS_TOPIC_ARN`).
"""


def dag_arguments(settings: Settings) -> dict[str, Any]:
    """Schedule, time limits, alerting, ownership and retry policy of the daily DAG."""
    try:
        from airflow.sdk import CronTriggerTimetable
    except ImportError:  # Airflow 3.0 (MWAA) has it in core only
        from airflow.timetables.trigger import CronTriggerTimetable  # type: ignore[assignment]

    return {
        "description": "landed events → bronze → silver → gold, checked, then published",
        # daily at 00:00 UTC over the day before: the interval the sensor and checks look at
        "schedule": CronTriggerTimetable("@daily", timezone="UTC", interval=DATA_INTERVAL),
        "start_date": datetime(2025, 1, 1, tzinfo=UTC),
        "catchup": False,
        "max_active_runs": 1,
        # a hung run would block every later one (max_active_runs=1)
        "dagrun_timeout": timedelta(seconds=settings.dag_run_timeout_s),
        "on_failure_callback": notify_failure,
        "default_args": {
            "owner": "pinpipe",
            "retries": 2,
            "retry_delay": timedelta(minutes=2),
            "execution_timeout": timedelta(seconds=settings.dag_task_timeout_s),
            "on_failure_callback": notify_failure,
        },
        "tags": ["pinpipe", "batch", settings.batch_runner],
        "doc_md": DOC_MD,
    }


def batch_job_arguments(settings: Settings) -> list[str]:
    return [
        "--input",
        settings.landing_uri,
        "--lake",
        settings.lake_uri,
        "--prefix",
        settings.topic_prefix,
        "--stage-gold",
    ]


def quality_arguments(settings: Settings) -> list[str]:
    return [
        "--lake",
        settings.lake_uri,
        "--window-start",
        WINDOW_START,
        "--window-end",
        WINDOW_END,
        "--staged",
    ]


def publish_arguments(settings: Settings) -> list[str]:
    return ["--lake", settings.lake_uri]


def run_window(context: dict[str, Any]) -> Window:
    """The run's window, as WINDOW_START/WINDOW_END render it for the checks."""
    run = context["dag_run"]
    if run.run_type == "manual":
        return Window(run.run_after - DATA_INTERVAL, run.run_after)
    return Window(context["data_interval_start"], context["data_interval_end"])


def wait_for_landed_data(settings: Settings) -> Any:
    """A sensor that passes once every topic has objects landed within the run's data interval;
    returns what it found."""

    @task.sensor(
        task_id=TASK_IDS[0],
        mode="reschedule",
        poke_interval=settings.landed_poke_interval_s,
        timeout=settings.landed_wait_timeout_s,
        execution_timeout=SENSOR_POKE_TIMEOUT,
        retries=0,  # a timeout means no data came: retrying would only wait again
    )
    def wait_for_landed_data(**context: Any) -> PokeReturnValue:
        window = run_window(context)
        landed = landed_topics(get_settings(), window)
        empty = [item.topic for item in landed.values() if item.objects == 0]
        if empty:
            log.info(
                "nothing landed from %s to %s under topics/ for %s", window.start, window.end, empty
            )
        summary = {
            table: {
                "objects": t.objects,
                "bytes": t.bytes,
                "newest": t.newest.isoformat() if t.newest else None,
            }
            for table, t in landed.items()
        }
        return PokeReturnValue(is_done=not empty, xcom_value=summary)

    return wait_for_landed_data()


def report_arguments(settings: Settings) -> list[str]:
    return ["--lake", settings.lake_uri, "--run-date", RUN_DATE]


def write_report(settings: Settings) -> Any:
    """The last task: the HTML report of the lake, into `<lake>/reports/<run date>/`.

    It reads Delta with delta-rs, no Spark: locally a Python task in Airflow's worker. With the
    Databricks runner (MWAA, which installs none of the pipeline's libraries) the same CLI file
    runs on the cluster, like the two Spark jobs.
    """
    if settings.batch_runner == "databricks":
        return _databricks_run(
            settings, TASK_IDS[4], REPORT_JOB, report_arguments(settings), retries=1
        )

    @task(task_id=TASK_IDS[4], retries=1)
    def write_report(**context: Any) -> str:
        from pipeline.report.build import write_report as build_report

        dag_run, instance = context["dag_run"], context["ti"]
        # a run triggered without a logical date has none: its day is when it was due
        when = context.get("logical_date") or dag_run.run_after
        stages = {}
        started, reached = getattr(dag_run, "start_date", None), instance.start_date
        if started and reached:
            stages["DAG run until the report (sensor, batch job, checks, publish)"] = (
                reached - started
            ).total_seconds()
        written = build_report(get_settings(), run_date=when.date(), stage_seconds=stages)
        log.info("report written to %s", written)
        return written

    return write_report()


def spark_job(
    settings: Settings, task_id: str, script: PurePosixPath, arguments: list[str], **kwargs: Any
) -> BaseOperator:
    """The operator that runs `script` with `arguments` where `settings.batch_runner` says."""
    if settings.batch_runner == "databricks":
        return _databricks_run(settings, task_id, script, arguments, **kwargs)
    return _spark_submit(settings, task_id, script, arguments, **kwargs)


def _spark_submit(
    settings: Settings, task_id: str, script: PurePosixPath, arguments: list[str], **kwargs: Any
) -> BaseOperator:
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    from pipeline.spark_session import extra_jars

    os.environ.setdefault(
        f"AIRFLOW_CONN_{SPARK_CONN_ID.upper()}",
        json.dumps({"conn_type": "spark", "host": settings.spark_master}),
    )
    operator: BaseOperator = SparkSubmitOperator(
        task_id=task_id,
        conn_id=SPARK_CONN_ID,
        spark_binary="spark-submit",
        application=str(PROJECT_ROOT / script),
        application_args=arguments,
        name=f"pinpipe-{task_id}",
        # Known only when the driver JVM starts, so they go on the command line. Delta and S3A
        # settings are made by `get_spark` in the job before its session exists, as everywhere.
        jars=",".join(str(jar) for jar in extra_jars(settings)),
        driver_memory=settings.spark_driver_memory,
        conf={
            "spark.pyspark.python": sys.executable,
            "spark.pyspark.driver.python": sys.executable,
            # Spark's INFO lines would bury the job's own output in the task log
            "spark.log.level": "WARN",
        },
        **kwargs,
    )
    return operator


def _databricks_run(
    settings: Settings, task_id: str, script: PurePosixPath, arguments: list[str], **kwargs: Any
) -> BaseOperator:
    from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator

    missing = [
        f"PINPIPE_{name.upper()}"
        for name in ("databricks_cluster_id", "databricks_code_root")
        if not getattr(settings, name)
    ]
    if missing:
        raise ValueError(f"batch_runner=databricks needs {', '.join(missing)} to be set")
    libraries = [{"whl": settings.databricks_wheel}] if settings.databricks_wheel else None
    operator: BaseOperator = DatabricksSubmitRunOperator(
        task_id=task_id,
        databricks_conn_id=settings.databricks_conn_id,
        existing_cluster_id=settings.databricks_cluster_id,
        spark_python_task={
            "python_file": f"{settings.databricks_code_root.rstrip('/')}/{script}",
            "parameters": arguments,
        },
        libraries=libraries,
        run_name=f"pinpipe {task_id}",
        **kwargs,
    )
    return operator
