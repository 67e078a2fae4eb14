"""A stage: its options, its names, and what is known about it while deploying.

Options come from the command line and `PINPIPE_DEPLOY_*` variables; AWS credentials come from
the standard chain (`--profile` / AWS_PROFILE, environment, instance role) and Databricks'
from its CLI profile or DATABRICKS_* variables, never from the repository.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.config.settings import PROJECT_ROOT
from pipeline.orchestrate.mwaa import MWAA_AIRFLOW_VERSION

COMPONENTS: tuple[str, ...] = (
    "network",
    "storage",
    "streams",
    "iam",
    "msk",
    "api",
    "connect",
    "mwaa",
)


class StageConfig(BaseSettings):
    """Everything `make deploy` needs to know about a stage besides credentials."""

    model_config = SettingsConfigDict(
        env_prefix="PINPIPE_DEPLOY_", extra="ignore", populate_by_name=True
    )

    stage: str = Field(default="dev", pattern=r"^[a-z][a-z0-9-]{0,11}$")
    region: str = ""
    profile: str | None = Field(default=None, description="AWS profile; else the standard chain")
    endpoint_url: str | None = Field(
        default=None, description="AWS endpoint override (an emulator); None on real AWS"
    )
    topic_prefix: str = "pinpipe"
    msk_cluster_arn: str = Field(default="", description="use this MSK cluster, create none")
    api_instance_type: str = "t3.small"
    kinesis_shards: int = Field(default=1, ge=1, description="shards of each stream")
    airflow_version: str = MWAA_AIRFLOW_VERSION
    mwaa_bundle: Path = Field(
        default=PROJECT_ROOT / "dist" / "mwaa",
        description="the MWAA packaging target's output: dags/ and requirements.txt",
    )
    databricks_profile: str | None = Field(
        default=None, description="Databricks CLI profile; else DATABRICKS_HOST/TOKEN"
    )
    databricks_spark_version: str = "17.3.x-scala2.13"
    databricks_node_type: str = "m5d.large"
    databricks_cluster_id: str = Field(
        default="", description="existing cluster for the jobs; the MWAA DAG's runs need one"
    )
    databricks: bool = Field(default=True, description="deploy the Databricks jobs too")
    skip: str = Field(
        default="",
        pattern=r"^((api|connect|mwaa)(,(api|connect|mwaa))*)?$",
        description="optional components not deployed, comma-separated: api, connect, mwaa",
    )
    waiter_delay_s: int = Field(default=15, ge=1)

    def stack_name(self, component: str) -> str:
        return f"pinpipe-{self.stage}-{component}"

    @property
    def cluster_name(self) -> str:
        if self.msk_cluster_arn:
            # arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>
            return self.msk_cluster_arn.split(":cluster/", 1)[1].split("/", 1)[0]
        return f"pinpipe-{self.stage}"

    @property
    def mwaa_environment(self) -> str:
        return f"pinpipe-{self.stage}"

    @property
    def secret_prefix(self) -> str:
        """Secrets Manager prefix of the Airflow connections and variables of MWAA."""
        return f"pinpipe/{self.stage}/airflow"

    @property
    def databricks_secret_name(self) -> str:
        return f"{self.secret_prefix}/connections/databricks_default"

    @property
    def components(self) -> tuple[str, ...]:
        """The stacks of this stage, in deploy order (no msk stack for an existing cluster)."""
        skipped = set(filter(None, self.skip.split(",")))
        if self.msk_cluster_arn:
            skipped.add("msk")
        return tuple(c for c in COMPONENTS if c not in skipped)


@dataclass
class Artifacts:
    """Where this deploy's artifacts are (or will be) in the artifacts bucket and ECR."""

    plugin_key: str = ""
    wheel_key: str = ""
    code_prefix: str = ""
    image_tag: str = ""
    requirements_version: str = ""
    startup_version: str = ""


@dataclass
class StageState:
    """What is known about a stage: stack outputs, cluster endpoints, artifacts."""

    config: StageConfig
    account: str = ""
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    cluster_arn: str = ""
    bootstrap_servers: str = ""
    artifacts: Artifacts = field(default_factory=Artifacts)

    def output(self, component: str, key: str) -> str:
        """An output of a deployed stack; KeyError while that stack does not exist yet."""
        return self.outputs[component][key]

    @property
    def region(self) -> str:
        return self.config.region

    @property
    def lake_bucket(self) -> str:
        return self.output("storage", "LakeBucketName")

    @property
    def artifacts_bucket(self) -> str:
        return self.output("storage", "ArtifactsBucketName")

    @property
    def image_uri(self) -> str:
        if not self.artifacts.image_tag:
            raise KeyError("image_tag")
        return f"{self.output('storage', 'RepositoryUri')}:{self.artifacts.image_tag}"

    @property
    def code_root(self) -> str:
        """Where the job scripts are (`<root>/pipeline/transform/job.py`), for Databricks runs."""
        if not self.artifacts.code_prefix:
            raise KeyError("code_prefix")
        return f"s3://{self.artifacts_bucket}/{self.artifacts.code_prefix}"

    @property
    def wheel_uri(self) -> str:
        if not self.artifacts.wheel_key:
            raise KeyError("wheel_key")
        return f"s3://{self.artifacts_bucket}/{self.artifacts.wheel_key}"
