"""The batch and streaming jobs on Databricks, defined in deploy/databricks/jobs.yaml.

Applied through the Jobs API with `databricks-sdk` (no CLI binary needed): a job is found by
name, created when missing, reset when its settings differ, and left alone otherwise. The job
clusters get the stage's Databricks instance profile (lake bucket and streams, from the iam
stack) and the stage's settings as spark_env_vars.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

import yaml
from databricks.sdk.service.jobs import JobSettings

from pipeline.config.settings import PROJECT_ROOT
from pipeline.deploy.components import databricks_env
from pipeline.deploy.errors import DeployError
from pipeline.deploy.stage import StageState

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

JOBS_FILE = PROJECT_ROOT / "deploy" / "databricks" / "jobs.yaml"
# The Databricks Runtimes the jobs are tested against, with their Apache Spark version: the wheel
# leaves Spark and Delta to the runtime, so its Spark must be the one the `spark` extra pins
# (pyproject; the tests run on it). 17.3 LTS: Spark 4.0.0, Delta 4.0.
TESTED_RUNTIMES: dict[str, str] = {"17.3.x-scala2.13": "4.0.0"}


def job_settings(state: StageState, definition: Path = JOBS_FILE) -> dict[str, JobSettings]:
    """The stage's jobs (`batch`, `stream`) as the SDK's request type."""
    config = state.config
    if config.databricks_spark_version not in TESTED_RUNTIMES:
        raise DeployError(
            f"Databricks Runtime {config.databricks_spark_version!r} is not one the jobs are "
            f"tested against ({', '.join(TESTED_RUNTIMES)}): its Spark may differ from the "
            "pinned pyspark"
        )
    values = {
        "stage": config.stage,
        "spark_version": config.databricks_spark_version,
        "node_type": config.databricks_node_type,
        "instance_profile_arn": state.output("iam", "DatabricksInstanceProfileArn"),
        "lake_bucket": state.lake_bucket,
        "topic_prefix": config.topic_prefix,
        "wheel": state.wheel_uri,
    }
    raw: dict[str, dict[str, Any]] = yaml.safe_load(
        Template(definition.read_text(encoding="utf-8")).substitute(values)
    )
    env = databricks_env(state)
    jobs = {}
    for key, job in raw.items():
        for cluster in job.get("job_clusters", []):
            if config.databricks_cluster_id:
                continue
            cluster["new_cluster"]["spark_env_vars"] = dict(env)
        if config.databricks_cluster_id:  # run on an existing cluster instead of job clusters
            job.pop("job_clusters", None)
            for task in job["tasks"]:
                task.pop("job_cluster_key", None)
                task["existing_cluster_id"] = config.databricks_cluster_id
        settings = JobSettings.from_dict(job)
        if settings.as_dict() != job:
            raise DeployError(f"deploy/databricks/jobs.yaml: job {key} has fields the API lacks")
        jobs[key] = settings
    return jobs


def _contains(current: Any, desired: Any) -> bool:
    """True when every value we set is in `current` (the service adds defaults of its own)."""
    if isinstance(desired, dict):
        return isinstance(current, dict) and all(
            _contains(current.get(key), value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(current, list)
            and len(current) == len(desired)
            and all(_contains(c, d) for c, d in zip(current, desired, strict=True))
        )
    return bool(current == desired)


@dataclass
class JobChange:
    key: str
    name: str
    action: str  # create | update | none
    job_id: int | None = None


def _existing(workspace: WorkspaceClient, name: str) -> tuple[int, dict[str, Any]] | None:
    for job in workspace.jobs.list(name=name):
        if job.job_id is not None and job.settings is not None and job.settings.name == name:
            full = workspace.jobs.get(job.job_id)
            return job.job_id, full.settings.as_dict() if full.settings else {}
    return None


def plan_jobs(workspace: WorkspaceClient, jobs: dict[str, JobSettings]) -> list[JobChange]:
    changes = []
    for key, settings in jobs.items():
        name = settings.name or key
        found = _existing(workspace, name)
        if found is None:
            changes.append(JobChange(key, name, "create"))
        elif _contains(found[1], settings.as_dict()):
            changes.append(JobChange(key, name, "none", found[0]))
        else:
            changes.append(JobChange(key, name, "update", found[0]))
    return changes


def apply_jobs(workspace: WorkspaceClient, jobs: dict[str, JobSettings]) -> list[JobChange]:
    """Create or reset each job whose settings differ; returns what was done."""
    changes = plan_jobs(workspace, jobs)
    for change in changes:
        settings = jobs[change.key]
        if change.action == "create":
            fields = {name: getattr(settings, name) for name in settings.as_dict()}
            change.job_id = workspace.jobs.create(**fields).job_id
        elif change.action == "update" and change.job_id is not None:
            workspace.jobs.reset(change.job_id, settings)
    return changes


def ensure_instance_profile(workspace: WorkspaceClient, arn: str) -> bool:
    """Register the stage's instance profile in the workspace (True when it was added)."""
    if any(p.instance_profile_arn == arn for p in workspace.instance_profiles.list()):
        return False
    workspace.instance_profiles.add(arn)
    return True


def delete_jobs(workspace: WorkspaceClient, names: list[str]) -> list[str]:
    deleted = []
    for name in names:
        found = _existing(workspace, name)
        if found is not None:
            workspace.jobs.delete(found[0])
            deleted.append(name)
    return deleted


def workspace_client(profile: str | None) -> WorkspaceClient:
    """Credentials from the Databricks CLI profile or DATABRICKS_* variables, never the repo."""
    from databricks.sdk import WorkspaceClient

    try:
        return WorkspaceClient(profile=profile) if profile else WorkspaceClient()
    except Exception as error:  # the SDK raises ValueError subclasses for missing config
        where = f"profile {profile!r}" if profile else "DATABRICKS_HOST/DATABRICKS_TOKEN"
        raise DeployError(f"Databricks is not configured ({where}): {error}") from error


def airflow_connection(workspace: WorkspaceClient) -> str:
    """The Airflow `databricks_default` connection (JSON) for MWAA's secrets backend."""
    config = workspace.config
    if not config.token:
        raise DeployError(
            "the Databricks profile has no token: MWAA's connection needs a personal access "
            "token (or create the secret yourself)"
        )
    return json.dumps({"conn_type": "databricks", "host": config.host, "password": config.token})
