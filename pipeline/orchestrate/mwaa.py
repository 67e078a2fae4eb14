"""The MWAA bundle: what an Amazon MWAA environment takes from its S3 bucket.

    dist/mwaa/
      dags/pinpipe_batch.py     the DAG, as in `dags/`
      dags/pipeline/...         the few modules the DAG imports (config, landing, orchestrate),
                                vendored: MWAA puts the DAG folder on sys.path
      dags/.airflowignore       keeps the dag-processor out of `pipeline/`
      requirements.txt          providers and libraries, pinned by MWAA's Airflow constraints
      startup.sh                exports PINPIPE_* (target aws, bucket, Databricks cluster, ...)

The pipeline's wheel is not installed on MWAA on purpose: its Spark, Kafka and API dependencies
are for the jobs (which run on Databricks) and conflict with Airflow's constraints. No plugins.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from pipeline.config import AwsSettings
from pipeline.config.environment import settings_environment
from pipeline.config.settings import PROJECT_ROOT

MWAA_AIRFLOW_VERSION = "3.0.6"
MWAA_PYTHON_VERSION = "3.12"
# The DAG imports these; each is small and imports nothing outside this list (tested).
VENDORED: tuple[str, ...] = (
    "pipeline/__init__.py",
    "pipeline/config/__init__.py",
    "pipeline/config/settings.py",
    "pipeline/orchestrate/__init__.py",
    "pipeline/orchestrate/dag.py",
    "pipeline/landing.py",
    "pipeline/orchestrate/alerts.py",
)
REQUIREMENTS: tuple[str, ...] = (
    "apache-airflow-providers-databricks",
    "pydantic-settings>=2.6",
)
# Settings the DAG reads on MWAA; secrets never go here (Databricks token: an Airflow connection).
EXPORTED: tuple[str, ...] = (
    "topic_prefix",
    "lake_bucket",
    "lake_root",
    "batch_runner",
    "landed_wait_timeout_s",
    "landed_poke_interval_s",
    "dag_task_timeout_s",
    "dag_run_timeout_s",
    # not the webhook URL: it is a credential (Slack's are); on MWAA alerts go to SNS
    "alert_sns_topic_arn",
    "databricks_conn_id",
    "databricks_cluster_id",
    "databricks_code_root",
    "databricks_wheel",
)


def constraints_url(airflow: str = MWAA_AIRFLOW_VERSION, python: str = MWAA_PYTHON_VERSION) -> str:
    return (
        "https://raw.githubusercontent.com/apache/airflow/"
        f"constraints-{airflow}/constraints-{python}.txt"
    )


def requirements_txt(airflow: str = MWAA_AIRFLOW_VERSION, python: str = MWAA_PYTHON_VERSION) -> str:
    lines = [
        f"# Amazon MWAA, Apache Airflow {airflow} (Python {python}): versions come from",
        "# Airflow's constraints file, as MWAA recommends; Airflow itself is never reinstalled.",
        f'--constraint "{constraints_url(airflow, python)}"',
        *REQUIREMENTS,
    ]
    return "\n".join(lines) + "\n"


def startup_sh(settings: AwsSettings) -> str:
    """The script exports the target and the EXPORTED settings that hold a value (an empty one
    is the DAG's default anyway)."""
    lines = [
        "#!/bin/sh",
        "# MWAA startup script: the pipeline's settings for the DAG (no secrets).",
    ]
    for variable, value in settings_environment(settings, only=EXPORTED).items():
        if value != "":
            lines.append(f"export {variable}={shlex.quote(value)}")
    return "\n".join(lines) + "\n"


def build_bundle(
    out: Path,
    settings: AwsSettings | None = None,
    airflow: str = MWAA_AIRFLOW_VERSION,
    python: str = MWAA_PYTHON_VERSION,
) -> list[Path]:
    """Write the bundle into `out` (replacing an older one); returns the files written."""
    settings = settings or AwsSettings()
    if out.exists():
        shutil.rmtree(out)
    dags = out / "dags"
    written: list[Path] = []
    for dag_file in sorted((PROJECT_ROOT / "dags").glob("*.py")):
        written.append(_copy(dag_file, dags / dag_file.name))
    for module in VENDORED:
        written.append(_copy(PROJECT_ROOT / module, dags / module))
    written.append(_write(dags / ".airflowignore", "pipeline/\n"))
    written.append(_write(out / "requirements.txt", requirements_txt(airflow, python)))
    written.append(_write(out / "startup.sh", startup_sh(settings)))
    return written


def _copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def _write(target: Path, text: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target
