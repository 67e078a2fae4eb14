"""What each component gets on aws: configuration only, from the stage's outputs; MSK IAM auth;
artifacts named by content; the image push at the request level (ECR in moto, docker recorded)."""

from __future__ import annotations

import base64
import io
import json
import os
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
from moto import mock_aws

from pipeline.config import LocalSettings
from pipeline.config.settings import AwsSettings
from pipeline.deploy import artifacts, components
from pipeline.deploy.errors import DeployError
from pipeline.deploy.stage import StageConfig, StageState

REGION = "eu-west-1"


@pytest.fixture
def state() -> StageState:
    config = StageConfig(stage="dev", region=REGION, topic_prefix="pp")
    stage = StageState(config, account="123456789012")
    stage.outputs["storage"] = {
        "LakeBucketName": "pinpipe-dev-lake-123456789012-eu-west-1",
        "ArtifactsBucketName": "pinpipe-dev-artifacts-123456789012-eu-west-1",
    }
    stage.bootstrap_servers = "b-1.x.kafka.eu-west-1.amazonaws.com:9098,b-2.x:9098"
    stage.artifacts.wheel_key = "wheels/abc/pinpipe-0.1.0-py3-none-any.whl"
    stage.artifacts.code_prefix = "code/0123456789abcdef"
    return stage


@pytest.fixture
def clean_env() -> Iterator[None]:
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith(("PINPIPE_", "AWS_")):
            del os.environ[key]
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_every_component_reads_the_stage_from_the_same_settings(
    state: StageState, clean_env: None
) -> None:
    for env in (
        components.api_env(state),
        components.connect_env(state),
        components.databricks_env(state),
        components.mwaa_env(state),
    ):
        settings = components.settings_from_env(env)
        assert isinstance(settings, AwsSettings)
        assert settings.lake_bucket == state.lake_bucket
        assert settings.topics == {t: f"pp.{t}" for t in ("pin", "geo", "user")}
        assert settings.streams["geo"] == "streaming-pp-geo"
        assert settings.aws_region == REGION
        # the standard credential chain, real endpoints: nothing from the local defaults
        assert settings.aws_endpoint_url is None
        assert settings.aws_access_key_id is None and settings.aws_secret_access_key is None
    api = components.settings_from_env(components.api_env(state))
    assert api.kafka_bootstrap_servers == state.bootstrap_servers
    assert api.kafka_security_protocol == "SASL_SSL" and api.kafka_sasl_mechanism == "OAUTHBEARER"
    mwaa = components.settings_from_env(components.mwaa_env(state))
    assert mwaa.batch_runner == "databricks"
    assert mwaa.databricks_wheel == state.wheel_uri


def test_settings_from_env_leaves_the_process_environment_alone(
    state: StageState, clean_env: None
) -> None:
    os.environ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:4566"
    os.environ["PINPIPE_LAKE_BUCKET"] = "local-lake"
    settings = components.settings_from_env(components.api_env(state))
    assert settings.aws_endpoint_url is None and settings.lake_bucket == state.lake_bucket
    assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert os.environ["PINPIPE_LAKE_BUCKET"] == "local-lake"
    assert "PINPIPE_TARGET" not in os.environ
    with pytest.raises(ValueError):
        components.settings_from_env({"PINPIPE_TARGET": "local"})


def test_components_wait_for_the_stage(clean_env: None) -> None:
    empty = StageState(StageConfig(stage="dev", region=REGION))
    with pytest.raises(KeyError):
        components.api_env(empty)
    empty.outputs["storage"] = {"LakeBucketName": "b"}
    with pytest.raises(KeyError):  # no cluster yet
        components.api_env(empty)


def test_mwaa_startup_script_exports_what_the_dag_reads(state: StageState, clean_env: None) -> None:
    state.config.databricks_cluster_id = "0101-123456-abcdefgh"
    script = components.startup_script(state)
    exported = dict(
        line.removeprefix("export ").split("=", 1)
        for line in script.splitlines()
        if line.startswith("export ")
    )
    assert exported["PINPIPE_TARGET"] == "aws"
    assert exported["PINPIPE_LAKE_BUCKET"] == state.lake_bucket
    assert exported["PINPIPE_BATCH_RUNNER"] == "databricks"
    assert exported["PINPIPE_DATABRICKS_CLUSTER_ID"] == "0101-123456-abcdefgh"
    assert exported["PINPIPE_DATABRICKS_CODE_ROOT"] == (
        "s3://pinpipe-dev-artifacts-123456789012-eu-west-1/code/0123456789abcdef"
    )
    assert exported["PINPIPE_DATABRICKS_WHEEL"] == state.wheel_uri
    assert "SECRET" not in script and "TOKEN" not in script


def test_env_file_lines() -> None:
    assert components.env_file({"B": "2", "A": "1"}) == "A=1\nB=2\n"


def test_job_code_root_holds_the_job_scripts(tmp_path: Path) -> None:
    code = artifacts.job_code()
    assert "pipeline/transform/job.py" in code and "pipeline/stream/job.py" in code
    assert artifacts.code_prefix(code) == artifacts.code_prefix(dict(code))
    changed = {**code, "pipeline/transform/job.py": b"# changed"}
    assert artifacts.code_prefix(changed) != artifacts.code_prefix(code)


# -- MSK IAM auth: one place, chosen by configuration ------------------------------------------
def test_aws_kafka_clients_sign_msk_iam_tokens(clean_env: None) -> None:
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLEEXAMPLE12", "AWS_SECRET_ACCESS_KEY": "secret"}
    )
    settings = AwsSettings(_env_file=None, aws_region=REGION)  # type: ignore[call-arg]
    config = settings.kafka_client_config()
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "OAUTHBEARER"
    token, expiry = config["oauth_cb"]("")
    url = urlparse(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    query = parse_qs(url.query)
    assert url.hostname == f"kafka.{REGION}.amazonaws.com"
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Credential"][0].startswith("AKIAEXAMPLEEXAMPLE12/")
    assert 1e9 < expiry < 1e11, "seconds since the epoch, not milliseconds"


def test_local_kafka_clients_stay_plaintext(clean_env: None) -> None:
    config = LocalSettings(_env_file=None).kafka_client_config()  # type: ignore[call-arg]
    assert set(config) == {"bootstrap.servers"}


# -- artifacts ------------------------------------------------------------------------------------
def test_plugin_zip_is_a_function_of_the_jars(tmp_path: Path) -> None:
    (tmp_path / "b.jar").write_bytes(b"bbb")
    (tmp_path / "a.jar").write_bytes(b"aaa")
    first = artifacts.plugin_zip(tmp_path)
    assert artifacts.plugin_zip(tmp_path) == first
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert archive.namelist() == ["pinpipe-s3-sink/a.jar", "pinpipe-s3-sink/b.jar"]
    (tmp_path / "a.jar").write_bytes(b"AAA")
    assert artifacts.plugin_key(artifacts.plugin_zip(tmp_path)) != artifacts.plugin_key(first)
    with pytest.raises(DeployError, match="make setup"):
        artifacts.plugin_zip(tmp_path / "missing")


def test_image_tag_follows_the_image_inputs(tmp_path: Path) -> None:
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "a.py").write_text("x = 1\n")
    tag = artifacts.image_tag(tmp_path)
    assert artifacts.image_tag(tmp_path) == tag
    (tmp_path / "pipeline" / "a.py").write_text("x = 2\n")
    assert artifacts.image_tag(tmp_path) != tag


def test_mwaa_bundle_needs_dags_and_requirements(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="MWAA packaging target"):
        artifacts.mwaa_bundle_files(tmp_path)
    (tmp_path / "dags" / "sub").mkdir(parents=True)
    (tmp_path / "dags" / "sub" / "d.py").write_text("")
    (tmp_path / "requirements.txt").write_text("")
    assert set(artifacts.mwaa_bundle_files(tmp_path)) == {"requirements.txt", "dags/sub/d.py"}


@mock_aws
def test_uploads_skip_unchanged_content_and_sync_dags(tmp_path: Path) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="art")
    s3.put_bucket_versioning(Bucket="art", VersioningConfiguration={"Status": "Enabled"})
    version, uploaded = artifacts.upload(s3, "art", "k", b"one")
    assert uploaded and version
    assert artifacts.upload(s3, "art", "k", b"one") == (version, False)
    new_version, uploaded = artifacts.upload(s3, "art", "k", b"two")
    assert uploaded and new_version != version

    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "a.py").write_text("a")
    (tmp_path / "dags" / "b.py").write_text("b")
    (tmp_path / "requirements.txt").write_text("r")
    first = artifacts.upload_mwaa(s3, "art", tmp_path, "#!/bin/sh\n")
    assert sorted(first.uploaded) == [
        "mwaa/dags/a.py",
        "mwaa/dags/b.py",
        "mwaa/requirements.txt",
        "mwaa/startup.sh",
    ]
    (tmp_path / "dags" / "b.py").unlink()
    second = artifacts.upload_mwaa(s3, "art", tmp_path, "#!/bin/sh\n")
    assert second.uploaded == [] and second.deleted == ["mwaa/dags/b.py"]
    assert second.requirements_version == first.requirements_version


@mock_aws
def test_image_push_logs_in_builds_and_pushes_only_a_new_tag() -> None:
    ecr = boto3.client("ecr", region_name="us-east-1")
    repository = ecr.create_repository(repositoryName="pinpipe-dev/api")["repository"]
    image_uri = f"{repository['repositoryUri']}:src-0123"
    commands: list[tuple[list[str], bytes | None]] = []

    def runner(command: Sequence[str], stdin: bytes | None) -> int:
        commands.append((list(command), stdin))
        return 0

    message = artifacts.push_image(ecr, "pinpipe-dev/api", image_uri, runner, has_docker=True)
    assert message == f"image {image_uri} pushed"
    login, build, push = commands
    token = ecr.get_authorization_token()["authorizationData"][0]
    user, password = base64.b64decode(token["authorizationToken"]).decode().split(":", 1)
    registry = token["proxyEndpoint"].removeprefix("https://")
    assert login == (
        ["docker", "login", "--username", user, "--password-stdin", registry],
        password.encode(),
    )
    assert build[0] == [
        "docker",
        "build",
        "--platform",
        "linux/amd64",
        "--file",
        "images/pipeline/Dockerfile",
        "--target",
        "api",
        "--tag",
        image_uri,
        ".",
    ]
    assert push[0] == ["docker", "push", image_uri]

    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1,
            "digest": "sha256:" + "b" * 64,
        },
        "layers": [],
    }
    ecr.put_image(
        repositoryName="pinpipe-dev/api", imageManifest=json.dumps(manifest), imageTag="src-0123"
    )
    commands.clear()
    message = artifacts.push_image(ecr, "pinpipe-dev/api", image_uri, runner, has_docker=True)
    assert message == f"image {image_uri} already in ECR" and commands == []


@mock_aws
def test_image_push_without_docker_says_so_and_runs_nothing() -> None:
    ecr = boto3.client("ecr", region_name="us-east-1")
    ecr.create_repository(repositoryName="pinpipe-dev/api")
    ran: list[Sequence[str]] = []
    message = artifacts.push_image(
        ecr,
        "pinpipe-dev/api",
        "1.dkr.ecr/pinpipe-dev/api:t",
        lambda c, s: ran.append(c) or 0,
        has_docker=False,
    )
    assert message.startswith("no Docker engine here") and ran == []


def test_docker_is_available_only_when_the_engine_answers() -> None:
    assert not artifacts.docker_available(lambda command, stdin: 1)


def test_mwaa_without_a_databricks_cluster_stops_before_anything(tmp_path: Path) -> None:
    from pipeline.deploy.aws import Aws
    from pipeline.deploy.run import Deployer

    config = StageConfig(stage="dev", region=REGION)
    deployer = Deployer(config, Aws(boto3.Session(region_name=REGION)), StageState(config))
    with pytest.raises(DeployError, match="PINPIPE_DEPLOY_DATABRICKS_CLUSTER_ID"):
        deployer.build(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_stage_names_and_components() -> None:
    config = StageConfig(stage="prod", region=REGION)
    assert config.stack_name("iam") == "pinpipe-prod-iam"
    assert config.cluster_name == "pinpipe-prod" and "msk" in config.components
    existing = StageConfig(
        stage="prod",
        msk_cluster_arn="arn:aws:kafka:eu-west-1:123456789012:cluster/shared/0f1e-2",
        skip="mwaa",
    )
    assert existing.cluster_name == "shared"
    assert existing.components == (
        "network",
        "storage",
        "streams",
        "iam",
        "api",
        "gateway",
        "connect",
        "alarms",
    )
    # the gateway goes with the API
    assert "gateway" not in StageConfig(skip="api,alarms").components
    assert StageConfig(skip="gateway").components[5:] == ("api", "connect", "mwaa", "alarms")
    with pytest.raises(ValueError):
        StageConfig(stage="Prod_1")
    with pytest.raises(ValueError):
        StageConfig(skip="storage")


def test_the_dag_alerts_the_alarm_topic_and_the_jobs_name_tables_in_the_stage_catalog(
    state: StageState,
) -> None:
    state.config.table_catalog = "analytics"
    env = components.mwaa_env(state)
    assert (
        env["PINPIPE_ALERT_SNS_TOPIC_ARN"]
        == f"arn:aws:sns:{REGION}:{state.account}:pinpipe-dev-alarms"
    )
    assert components.settings_from_env(env).alert_sns_topic_arn.endswith(":pinpipe-dev-alarms")
    jobs = components.settings_from_env(components.databricks_env(state))
    assert jobs.table_catalog == "analytics"
    # a stage without the alarms stack has no topic to publish to
    state.config.skip = "alarms"
    assert "PINPIPE_ALERT_SNS_TOPIC_ARN" not in components.mwaa_env(state)
