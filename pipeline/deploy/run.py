"""Plan, apply and destroy a stage: stacks in order, artifacts after storage, then Databricks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from rich.console import Console
from rich.table import Table

from pipeline.config.settings import PROJECT_ROOT
from pipeline.deploy import artifacts, cfn, components, databricks, stacks
from pipeline.deploy.aws import Aws
from pipeline.deploy.errors import DeployError
from pipeline.deploy.stage import COMPONENTS, StageConfig, StageState

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

JOB_SCRIPT = "pipeline/transform/job.py"
PLUGIN_DIR = PROJECT_ROOT / ".cache" / "jvm" / "plugins" / "pinpipe-s3-sink"


@dataclass
class LocalArtifacts:
    """Artifacts built here, before anything is uploaded."""

    plugin: bytes
    wheel: Path
    image_tag: str
    code: dict[str, bytes]


@dataclass
class Plan:
    stacks: list[cfn.StackPlan] = field(default_factory=list)
    parameters: dict[str, dict[str, str]] = field(default_factory=dict)
    jobs: list[databricks.JobChange] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)

    @property
    def changes_anything(self) -> bool:
        return (
            any(p.changes_anything for p in self.stacks)
            or any(j.action != "none" for j in self.jobs)
            or bool(self.uploads)
        )


@dataclass
class Deployer:
    config: StageConfig
    aws: Aws
    state: StageState
    console: Console = field(default_factory=Console)
    workspace: Callable[[], WorkspaceClient] | None = None
    docker_runner: artifacts.Runner = artifacts.run_command
    has_docker: bool | None = None
    plugin_dir: Path = PLUGIN_DIR
    _workspace: WorkspaceClient | None = None

    # -- what exists -------------------------------------------------------------------------
    def refresh(self, cluster: bool = True) -> None:
        """Outputs of every deployed stack, and (`cluster`) the MSK endpoints when it exists."""
        cf = self.aws.cloudformation
        self.state.outputs = {}
        for component in self.config.components:
            name = self.config.stack_name(component)
            if cfn.stack_status(cf, name) is not None:
                self.state.outputs[component] = cfn.stack_outputs(cf, name)
        self.state.cluster_arn = self.config.msk_cluster_arn or self.state.outputs.get(
            "msk", {}
        ).get("ClusterArn", "")
        if cluster and self.state.cluster_arn and not self.state.bootstrap_servers:
            brokers = self.aws.kafka.get_bootstrap_brokers(ClusterArn=self.state.cluster_arn)
            self.state.bootstrap_servers = brokers.get("BootstrapBrokerStringSaslIam", "")
            if not self.state.bootstrap_servers:
                raise DeployError(
                    f"MSK cluster {self.state.cluster_arn} has no IAM (SASL/IAM) listener"
                )

    def databricks_client(self) -> WorkspaceClient | None:
        if self.workspace is None:
            return None
        if self._workspace is None:
            self._workspace = self.workspace()
        return self._workspace

    # -- artifacts -----------------------------------------------------------------------------
    def build(self, out_dir: Path) -> LocalArtifacts:
        if "mwaa" in self.config.components and not self.config.databricks_cluster_id:
            raise DeployError(
                "the MWAA DAG runs the batch job on an existing Databricks cluster: set "
                "PINPIPE_DEPLOY_DATABRICKS_CLUSTER_ID (or leave MWAA out: PINPIPE_DEPLOY_SKIP=mwaa)"
            )
        plugin = artifacts.plugin_zip(self.plugin_dir)
        wheel = artifacts.build_wheel(out_dir)
        code = artifacts.job_code()
        built = LocalArtifacts(plugin, wheel, artifacts.image_tag(), code)
        self.state.artifacts.plugin_key = artifacts.plugin_key(plugin)
        self.state.artifacts.wheel_key = artifacts.wheel_key(wheel)
        self.state.artifacts.code_prefix = artifacts.code_prefix(code)
        self.state.artifacts.image_tag = built.image_tag
        return built

    def pending_uploads(self, built: LocalArtifacts) -> list[str]:
        """Artifacts that are not in the artifacts bucket / ECR yet (for the plan)."""
        if "storage" not in self.state.outputs:
            return ["connector plugin", "wheel", "job code", "API image", "MWAA bundle"]
        s3, bucket, pending = self.aws.s3, self.state.artifacts_bucket, []
        for what, key in (
            ("connector plugin", self.state.artifacts.plugin_key),
            ("wheel", self.state.artifacts.wheel_key),
            ("job code", f"{self.state.artifacts.code_prefix}/{JOB_SCRIPT}"),
        ):
            if not _exists(s3, bucket, key):
                pending.append(f"{what} s3://{bucket}/{key}")
        repository = self.state.output("storage", "RepositoryName")
        if not artifacts.image_exists(self.aws.ecr, repository, built.image_tag):
            pending.append(f"API image {self.state.image_uri}")
        if "mwaa" in self.config.components:
            pending += self._mwaa_versions(upload=False)
        return pending

    def _mwaa_versions(self, upload: bool) -> list[str]:
        """MWAA bundle and startup script: versions when current (uploading when asked)."""
        s3, bucket = self.aws.s3, self.state.artifacts_bucket
        script = components.startup_script(self.state)
        if upload:
            done = artifacts.upload_mwaa(s3, bucket, self.config.mwaa_bundle, script)
            self.state.artifacts.requirements_version = done.requirements_version
            self.state.artifacts.startup_version = done.startup_version
            return [*done.uploaded, *(f"deleted {key}" for key in done.deleted)]
        stale: list[str] = []
        files = artifacts.mwaa_bundle_files(self.config.mwaa_bundle)
        wanted = {f"mwaa/{k}": p.read_bytes() for k, p in files.items()}
        wanted["mwaa/startup.sh"] = script.encode()
        for key, data in wanted.items():
            version = _current_version(s3, bucket, key, artifacts.sha256(data))
            if version is None:
                stale.append(f"s3://{bucket}/{key}")
            elif key == "mwaa/requirements.txt":
                self.state.artifacts.requirements_version = version
            elif key == "mwaa/startup.sh":
                self.state.artifacts.startup_version = version
        return stale

    def upload(self, built: LocalArtifacts) -> None:
        s3, bucket = self.aws.s3, self.state.artifacts_bucket
        for what, key, data in (
            ("connector plugin", self.state.artifacts.plugin_key, built.plugin),
            ("wheel", self.state.artifacts.wheel_key, built.wheel.read_bytes()),
        ):
            _, uploaded = artifacts.upload(s3, bucket, key, data)
            self.console.print(f"  {what}: s3://{bucket}/{key}{'' if uploaded else ' (unchanged)'}")
        # the job script last: its presence says the whole code root is there
        prefix = self.state.artifacts.code_prefix
        for name, data in sorted(built.code.items(), key=lambda item: item[0] == JOB_SCRIPT):
            artifacts.upload(s3, bucket, f"{prefix}/{name}", data)
        self.console.print(f"  job code: {self.state.code_root}")
        if "mwaa" in self.config.components:
            for key in self._mwaa_versions(upload=True):
                self.console.print(f"  MWAA: {key}")
        message = artifacts.push_image(
            self.aws.ecr,
            self.state.output("storage", "RepositoryName"),
            self.state.image_uri,
            self.docker_runner,
            self.has_docker,
        )
        self.console.print(f"  {message}")

    # -- plan ----------------------------------------------------------------------------------
    def plan_component(self, component: str) -> tuple[cfn.StackPlan, dict[str, str] | None]:
        name = self.config.stack_name(component)
        try:
            parameters = stacks.parameters(component, self.state)
            template = stacks.template(component, self.state)
        except KeyError as missing:
            template = stacks.template(component)
            exists = component in self.state.outputs
            plan = cfn.StackPlan(
                component,
                name,
                "update-later" if exists else "create-later",
                changes=[] if exists else cfn.template_changes(template),
                waiting_for=str(missing).strip("'\""),
            )
            return plan, None
        plan = cfn.plan_stack(
            self.aws.cloudformation,
            component,
            name,
            template,
            parameters,
            stacks.CAPABILITIES.get(component, []),
            self.config.waiter_delay_s,
        )
        return plan, parameters

    def plan(self, built: LocalArtifacts) -> Plan:
        plan = Plan(uploads=self.pending_uploads(built))
        for component in self.config.components:
            stack_plan, parameters = self.plan_component(component)
            plan.stacks.append(stack_plan)
            if parameters is not None:
                plan.parameters[component] = parameters
        workspace = self.databricks_client()
        if workspace is not None:
            try:
                jobs = databricks.job_settings(self.state)
            except KeyError:
                plan.jobs = [
                    databricks.JobChange(k, f"pinpipe-{self.config.stage}-{k}", "create")
                    for k in ("batch", "stream")
                ]
            else:
                plan.jobs = databricks.plan_jobs(workspace, jobs)
        return plan

    def discard(self, plan: Plan) -> None:
        for stack_plan in plan.stacks:
            cfn.discard(self.aws.cloudformation, stack_plan)

    def show(self, plan: Plan) -> None:
        table = Table(title=f"plan of stage {self.config.stage} ({self.config.region})")
        for column in ("stack", "action", "resources"):
            table.add_column(column)
        for stack_plan in plan.stacks:
            detail = "\n".join(change.describe() for change in stack_plan.changes)
            if stack_plan.waiting_for:
                detail = f"(inputs known after apply: {stack_plan.waiting_for})\n{detail}".strip()
            table.add_row(stack_plan.stack_name, stack_plan.action, detail or "-")
        for job in plan.jobs:
            table.add_row(f"databricks job {job.name}", job.action, "-")
        self.console.print(table)
        for upload in plan.uploads:
            self.console.print(f"upload: {upload}")
        if not plan.changes_anything:
            self.console.print("no changes: the stage is up to date")

    # -- apply ---------------------------------------------------------------------------------
    def apply(self, plan: Plan, built: LocalArtifacts) -> None:
        planned = {p.component: p for p in plan.stacks}
        for component in self.config.components:
            stack_plan = planned[component]
            parameters = plan.parameters.get(component)
            try:
                current = stacks.parameters(component, self.state)
            except KeyError as missing:
                raise DeployError(f"{component}: input {missing} still unknown") from None
            if parameters != current or (stack_plan.action.endswith("-later")):
                cfn.discard(self.aws.cloudformation, stack_plan)
                stack_plan, _ = self.plan_component(component)
                for change in stack_plan.changes:
                    self.console.print(f"  {stack_plan.stack_name}: {change.describe()}")
            if stack_plan.changes_anything:
                self.console.print(f"{stack_plan.stack_name}: {stack_plan.action} …")
                cfn.execute(self.aws.cloudformation, stack_plan, self.config.waiter_delay_s)
            self.state.outputs[component] = cfn.stack_outputs(
                self.aws.cloudformation, stack_plan.stack_name
            )
            if component == "storage":
                self.upload(built)
            if component in ("msk", "iam") and not self.state.bootstrap_servers:
                self.refresh_cluster()
        self.apply_databricks()

    def refresh_cluster(self) -> None:
        arn = self.config.msk_cluster_arn or self.state.outputs.get("msk", {}).get("ClusterArn")
        if arn:
            self.state.cluster_arn = arn
            brokers = self.aws.kafka.get_bootstrap_brokers(ClusterArn=arn)
            self.state.bootstrap_servers = brokers.get("BootstrapBrokerStringSaslIam", "")

    def apply_databricks(self) -> None:
        workspace = self.databricks_client()
        if workspace is None:
            self.console.print("Databricks: skipped (PINPIPE_DEPLOY_DATABRICKS=false)")
            return
        profile_arn = self.state.output("iam", "DatabricksInstanceProfileArn")
        if databricks.ensure_instance_profile(workspace, profile_arn):
            self.console.print(f"Databricks: instance profile {profile_arn} registered")
        for change in databricks.apply_jobs(workspace, databricks.job_settings(self.state)):
            self.console.print(f"Databricks job {change.name}: {change.action} ({change.job_id})")
        put_secret(
            self.aws,
            self.config.databricks_secret_name,
            databricks.airflow_connection(workspace),
        )

    # -- destroy -------------------------------------------------------------------------------
    def destroy(self, delete_lake: bool) -> list[str]:
        """Remove the stage (reverse order); the lake bucket stays unless `delete_lake`."""
        removed: list[str] = []
        cf, delay = self.aws.cloudformation, self.config.waiter_delay_s
        storage = self.state.outputs.get("storage", {})
        workspace = self.databricks_client()
        if workspace is not None:
            names = [f"pinpipe-{self.config.stage}-{key}" for key in ("batch", "stream")]
            removed += [f"databricks job {n}" for n in databricks.delete_jobs(workspace, names)]
        if delete_secret(self.aws, self.config.databricks_secret_name):
            removed.append(f"secret {self.config.databricks_secret_name}")
        # every component, skipped or not: a stack deployed before a `skip` goes too
        for component in reversed(COMPONENTS):
            if component == "storage" and storage:
                empty_bucket(self.aws.s3, storage["ArtifactsBucketName"])
                delete_images(self.aws, storage["RepositoryName"])
            if cfn.delete_stack(cf, self.config.stack_name(component), delay):
                removed.append(f"stack {self.config.stack_name(component)}")
                self.console.print(f"deleted {self.config.stack_name(component)}")
                if component == "gateway":
                    purge_secret(self.aws, self.config.api_key_secret)
        lake = storage.get("LakeBucketName")
        if lake and delete_lake:
            empty_bucket(self.aws.s3, lake)
            self.aws.s3.delete_bucket(Bucket=lake)
            removed.append(f"bucket {lake}")
        elif lake:
            self.console.print(f"kept the lake bucket {lake} (DELETE_LAKE=1 removes it)")
        return removed


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return False
    return True


def _current_version(s3: Any, bucket: str, key: str, digest: str) -> str | None:
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return None
    if head.get("Metadata", {}).get(artifacts.SHA_METADATA) != digest:
        return None
    return str(head.get("VersionId", ""))


def empty_bucket(s3: Any, bucket: str) -> None:
    """Delete every object version and delete marker (a versioned bucket)."""
    try:
        pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for page in pages:
            doomed = [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
            ]
            for start in range(0, len(doomed), 1000):
                s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed[start : start + 1000]})
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "NoSuchBucket":
            raise


def delete_images(aws: Aws, repository: str) -> None:
    ecr = aws.ecr
    try:
        images = ecr.list_images(repositoryName=repository).get("imageIds", [])
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "RepositoryNotFoundException":
            return
        raise
    if images:
        ecr.batch_delete_image(repositoryName=repository, imageIds=images)


def put_secret(aws: Aws, name: str, value: str) -> bool:
    """Create or update the secret; False when it already held `value`."""
    sm = aws.secretsmanager
    try:
        current = sm.get_secret_value(SecretId=name)["SecretString"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        sm.create_secret(Name=name, SecretString=value, Description="MWAA: Databricks connection")
        return True
    if current == value:
        return False
    sm.put_secret_value(SecretId=name, SecretString=value)
    return True


def purge_secret(aws: Aws, name: str) -> None:
    """Delete a secret now, even one a deleted stack left in its recovery window: a secret
    scheduled for deletion keeps its name, and the next deploy could not create it again."""
    try:
        aws.secretsmanager.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise


def delete_secret(aws: Aws, name: str) -> bool:
    sm = aws.secretsmanager
    try:
        if "DeletedDate" in sm.describe_secret(SecretId=name):
            return False
        sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return False
        raise
    return True
