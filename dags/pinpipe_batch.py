"""The daily batch DAG: wait for landed data → batch job (gold staged) → check → publish → report.

Wiring only: every choice (schedule, retries, which operator runs Spark on this target, the
paths and names) comes from `pipeline.orchestrate.dag` and the settings (environment, `.env`).
"""

from __future__ import annotations

from airflow.sdk import DAG

from pipeline.config import get_settings
from pipeline.orchestrate import dag as parts

settings = get_settings()

with DAG(parts.DAG_ID, **parts.dag_arguments(settings)):
    landed = parts.wait_for_landed_data(settings)
    batch = parts.spark_job(
        settings, "run_batch_job", parts.BATCH_JOB, parts.batch_job_arguments(settings)
    )
    quality = parts.spark_job(
        settings,
        "check_data_quality",
        parts.QUALITY_JOB,
        parts.quality_arguments(settings),
        retries=0,  # failed checks fail the run at once: a retry would see the same data
    )
    # write-audit-publish: gold reaches readers only after the checks passed
    publish = parts.spark_job(
        settings, "publish_gold", parts.PUBLISH_JOB, parts.publish_arguments(settings)
    )
    report = parts.write_report(settings)
    landed >> batch >> quality >> publish >> report
