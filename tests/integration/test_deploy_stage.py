"""`pinpipe deploy` end to end against moto server acting as AWS.

Exercised against moto (its own server process on loopback): CloudFormation change sets (plan,
create, update, no-op, delete) for the network, storage, streams, iam and api stacks, and every
resource they create (VPC, subnets, NAT, buckets, Kinesis streams, IAM roles and instance
profiles, ECR, the EC2 instance, API Gateway), S3 artifact uploads, ECR image lookups, Secrets
Manager and STS.

Not in moto, validated instead: `kafka:GetBootstrapBrokers` goes through a real boto3 client (so
botocore validates the request against the service model and parses the answer with it) and is
answered by a hook; the Databricks Jobs and Instance Profiles APIs are served by a loopback HTTP
server that parses every request body into the SDK's request types and refuses what they lack.
The MSK cluster is an existing one (given by ARN); the gateway, connect, mwaa and alarms stacks
are skipped here (moto's CloudFormation lacks API keys, usage plans, VPC links, generated
secrets, AWS::KafkaConnect::*, AWS::MWAA::* and CloudWatch alarms): their requests are validated
offline in tests/unit/test_deploy_requests.py.
"""

from __future__ import annotations

import ast
import base64
import io
import json
import os
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from databricks.sdk import WorkspaceClient
from databricks.sdk.service.compute import InstanceProfile
from databricks.sdk.service.jobs import JobSettings
from rich.console import Console

from pipeline.deploy import cfn, components, stacks
from pipeline.deploy.aws import Aws, connect
from pipeline.deploy.errors import DeployError
from pipeline.deploy.run import Deployer, LocalArtifacts
from pipeline.deploy.stage import StageConfig, StageState
from tests.support.moto import moto_server

pytestmark = pytest.mark.integration

REGION = "us-east-1"
CLUSTER_ARN = (
    "arn:aws:kafka:us-east-1:123456789012:cluster/pinpipe-shared/6a1f0c2e-1b2c-4d5e-9f00-12345678-2"
)
# stacks moto's CloudFormation cannot create (see the module's docstring)
MOTO_SKIPS = "gateway,connect,mwaa,alarms"
BOOTSTRAP = ",".join(
    f"b-{n}.pinpipe-shared.abc123.c2.kafka.us-east-1.amazonaws.com:9098" for n in (1, 2)
)

MANIFEST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "size": 7023,
        "digest": "sha256:" + "a" * 64,
    },
    "layers": [],
}

# moto 5's CloudFormation falls short of AWS in two ways this deploy meets; the server is started
# with both filled in from moto's own service backends, nothing else changed:
# - ExecuteChangeSet does not rebuild a stack's outputs nor remember its parameters (CreateStack
#   and UpdateStack do);
# - DeleteStack leaves some resource types in place (route tables, routes, internet gateways and
#   their attachments, NAT gateways, Elastic IPs, REST APIs), so a VPC can never be deleted;
# - a load balancer's Type and Name are ignored (every one is an application load balancer).
MOTO_SERVER = """
import sys
from moto.apigateway.models import RestAPI, apigateway_backends
from moto.cloudformation.models import CloudFormationBackend
from moto.ec2.models import ec2_backends
from moto.ec2.models.elastic_ip_addresses import ElasticAddress
from moto.ec2.models.internet_gateways import InternetGateway
from moto.ec2.models.nat_gateways import NatGateway
from moto.ec2.models.route_tables import Route, RouteTable
from moto.ec2.models.vpn_gateway import VPCGatewayAttachment
from moto.elbv2.models import FakeLoadBalancer, elbv2_backends
from moto.server import main

_execute = CloudFormationBackend.execute_change_set

def execute_change_set(self, change_set_name, stack_name=None):
    _execute(self, change_set_name, stack_name)
    change_set = self.describe_change_set(change_set_name)
    stack = self.stacks[change_set.stack_id]
    stack._parse_template()
    stack.output_map = stack._create_output_map()
    stack.parameters = change_set.parameters

CloudFormationBackend.execute_change_set = execute_change_set

def ec2(account, region):
    return ec2_backends[account][region]

def delete_route_table(self, account, region):
    for association_id in list(self._associations):
        ec2(account, region).disassociate_route_table(association_id)
    ec2(account, region).delete_route_table(self.id)

RouteTable.delete = delete_route_table
def delete_route(self, account, region):
    if self.route_table.id in ec2(account, region).route_tables:  # else gone with its table
        ec2(account, region).delete_route(self.route_table.id, self.destination_cidr_block)

Route.delete = delete_route
InternetGateway.delete = lambda self, account, region: ec2(
    account, region
).delete_internet_gateway(self.id)
VPCGatewayAttachment.delete = lambda self, account, region: ec2(
    account, region
).detach_internet_gateway(self.gateway_id, self.vpc_id)
NatGateway.delete = lambda self, account, region: ec2(account, region).delete_nat_gateway(self.id)
ElasticAddress.delete = lambda self, account, region: ec2(account, region).release_address(
    allocation_id=self.allocation_id
)
RestAPI.delete = lambda self, account, region: apigateway_backends[account][
    region
].delete_rest_api(self.id)

def create_load_balancer(cls, resource_name, cloudformation_json, account_id, region_name, **_):
    properties = cloudformation_json["Properties"]
    return elbv2_backends[account_id][region_name].create_load_balancer(
        properties.get("Name", resource_name),
        properties.get("SecurityGroups"),
        properties.get("Subnets"),
        scheme=properties.get("Scheme", "internet-facing"),
        loadbalancer_type=properties.get("Type"),
    )

FakeLoadBalancer.create_from_cloudformation_json = classmethod(create_load_balancer)
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server(MOTO_SERVER, tmp_path_factory.mktemp("moto")) as url:
        yield url


# -- Databricks: a loopback workspace that accepts only what the SDK's request types hold ----
@dataclass
class FakeWorkspace:
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)
    profiles: list[str] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


def _check(body: dict[str, Any], parsed: dict[str, Any], what: str, ws: FakeWorkspace) -> bool:
    if parsed != body:
        ws.rejected.append(f"{what}: {body} is not a valid request (parsed {parsed})")
        return False
    return True


def _handler(ws: FakeWorkspace) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query)
            ws.calls.append(("GET", url.path))
            if url.path == "/api/2.2/jobs/list":
                name = query.get("name", [""])[0]
                found = [
                    {"job_id": job_id, "settings": {"name": s["name"]}}
                    for job_id, s in ws.jobs.items()
                    if not name or s["name"] == name
                ]
                self._answer(200, {"jobs": found} if found else {})
            elif url.path == "/api/2.2/jobs/get":
                job_id = int(query["job_id"][0])
                # the service adds defaults of its own: the deploy must not see them as changes
                settings = {"format": "MULTI_TASK", "timeout_seconds": 0, **ws.jobs[job_id]}
                self._answer(200, {"job_id": job_id, "settings": settings})
            elif url.path == "/api/2.0/instance-profiles/list":
                self._answer(
                    200, {"instance_profiles": [{"instance_profile_arn": a} for a in ws.profiles]}
                )
            else:
                self._answer(404, {"error_code": "NOT_FOUND", "message": url.path})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
            path = urlparse(self.path).path
            ws.calls.append(("POST", path))
            if path == "/api/2.2/jobs/create":
                if not _check(body, JobSettings.from_dict(body).as_dict(), "create", ws):
                    return self._answer(400, {"error_code": "INVALID_PARAMETER_VALUE"})
                job_id = len(ws.jobs) + 101
                ws.jobs[job_id] = body
                self._answer(200, {"job_id": job_id})
            elif path == "/api/2.2/jobs/reset":
                settings = body["new_settings"]
                if set(body) != {"job_id", "new_settings"} or not _check(
                    settings, JobSettings.from_dict(settings).as_dict(), "reset", ws
                ):
                    return self._answer(400, {"error_code": "INVALID_PARAMETER_VALUE"})
                ws.jobs[int(body["job_id"])] = settings
                self._answer(200, {})
            elif path == "/api/2.2/jobs/delete":
                ws.jobs.pop(int(body["job_id"]))
                self._answer(200, {})
            elif path == "/api/2.0/instance-profiles/add":
                if not _check(body, InstanceProfile.from_dict(body).as_dict(), "profile", ws):
                    return self._answer(400, {"error_code": "INVALID_PARAMETER_VALUE"})
                ws.profiles.append(body["instance_profile_arn"])
                self._answer(200, {})
            else:
                self._answer(404, {"error_code": "NOT_FOUND", "message": path})

    return Handler


@pytest.fixture(scope="module")
def workspace() -> Iterator[tuple[FakeWorkspace, str]]:
    state = FakeWorkspace()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


# -- AWS: moto, plus the one MSK call moto lacks, validated by botocore -----------------------
class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


@dataclass
class StageAws(Aws):
    """moto for everything moto implements; kafka:GetBootstrapBrokers answered by a hook."""

    bootstrap_requests: list[str] = field(default_factory=list)

    def client(self, service: str) -> Any:
        client = super().client(service)
        if service == "kafka":
            client.meta.events.register(
                "before-send.kafka.GetBootstrapBrokers", self._bootstrap_brokers
            )
        return client

    def _bootstrap_brokers(self, request: Any, **_: Any) -> AWSResponse:
        # botocore validated the parameters and built the REST request from the service model
        self.bootstrap_requests.append(request.url)
        body = json.dumps({"bootstrapBrokerStringSaslIam": BOOTSTRAP}).encode()
        return AWSResponse(request.url, 200, {"Content-Type": "application/json"}, _Body(body))


@pytest.fixture(scope="module")
def env() -> Iterator[None]:
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith(("AWS_", "PINPIPE_", "DATABRICKS_")):
            del os.environ[key]
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "UV_OFFLINE": "1",  # the wheel builds from uv's cache: no network
        }
    )
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def mwaa_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundle = tmp_path_factory.mktemp("mwaa")
    (bundle / "dags").mkdir()
    (bundle / "dags" / "pinpipe_daily.py").write_text("# the DAG of the MWAA packaging target\n")
    (bundle / "requirements.txt").write_text("apache-airflow-providers-databricks\n")
    return bundle


def make_deployer(
    moto_url: str, workspace_url: str, bundle: Path, console: Console, **options: Any
) -> Deployer:
    config = StageConfig(
        stage="ci",
        region=REGION,
        endpoint_url=moto_url,
        msk_cluster_arn=CLUSTER_ARN,
        skip=MOTO_SKIPS,
        mwaa_bundle=bundle,
        waiter_delay_s=1,
        **options,
    )
    plain, account = connect(config)
    aws = StageAws(plain.session, moto_url)
    deployer = Deployer(
        config,
        aws,
        StageState(config, account),
        console,
        workspace=lambda: WorkspaceClient(host=workspace_url, token="dapi-test-token"),
        has_docker=False,
    )
    deployer.refresh()
    return deployer


@dataclass
class Run:
    deployer: Deployer
    built: LocalArtifacts
    output: str


def deploy(moto_url: str, ws_url: str, bundle: Path, tmp: Path, apply: bool) -> Run:
    out = io.StringIO()
    deployer = make_deployer(moto_url, ws_url, bundle, Console(file=out, width=200))
    built = deployer.build(tmp)
    plan = deployer.plan(built)
    deployer.show(plan)
    if apply and plan.changes_anything:
        deployer.apply(plan, built)
    else:
        deployer.discard(plan)
    return Run(deployer, built, out.getvalue())


def live_stacks(moto_url: str) -> dict[str, str]:
    cf = boto3.client("cloudformation", endpoint_url=moto_url, region_name=REGION)
    return {
        s["StackName"]: s["StackStatus"]
        for s in cf.describe_stacks()["Stacks"]
        if s["StackStatus"] != "DELETE_COMPLETE"
    }


def client(moto_url: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=moto_url, region_name=REGION)  # type: ignore[call-overload]


# -- the stage's life ----------------------------------------------------------------------------
def test_every_stack_deployed_here_is_made_of_resources_moto_implements() -> None:
    from moto.cloudformation.parsing import get_model_map

    implemented = set(get_model_map())
    config = StageConfig(stage="ci", msk_cluster_arn=CLUSTER_ARN, skip=MOTO_SKIPS)
    for component in config.components:
        types = {r["Type"] for r in stacks.template(component)["Resources"].values()}
        assert types <= implemented, f"{component}: moto lacks {types - implemented}"
    for component in ("msk", "gateway", "connect", "mwaa", "alarms"):
        types = {r["Type"] for r in stacks.template(component)["Resources"].values()}
        assert types - implemented, f"{component} could now be deployed to moto too"


def test_plan_of_a_new_stage_lists_everything_and_creates_nothing(
    moto_url: str,
    env: None,
    workspace: tuple[FakeWorkspace, str],
    mwaa_bundle: Path,
    tmp_path: Path,
) -> None:
    run = deploy(moto_url, workspace[1], mwaa_bundle, tmp_path, apply=False)
    assert "pinpipe-ci-network" in run.output and "create" in run.output
    assert "create LakeBucket (AWS::S3::Bucket)" in run.output
    # stacks whose inputs come from other stacks are shown from their templates
    assert "inputs known after apply" in run.output
    assert "create ApiInstance (AWS::EC2::Instance)" in run.output
    assert live_stacks(moto_url) == {}, "a plan must leave nothing behind"
    assert client(moto_url, "s3").list_buckets()["Buckets"] == []
    assert workspace[0].jobs == {}


def test_apply_creates_the_stage(
    moto_url: str,
    env: None,
    workspace: tuple[FakeWorkspace, str],
    mwaa_bundle: Path,
    tmp_path: Path,
) -> None:
    run = deploy(moto_url, workspace[1], mwaa_bundle, tmp_path, apply=True)
    state = run.deployer.state
    assert live_stacks(moto_url) == {
        f"pinpipe-ci-{c}": "CREATE_COMPLETE"
        for c in ("network", "storage", "streams", "iam", "api")
    }
    assert "no Docker engine here" in run.output  # the image push is skipped, and says so
    # what `docker push` does where Docker runs: the image lands in the stage's repository
    client(moto_url, "ecr").put_image(
        repositoryName=state.output("storage", "RepositoryName"),
        imageManifest=json.dumps(MANIFEST),
        imageManifestMediaType=MANIFEST["mediaType"],
        imageTag=run.built.image_tag,
    )

    # storage: the lake bucket (encrypted) and the artifacts bucket with the uploads
    s3 = client(moto_url, "s3")
    lake, artifacts_bucket = state.lake_bucket, state.artifacts_bucket
    assert lake == f"pinpipe-ci-lake-{state.account}-{REGION}"
    rule = s3.get_bucket_encryption(Bucket=lake)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    plugin = s3.get_object(Bucket=artifacts_bucket, Key=state.artifacts.plugin_key)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(plugin)) as archive:
        assert "pinpipe-s3-sink/pinpipe-s3-sink-1.0.0.jar" in archive.namelist()
    wheel = s3.get_object(Bucket=artifacts_bucket, Key=state.artifacts.wheel_key)["Body"].read()
    assert wheel == run.built.wheel.read_bytes()

    # streams: data contract §2.5 names, from the streams stack
    kinesis = client(moto_url, "kinesis")
    for table in ("pin", "geo", "user"):
        summary = kinesis.describe_stream_summary(StreamName=f"streaming-pinpipe-{table}")
        assert summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"

    # iam: each role scoped to the stage's resources
    iam = client(moto_url, "iam")
    api_policy = iam.get_role_policy(RoleName="pinpipe-ci-api", PolicyName="api")
    statements = policy_document(api_policy["PolicyDocument"])["Statement"]
    puts = next(s for s in statements if s["Sid"] == "PutRecordsOnTheStagesStreams")
    assert sorted(puts["Resource"]) == sorted(state.output("streams", "StreamArns").split(","))
    kafka_topics = next(s for s in statements if s["Sid"] == "ProduceToThePrefixTopics")
    assert kafka_topics["Resource"].endswith(":topic/pinpipe-shared/*/pinpipe.*")
    profile = iam.get_instance_profile(InstanceProfileName="pinpipe-ci-databricks")
    assert profile["InstanceProfile"]["Roles"][0]["RoleName"] == "pinpipe-ci-databricks"

    # api: the instance runs the image with the environment built from the stage's outputs
    ec2 = client(moto_url, "ec2")
    instance_id = state.output("api", "InstanceId")
    user_data = base64.b64decode(
        ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")["UserData"][
            "Value"
        ]
    ).decode()
    encoded_env = user_data.split("echo '", 1)[1].split("'", 1)[0]
    api_env = dict(
        line.split("=", 1) for line in base64.b64decode(encoded_env).decode().splitlines()
    )
    assert api_env == components.api_env(state)
    settings = components.settings_from_env(api_env)
    assert settings.lake_bucket == lake
    assert settings.kafka_bootstrap_servers == BOOTSTRAP
    assert settings.streams == {
        "pin": state.output("streams", "PinStreamName"),
        "geo": state.output("streams", "GeoStreamName"),
        "user": state.output("streams", "UserStreamName"),
    }
    assert settings.aws_endpoint_url is None and settings.aws_access_key_id is None
    assert callable(settings.kafka_client_config()["oauth_cb"])
    assert f"{state.output('storage', 'RepositoryUri')}:{run.built.image_tag}" in user_data
    # the instance serves the internal load balancer only (the gateway's VPC link)
    assert "-p 127.0.0.1:8000:8000" in user_data and "--network host" not in user_data
    assert "role_arn = " + state.output("iam", "ApiRoleArn") in user_data
    elb = client(moto_url, "elbv2")
    (balancer,) = elb.describe_load_balancers(
        LoadBalancerArns=[state.output("api", "LoadBalancerArn")]
    )["LoadBalancers"]
    assert (balancer["Type"], balancer["Scheme"]) == ("network", "internal")
    assert f"DNS:{balancer['DNSName']}" in user_data  # the host's certificate names it
    (group,) = elb.describe_target_groups(LoadBalancerArn=balancer["LoadBalancerArn"])[
        "TargetGroups"
    ]
    # (moto's CloudFormation does not register a target group's Targets; AWS does)
    assert (group["Protocol"], group["Port"], group["HealthCheckProtocol"]) == (
        "TCP",
        8443,
        "HTTPS",
    )
    assert aws_bootstrap_lookups(run) == [CLUSTER_ARN]

    # Databricks: both jobs from the wheel, with the stage's settings; MWAA's connection secret
    ws = workspace[0]
    assert ws.rejected == []
    by_name = {s["name"]: s for s in ws.jobs.values()}
    batch = by_name["pinpipe-ci-batch"]
    cluster = batch["job_clusters"][0]["new_cluster"]
    assert cluster["spark_env_vars"] == components.databricks_env(state)
    assert cluster["aws_attributes"]["instance_profile_arn"] == state.output(
        "iam", "DatabricksInstanceProfileArn"
    )
    task = batch["tasks"][0]
    assert task["libraries"] == [{"whl": state.wheel_uri}]
    assert task["python_wheel_task"]["parameters"][:3] == ["batch", "--input", f"s3a://{lake}"]
    assert by_name["pinpipe-ci-stream"]["continuous"] == {"pause_status": "UNPAUSED"}
    assert ws.profiles == [state.output("iam", "DatabricksInstanceProfileArn")]
    secret = client(moto_url, "secretsmanager").get_secret_value(
        SecretId="pinpipe/ci/airflow/connections/databricks_default"
    )
    assert json.loads(secret["SecretString"])["host"] == workspace[1]


def policy_document(document: Any) -> dict[str, Any]:
    """moto's CloudFormation stores an inline policy as the repr of a dict; AWS as JSON."""
    if isinstance(document, dict):
        return document
    try:
        parsed: dict[str, Any] = json.loads(document)
    except json.JSONDecodeError:
        parsed = ast.literal_eval(document)
    return parsed


def aws_bootstrap_lookups(run: Run) -> list[str]:
    aws = run.deployer.aws
    assert isinstance(aws, StageAws)
    return sorted(
        {unquote(url.split("/clusters/", 1)[1].split("/")[0]) for url in aws.bootstrap_requests}
    )


def test_redeploying_an_unchanged_stage_changes_nothing(
    moto_url: str,
    env: None,
    workspace: tuple[FakeWorkspace, str],
    mwaa_bundle: Path,
    tmp_path: Path,
) -> None:
    before = live_stacks(moto_url)
    objects = client(moto_url, "s3").list_object_versions(
        Bucket=f"pinpipe-ci-artifacts-123456789012-{REGION}"
    )["Versions"]
    calls = len(workspace[0].calls)
    run = deploy(moto_url, workspace[1], mwaa_bundle, tmp_path, apply=True)
    assert "no changes: the stage is up to date" in run.output, run.output
    assert live_stacks(moto_url) == before
    after = client(moto_url, "s3").list_object_versions(
        Bucket=f"pinpipe-ci-artifacts-123456789012-{REGION}"
    )["Versions"]
    assert len(after) == len(objects), "nothing re-uploaded"
    posted = [path for method, path in workspace[0].calls[calls:] if method == "POST"]
    assert posted == [], f"no Databricks change expected, got {posted}"


def test_a_changed_input_is_planned_as_an_update_then_applied(
    moto_url: str,
    env: None,
    workspace: tuple[FakeWorkspace, str],
    mwaa_bundle: Path,
    tmp_path: Path,
) -> None:
    out = io.StringIO()
    deployer = make_deployer(
        moto_url, workspace[1], mwaa_bundle, Console(file=out, width=200), kinesis_shards=2
    )
    built = deployer.build(tmp_path)
    plan = deployer.plan(built)
    deployer.show(plan)
    by_stack = {p.component: p for p in plan.stacks}
    # (moto's change sets do not list resources changed through parameters; AWS's do)
    assert by_stack["streams"].action == "update" and by_stack["streams"].change_set_id
    assert {p.action for c, p in by_stack.items() if c != "streams"} == {"none"}
    deployer.apply(plan, built)
    kinesis = client(moto_url, "kinesis")
    for table in ("pin", "geo", "user"):
        summary = kinesis.describe_stream_summary(StreamName=f"streaming-pinpipe-{table}")
        assert summary["StreamDescriptionSummary"]["OpenShardCount"] == 2
    assert live_stacks(moto_url)["pinpipe-ci-streams"] == "UPDATE_COMPLETE"
    assert live_stacks(moto_url)["pinpipe-ci-api"] == "CREATE_COMPLETE"


def test_missing_profile_and_wrong_region_stop_with_one_line(env: None) -> None:
    with pytest.raises(DeployError) as missing:
        connect(StageConfig(stage="ci", profile="no-such-profile-here", region=REGION))
    assert "no-such-profile-here" in str(missing.value) and "\n" not in str(missing.value)
    with pytest.raises(DeployError) as wrong:
        connect(StageConfig(stage="ci", region="us-middle-7"))
    assert str(wrong.value) == "'us-middle-7' is not an AWS region (e.g. us-east-1, eu-west-1)"


def test_cli_reports_a_wrong_region_in_one_line(env: None) -> None:
    from typer.testing import CliRunner

    from pipeline.cli import app

    result = CliRunner().invoke(app, ["deploy", "plan", "--region", "eu-nowhere-1"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "deploy: 'eu-nowhere-1' is not an AWS region (e.g. us-east-1, eu-west-1)"
    ]
    assert result.stdout == ""


def test_destroy_removes_the_stage_and_keeps_the_lake(
    moto_url: str,
    env: None,
    workspace: tuple[FakeWorkspace, str],
    mwaa_bundle: Path,
) -> None:
    deployer = make_deployer(moto_url, workspace[1], mwaa_bundle, Console(file=io.StringIO()))
    lake = deployer.state.lake_bucket
    client(moto_url, "s3").put_object(Bucket=lake, Key="lake/gold/x.parquet", Body=b"data")
    removed = deployer.destroy(delete_lake=False)
    assert live_stacks(moto_url) == {}
    assert "stack pinpipe-ci-network" in removed and "stack pinpipe-ci-api" in removed
    assert workspace[0].jobs == {}
    buckets = {b["Name"] for b in client(moto_url, "s3").list_buckets()["Buckets"]}
    assert buckets == {lake}, "the artifacts bucket goes, the lake stays"
    assert client(moto_url, "kinesis").list_streams()["StreamNames"] == []
    with pytest.raises(client(moto_url, "secretsmanager").exceptions.ResourceNotFoundException):
        client(moto_url, "secretsmanager").get_secret_value(
            SecretId="pinpipe/ci/airflow/connections/databricks_default"
        )
    # asked to, the lake goes too (and a second destroy finds nothing)
    again = make_deployer(moto_url, workspace[1], mwaa_bundle, Console(file=io.StringIO()))
    assert again.destroy(delete_lake=False) == []
    deployer.destroy(delete_lake=True)
    assert client(moto_url, "s3").list_buckets()["Buckets"] == []


def test_stack_status_of_a_missing_stack_is_none(moto_url: str, env: None) -> None:
    assert cfn.stack_status(client(moto_url, "cloudformation"), "pinpipe-ci-nothing") is None


def test_a_destroyed_gateways_api_key_name_is_free_again(moto_url: str, env: None) -> None:
    from pipeline.deploy.run import purge_secret

    config = StageConfig(stage="ci", region=REGION, endpoint_url=moto_url)
    aws, _ = connect(config)
    sm = client(moto_url, "secretsmanager")
    sm.create_secret(Name=config.api_key_secret, SecretString="k" * 40)
    # what deleting the gateway stack may leave: the secret in its recovery window
    sm.delete_secret(SecretId=config.api_key_secret, RecoveryWindowInDays=7)
    # (AWS answers InvalidRequestException, moto ResourceExistsException)
    taken = (sm.exceptions.InvalidRequestException, sm.exceptions.ResourceExistsException)
    with pytest.raises(taken):
        sm.create_secret(Name=config.api_key_secret, SecretString="k" * 40)
    purge_secret(aws, config.api_key_secret)
    purge_secret(aws, config.api_key_secret)  # nothing left: no error
    sm.create_secret(Name=config.api_key_secret, SecretString="n" * 40)
    sm.delete_secret(SecretId=config.api_key_secret, ForceDeleteWithoutRecovery=True)
