"""Least privilege, proven: each workload's AWS calls with the permissions the templates give it.

moto server enforces IAM here (`/moto-api/reset-auth`: requests are signed with a principal's
access keys and checked against its policies). Each workload's principal is an IAM user holding
exactly the permission statements of its role in deploy/cloudformation/iam.yaml, read from the
template and resolved (!Sub, !Ref, !GetAtt) with this stage's names and the ARNs of the buckets
and streams created in moto; then the workload's calls run with its access keys:

- API (ApiRole): the API's own Kinesis code (`pipeline.ingest.kinesis.KinesisDelivery`) puts
  records, describes and lists streams;
- provision (ProvisionRole): `pipeline.stack.provision` checks the lake bucket and the streams;
- API host (ApiHostRole): reads the API key from Secrets Manager, as the host's start script does;
- MWAA (MwaaRole): the DAG's sensor (`pipeline.landing.landed_topics`), Airflow's
  Secrets Manager backend reading the Databricks connection, and the DAG-folder sync's S3 calls;
- Databricks (DatabricksRole): the batch job, the quality task (it runs there on aws) and the
  streaming job, as their S3 and Kinesis calls made with boto3 (running Spark under moto IAM is
  too heavy): list/get the landing zone, get/put/delete/multipart on lake/ (Delta writes,
  checkpoints, overwrites), the wheel and job scripts, and the Kinesis reads;
- S3 sink (ConnectRole): the connector's S3 calls (PutObject and multipart on topics/, listing).

Then every statement is dropped in turn: at least one call of its workload must be denied.
Statements whose service moto does not emulate with IAM (MSK's kafka-cluster, ECR, CloudWatch
Logs/metrics, SQS, KMS, MWAA's own calls, role chaining on EC2) are listed with their reason
and checked by tests/unit/test_deploy_templates.py only. moto checks S3 actions against
resource ARNs itself (HeadBucket as s3:ListBucket, as AWS does); for Kinesis and Secrets Manager
it checks against `*` only, so the server here names the stream or secret of each request (as
AWS does) before checking.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from pipeline.config import Settings
from pipeline.deploy import components, stacks, templates
from pipeline.deploy.stage import StageConfig, StageState
from pipeline.ingest.kinesis import KinesisDelivery
from pipeline.landing import LANDING_PREFIX, landed_topics, object_key, topic_prefix
from pipeline.orchestrate.alerts import publish_to_sns
from pipeline.stack.provision import ensure_bucket, ensure_streams
from tests.support.moto import moto_server

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"  # moto's account
REGION = "us-east-1"
STAGE = "ci"
ADMIN = {"aws_access_key_id": "admin", "aws_secret_access_key": "admin"}  # before enforcement

MOTO_SERVER = """
import json
import sys
from moto.kinesis.responses import KinesisResponse
from moto.kinesis.utils import decompose_shard_iterator
from moto.secretsmanager.models import secretsmanager_backends
from moto.s3.responses import ACTION_MAP
from moto.secretsmanager.responses import SecretsManagerResponse
from moto.server import main
from moto.sns.responses import SNSResponse

# AWS authorizes HeadBucket as s3:ListBucket (there is no s3:HeadBucket action)
ACTION_MAP["BUCKET"]["HEAD"]["DEFAULT"] = "ListBucket"

def kinesis_resource(self):
    body = json.loads(self.body or "{}")
    if body.get("StreamARN"):
        return body["StreamARN"]
    name = body.get("StreamName")
    if not name and body.get("ShardIterator"):  # GetRecords: the iterator names its stream
        name = decompose_shard_iterator(body["ShardIterator"])[0]
    if name:
        return f"arn:aws:kinesis:{self.region}:{self.current_account}:stream/{name}"
    return "*"

def secret_resource(self):
    secret_id = json.loads(self.body or "{}").get("SecretId")
    if not secret_id:
        return "*"
    secrets = secretsmanager_backends[self.current_account][self.region].secrets
    if secret_id in secrets:
        return secrets[secret_id].arn
    return f"arn:aws:secretsmanager:{self.region}:{self.current_account}:secret:{secret_id}"

def sns_resource(self):
    return self._get_param("TopicArn") or "*"

KinesisResponse._determine_resource = kinesis_resource
SNSResponse._determine_resource = sns_resource
SecretsManagerResponse._determine_resource = secret_resource
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def moto_with_iam_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server(MOTO_SERVER, tmp_path_factory.mktemp("moto-iam")) as url:
        yield url


@contextmanager
def iam_enforced(moto_with_iam_url: str) -> Iterator[None]:
    """Every request in the block is authenticated and authorized by moto's IAM."""
    requests.post(
        f"{moto_with_iam_url}/moto-api/reset-auth", data=b"0", timeout=5
    ).raise_for_status()
    try:
        yield
    finally:
        requests.post(f"{moto_with_iam_url}/moto-api/reset-auth", data=b"inf", timeout=5)


def admin(moto_with_iam_url: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=moto_with_iam_url, region_name=REGION, **ADMIN)  # type: ignore[call-overload]


# -- the stage in moto, and the policies of its roles resolved from the template --------------
@dataclass
class Stage:
    url: str
    state: StageState

    @property
    def lake(self) -> str:
        return self.state.lake_bucket

    @property
    def artifacts(self) -> str:
        return self.state.artifacts_bucket


@pytest.fixture(scope="module")
def stage(moto_with_iam_url: str) -> Stage:
    config = StageConfig(stage=STAGE, region=REGION)
    state = StageState(config, account=ACCOUNT)
    lake, artifacts = (f"pinpipe-{STAGE}-{k}-{ACCOUNT}-{REGION}" for k in ("lake", "artifacts"))
    s3, kinesis = admin(moto_with_iam_url, "s3"), admin(moto_with_iam_url, "kinesis")
    arns = []
    for bucket in (lake, artifacts):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for table in ("pin", "geo", "user"):
        name = f"streaming-{config.topic_prefix}-{table}"
        kinesis.create_stream(StreamName=name, ShardCount=1)
        arns.append(
            kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
                "StreamARN"
            ]
        )
    state.outputs = {
        "storage": {
            "LakeBucketName": lake,
            "LakeBucketArn": f"arn:aws:s3:::{lake}",
            "ArtifactsBucketName": artifacts,
            "ArtifactsBucketArn": f"arn:aws:s3:::{artifacts}",
            "RepositoryArn": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/pinpipe-{STAGE}/api",
        },
        "streams": {"StreamArns": ",".join(arns)},
    }
    # what the workloads find there: landed objects, the job code, the secrets
    for topic in ("pin", "geo", "user"):
        key = object_key(f"pinpipe.{topic}", 0, 0)
        s3.put_object(Bucket=lake, Key=key, Body=b'{"ind": 1}\n')
    s3.put_object(
        Bucket=lake, Key="lake/silver/pin/_delta_log/00000000000000000000.json", Body=b"{}"
    )
    s3.put_object(Bucket=artifacts, Key="wheels/0123/pinpipe-0.1.0-py3-none-any.whl", Body=b"w")
    s3.put_object(Bucket=artifacts, Key="code/0123/pipeline/transform/job.py", Body=b"j")
    for name in ("mwaa/dags/pinpipe_batch.py", "mwaa/requirements.txt", "mwaa/startup.sh"):
        s3.put_object(Bucket=artifacts, Key=name, Body=b"#")
    admin(moto_with_iam_url, "sns").create_topic(Name=f"pinpipe-{STAGE}-alarms")
    sm = admin(moto_with_iam_url, "secretsmanager")
    sm.create_secret(Name=config.api_key_secret, SecretString="k" * 40)
    sm.create_secret(Name=config.databricks_secret_name, SecretString='{"conn_type": "databricks"}')
    return Stage(moto_with_iam_url, state)


def resolve(node: Any, values: dict[str, Any], resources: dict[str, Any]) -> Any:
    """A template fragment with !Ref, !Sub and !GetAtt (roles' Arn) replaced by values."""
    if isinstance(node, list):
        return [resolve(item, values, resources) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((key, arg),) = node.items()
        if key == "Ref":
            return values[arg]
        if key == "Fn::Sub":
            return re.sub(r"\$\{([^}!]+)\}", lambda m: str(values[m.group(1)]), arg)
        if key == "Fn::GetAtt":
            role = resolve(resources[arg[0]]["Properties"]["RoleName"], values, resources)
            return f"arn:aws:iam::{ACCOUNT}:role/{role}"
    return {key: resolve(value, values, resources) for key, value in node.items()}


def role_statements(stage: Stage, role: str) -> list[dict[str, Any]]:
    """The permission statements of `role` in iam.yaml, for this stage."""
    template = templates.load("iam")
    values: dict[str, Any] = {
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::Partition": "aws",
    }
    for name, value in stacks.parameters("iam", stage.state).items():
        is_list = template["Parameters"][name]["Type"] == "CommaDelimitedList"
        values[name] = value.split(",") if is_list else value
    resources = template["Resources"]
    statements = []
    for policy in resources[role]["Properties"]["Policies"]:
        statements += resolve(policy["PolicyDocument"], values, resources)["Statement"]
    return statements


_users = iter(range(10_000))


def principal(stage: Stage, statements: list[dict[str, Any]]) -> dict[str, str]:
    """Access keys of a new IAM user holding exactly `statements`."""
    iam = admin(stage.url, "iam")
    name = f"workload-{next(_users)}"
    iam.create_user(UserName=name)
    document = {"Version": "2012-10-17", "Statement": statements}
    if statements:
        arn = iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(document))["Policy"][
            "Arn"
        ]
        iam.attach_user_policy(UserName=name, PolicyArn=arn)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }


def settings_for(stage: Stage, keys: dict[str, str]) -> Settings:
    """A component's settings on aws (as the deploy gives them), pointed at moto with `keys`."""
    env = {**components.base_env(stage.state), "AWS_ENDPOINT_URL": stage.url, **keys}
    return components.settings_from_env(env)


def client(settings: Settings, service: str) -> Any:
    """A client as the component makes it: its settings' endpoint, region and credentials."""
    if service == "s3":
        return boto3.client("s3", **settings.boto3_kwargs("s3"))
    if service == "kinesis":
        return boto3.client("kinesis", **settings.boto3_kwargs("kinesis"))
    secret = settings.aws_secret_access_key
    return boto3.client(  # type: ignore[call-overload]
        service,
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
    )


# -- the workloads ---------------------------------------------------------------------------
def api_writes_to_kinesis(settings: Settings) -> None:
    delivery = KinesisDelivery(settings)
    stream = settings.streams["pin"]
    delivery.put_record(stream, b'{"index": 1}', "1")
    delivery.put_records(settings.streams["geo"], [(b'{"ind": 1}', "1"), (b'{"ind": 2}', "2")])
    delivery.describe(settings.streams["user"])
    delivery.list_streams()


def provision_checks(settings: Settings) -> None:
    ensure_bucket(settings)
    assert ensure_streams(settings) == []  # the streams stack made them: nothing to create


def host_reads_the_api_key(settings: Settings) -> None:
    secret = f"pinpipe/{STAGE}/api-key"
    assert client(settings, "secretsmanager").get_secret_value(SecretId=secret)["SecretString"]


def mwaa_runs_the_dag(settings: Settings) -> None:
    # the DAG's first task, as it runs on MWAA
    landed = landed_topics(settings)
    assert all(topic.objects >= 1 for topic in landed.values())
    # Airflow's Secrets Manager backend: the Databricks connection of the batch and quality tasks
    sm = client(settings, "secretsmanager")
    sm.get_secret_value(SecretId=f"pinpipe/{STAGE}/airflow/connections/databricks_default")
    # MWAA syncing the DAG folder, requirements and startup script (by version)
    s3, bucket = client(settings, "s3"), f"pinpipe-{STAGE}-artifacts-{ACCOUNT}-{REGION}"
    s3.list_objects_v2(Bucket=bucket, Prefix="mwaa/dags/")
    head = s3.head_object(Bucket=bucket, Key="mwaa/requirements.txt")
    s3.get_object(Bucket=bucket, Key="mwaa/requirements.txt", VersionId=head["VersionId"])
    s3.get_bucket_versioning(Bucket=bucket)
    # a failed task's alert, to the stage's alarm topic, as `mwaa_env` configures it
    topic = components.alarm_topic_arn(StageState(StageConfig(stage=STAGE, region=REGION), ACCOUNT))
    alerting = settings.model_copy(update={"alert_sns_topic_arn": topic})
    publish_to_sns({"text": "pinpipe_batch failed", "task_id": "run_batch_job"}, alerting)


def databricks_jobs(settings: Settings) -> None:
    s3, lake = client(settings, "s3"), settings.lake_bucket
    artifacts = f"pinpipe-{STAGE}-artifacts-{ACCOUNT}-{REGION}"
    # the cluster loads the wheel (jobs) and the job script (the DAG's runs)
    s3.get_object(Bucket=artifacts, Key="wheels/0123/pinpipe-0.1.0-py3-none-any.whl")
    s3.get_object(Bucket=artifacts, Key="code/0123/pipeline/transform/job.py")
    # batch job: read the landing zone, write Delta tables (objects, overwrites, multipart)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=lake, Prefix=f"{LANDING_PREFIX}/")
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    s3.get_object(Bucket=lake, Key=keys[0])
    s3.get_bucket_location(Bucket=lake)
    part = "lake/bronze/pin/part-00000.snappy.parquet"
    s3.put_object(Bucket=lake, Key=part, Body=b"parquet")
    upload = s3.create_multipart_upload(Bucket=lake, Key="lake/silver/pin/part-00001.parquet")
    s3.abort_multipart_upload(
        Bucket=lake, Key="lake/silver/pin/part-00001.parquet", UploadId=upload["UploadId"]
    )
    s3.delete_object(Bucket=lake, Key=part)
    # quality task: the Delta logs of silver and gold
    s3.list_objects_v2(Bucket=lake, Prefix="lake/silver/pin/_delta_log/")
    s3.get_object(Bucket=lake, Key="lake/silver/pin/_delta_log/00000000000000000000.json")
    # streaming job: Kinesis reads, checkpoint under lake/
    kinesis = client(settings, "kinesis")
    for stream in settings.streams.values():
        kinesis.describe_stream_summary(StreamName=stream)
        shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        kinesis.get_records(ShardIterator=iterator, Limit=10)
    s3.put_object(Bucket=lake, Key="lake/stream/_checkpoints/pin/offsets/0", Body=b"v1")


def s3_sink_lands_records(settings: Settings) -> None:
    s3, lake = client(settings, "s3"), settings.lake_bucket
    key = object_key("pinpipe.pin", 1, 0)
    s3.get_bucket_location(Bucket=lake)
    s3.put_object(Bucket=lake, Key=key, Body=b'{"index": 1}\n')
    s3.get_object(Bucket=lake, Key=key)
    upload = s3.create_multipart_upload(Bucket=lake, Key=key)
    s3.list_parts(Bucket=lake, Key=key, UploadId=upload["UploadId"])
    s3.abort_multipart_upload(Bucket=lake, Key=key, UploadId=upload["UploadId"])
    s3.list_objects_v2(Bucket=lake, Prefix=topic_prefix("pinpipe.pin"))
    s3.list_multipart_uploads(Bucket=lake, Prefix=f"{LANDING_PREFIX}/")


@dataclass(frozen=True)
class Workload:
    role: str
    run: Callable[[Settings], None]
    # statements its calls cannot exercise in moto, with the reason
    not_emulated: tuple[str, ...] = ()


NOT_EMULATED = {
    "ConnectToTheStagesCluster": "MSK IAM auth (kafka-cluster:*) is not emulated",
    "ProduceToThePrefixTopics": "MSK IAM auth (kafka-cluster:*) is not emulated",
    "CreateThePrefixTopics": "MSK IAM auth (kafka-cluster:*) is not emulated",
    "UseTheApisTransactionalId": "MSK IAM auth (kafka-cluster:*) is not emulated",
    "ReadTheApiRequestsTopic": "MSK IAM auth (kafka-cluster:*) is not emulated",
    "ReadItWithoutCommittingOffsets": "MSK IAM auth (kafka-cluster:*) is not emulated",
    "ReadThePrefixTopicsWriteTheDeadLetterTopic": "MSK IAM auth is not emulated",
    "ConnectorConsumerGroups": "MSK IAM auth is not emulated",
    "PullTheApiImage": "docker pulls from ECR on the host",
    "EcrLoginHasNoResourceLevelPermission": "docker pulls from ECR on the host",
    "HandOutTheApiAndProvisionRoles": "role chaining from the instance's metadata credentials",
    "PublishMetricsOfTheEnvironment": "MWAA's own call",
    "MwaaChecksAccountPublicAccessBlock": "MWAA's own call (S3 Control)",
    "TaskAndSchedulerLogs": "MWAA's own CloudWatch Logs calls",
    "DescribeLogGroupsHasNoResourceLevelPermission": "MWAA's own CloudWatch calls",
    "CeleryQueue": "MWAA's own SQS queue",
    "CeleryQueueEncryption": "MWAA's own SQS queue",
}

WORKLOADS = {
    "api": Workload("ApiRole", api_writes_to_kinesis),
    "provision": Workload("ProvisionRole", provision_checks),
    "api-host": Workload("ApiHostRole", host_reads_the_api_key),
    "mwaa": Workload("MwaaRole", mwaa_runs_the_dag),
    "databricks": Workload("DatabricksRole", databricks_jobs),
    "s3-sink": Workload("ConnectRole", s3_sink_lands_records),
}


def is_denied(error: BaseException) -> bool:
    """An AccessDenied from AWS, possibly wrapped by the component (the API answers 502)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ClientError):
            code = seen.response.get("Error", {}).get("Code", "")
            # moto answers JSON-protocol services' denials in XML, and a HEAD has no body:
            # botocore sees only the 403 there
            status = seen.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return code in ("AccessDenied", "AccessDeniedException") or (
                status == 403
                and (
                    "is not authorized to perform" in str(seen)
                    or seen.operation_name.startswith("Head")
                )
            )
        seen = seen.__cause__ or seen.__context__
    return False


def run_as(stage: Stage, statements: list[dict[str, Any]], workload: Workload) -> None:
    settings = settings_for(stage, principal(stage, statements))
    with iam_enforced(stage.url):
        workload.run(settings)


@pytest.mark.parametrize("name", WORKLOADS)
def test_the_workload_runs_with_its_roles_permissions(stage: Stage, name: str) -> None:
    workload = WORKLOADS[name]
    run_as(stage, role_statements(stage, workload.role), workload)


@pytest.mark.parametrize("name", WORKLOADS)
def test_without_any_permission_the_workload_is_denied(stage: Stage, name: str) -> None:
    with pytest.raises(Exception) as denied:
        run_as(stage, [], WORKLOADS[name])
    assert is_denied(denied.value), denied.value


def dropped_cases() -> list[tuple[str, str]]:
    cases = []
    for name, workload in WORKLOADS.items():
        statements = templates.load("iam")["Resources"][workload.role]["Properties"]["Policies"]
        for policy in statements:
            for statement in policy["PolicyDocument"]["Statement"]:
                if statement["Sid"] not in NOT_EMULATED:
                    cases.append((name, statement["Sid"]))
    return cases


@pytest.mark.parametrize(("name", "sid"), dropped_cases())
def test_dropping_a_statement_denies_a_call_of_its_workload(
    stage: Stage, name: str, sid: str
) -> None:
    workload = WORKLOADS[name]
    kept = [s for s in role_statements(stage, workload.role) if s["Sid"] != sid]
    with pytest.raises(Exception) as denied:
        run_as(stage, kept, workload)
    assert is_denied(denied.value), f"without {sid}: {denied.value!r}"


def test_every_role_is_a_workload_and_unexercised_statements_are_named() -> None:
    resources = templates.load("iam")["Resources"]
    roles = {k for k, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    assert roles == {w.role for w in WORKLOADS.values()}
    sids = {
        statement["Sid"]
        for role in roles
        for policy in resources[role]["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
    }
    assert set(NOT_EMULATED) <= sids, "a named statement no longer exists"
    services = set()
    for role in roles:
        for policy in resources[role]["Properties"]["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                if statement["Sid"] in NOT_EMULATED:
                    actions = statement["Action"]
                    for action in actions if isinstance(actions, list) else [actions]:
                        services.add(action.split(":")[0])
    # what is left out is never a Kinesis or Secrets Manager call, and of S3 only MWAA's own
    assert "kinesis" not in services and "secretsmanager" not in services
    s3_actions = {
        action
        for role in roles
        for policy in resources[role]["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        if statement["Sid"] in NOT_EMULATED
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        if action.startswith("s3:")
    }
    assert s3_actions == {"s3:GetAccountPublicAccessBlock"}


def test_the_template_resolution_names_this_stages_resources(stage: Stage) -> None:
    statements = {s["Sid"]: s for s in role_statements(stage, "MwaaRole")}
    assert statements["SensorListsTheLandingZone"]["Resource"] == f"arn:aws:s3:::{stage.lake}"
    api = {s["Sid"]: s for s in role_statements(stage, "ApiRole")}
    assert sorted(api["PutRecordsOnTheStagesStreams"]["Resource"]) == sorted(
        stage.state.output("streams", "StreamArns").split(",")
    )
    assert not any("CreateTopic" in str(s["Action"]) for s in api.values())


def test_moto_enforces_iam_here(stage: Stage) -> None:
    keys = principal(
        stage,
        [
            {
                "Sid": "Nothing",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::elsewhere/*",
            }
        ],
    )
    s3 = client(settings_for(stage, keys), "s3")
    with iam_enforced(stage.url), pytest.raises(ClientError) as denied:
        s3.list_objects_v2(Bucket=stage.lake)
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
