"""The S3 and Kinesis servers' configuration: endpoints per service, local and compose in step."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

from pipeline.config.environment import settings_environment
from pipeline.config.settings import AwsSettings, DockerSettings, LocalSettings
from pipeline.stack import kinesis_keeper
from pipeline.stack.components import core_components
from pipeline.stack.servers import kinesis_environment, s3proxy_properties
from tests.support.dockerfiles import ROOT, parse_dockerfile


def _properties(text: str) -> dict[str, str]:
    pairs = (line.partition("=") for line in text.splitlines() if line and line[0] != "#")
    return {key: value for key, _, value in pairs}


def test_each_service_has_its_own_endpoint_following_its_port(tmp_path: Path) -> None:
    settings = LocalSettings(run_dir=tmp_path, s3_port=14566, kinesis_port=14568)
    assert settings.endpoint_url("s3") == "http://127.0.0.1:14566"
    assert settings.endpoint_url("kinesis") == "http://127.0.0.1:14568"
    assert settings.boto3_kwargs("s3")["endpoint_url"] == "http://127.0.0.1:14566"
    assert settings.boto3_kwargs("kinesis")["endpoint_url"] == "http://127.0.0.1:14568"
    docker = DockerSettings()
    assert (docker.endpoint_url("s3"), docker.endpoint_url("kinesis")) == (
        "http://s3:4566",
        "http://kinesis:4568",
    )
    aws = AwsSettings()
    assert aws.endpoint_url("s3") is None and "endpoint_url" not in aws.boto3_kwargs("kinesis")


def test_endpoints_follow_the_sdk_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_ENDPOINT_URL serves every service; AWS_ENDPOINT_URL_<SERVICE> wins for its own."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localstack:4566")
    for settings_class in (LocalSettings, DockerSettings):
        one = settings_class()
        assert one.endpoint_url("s3") == one.endpoint_url("kinesis") == "http://localstack:4566"
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", "http://kinesis.example:9000")
    for settings_class in (LocalSettings, DockerSettings):
        both = settings_class()
        assert both.endpoint_url("s3") == "http://localstack:4566"
        assert both.endpoint_url("kinesis") == "http://kinesis.example:9000"


def test_workloads_get_each_servers_endpoint_under_the_sdk_names(tmp_path: Path) -> None:
    environment = settings_environment(LocalSettings(run_dir=tmp_path, kinesis_port=24568))
    assert environment["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:4566"
    assert environment["AWS_ENDPOINT_URL_KINESIS"] == "http://127.0.0.1:24568"


def test_local_servers_keep_their_data_in_the_run_folder(tmp_path: Path) -> None:
    settings = LocalSettings(run_dir=tmp_path, s3_port=24566, kinesis_port=24568)
    components = {component.name: component for component in core_components(settings)}
    assert list(components)[:2] == ["s3", "kinesis"], "storage starts first"
    s3, kinesis = components["s3"], components["kinesis"]
    assert s3.ports == [24566] and kinesis.ports == [24568, settings.kinesis_tls_port]
    conf = Path(s3.command[s3.command.index("--properties") + 1])
    s3proxy = _properties(conf.read_text())
    assert s3proxy["jclouds.filesystem.basedir"] == str(tmp_path / "data" / "s3")
    assert s3proxy["s3proxy.endpoint"] == "http://127.0.0.1:24566"
    assert kinesis.environment["PERSIST_PATH"] == str(tmp_path / "data" / "kinesis")
    assert kinesis.environment["SHOULD_PERSIST_DATA"] == "true"
    assert Path(kinesis.command[-1]).is_file(), "kinesis-mock missing: run `make setup`"


def test_local_and_compose_kinesis_run_through_one_keeper(tmp_path: Path) -> None:
    """One liveness probe and one state keeper for both targets, each given time to stop
    kinesis-mock the orderly way."""
    settings = LocalSettings(run_dir=tmp_path)
    kinesis = {c.name: c for c in core_components(settings)}["kinesis"]
    assert kinesis.command[1] == kinesis_keeper.__file__
    # supervisord signals the keeper alone: kinesis-mock stops only after the copy is kept
    assert not kinesis.stop_as_group
    assert kinesis.stop_timeout_s >= kinesis_keeper.stop_budget_s()
    dockerfile = parse_dockerfile(ROOT / "images/kinesis/Dockerfile")
    stage = dockerfile.stage("kinesis")
    copies = {
        parts[1]: parts[0]
        for parts in (args.split() for args in stage.all("COPY"))
        if len(parts) == 2
    }
    assert json.loads(stage.all("CMD")[-1])[:2] == ["python3", "/opt/pinpipe/kinesis_keeper.py"]
    assert copies["/opt/pinpipe/kinesis_keeper.py"] == "pipeline/stack/kinesis_keeper.py"
    assert copies["/opt/pinpipe/kinesis_state.py"] == "pipeline/stack/kinesis_state.py"
    compose = yaml.safe_load((ROOT / "compose/docker-compose.yml").read_text())
    grace = compose["services"]["kinesis"]["stop_grace_period"]
    assert grace.endswith("s") and float(grace[:-1]) >= kinesis_keeper.stop_budget_s()


def test_compose_s3proxy_config_is_the_local_one_on_all_interfaces() -> None:
    ours = _properties((ROOT / "docker/s3proxy/s3proxy.properties").read_text())
    assert ours == _properties(s3proxy_properties("0.0.0.0", 4566, "/var/lib/s3proxy/data"))


def test_compose_kinesis_image_is_configured_as_the_local_server() -> None:
    dockerfile = parse_dockerfile(ROOT / "images/kinesis/Dockerfile")
    stage = dockerfile.stage("kinesis")
    image_env: dict[str, str] = {}
    for current in dockerfile.chain(stage):
        for args in current.all("ENV"):
            image_env |= dict(pair.partition("=")[::2] for pair in shlex.split(args))
    settings = DockerSettings(kinesis_port=4568, kinesis_tls_port=4569)
    local = kinesis_environment(settings, "/var/lib/kinesis/data")
    # the certificate's path and the default region differ by layout only
    for key in ("KINESIS_MOCK_CERT_PATH", "AWS_REGION"):
        local.pop(key)
    assert {key: image_env.get(key) for key in local} == local
    assert image_env["KINESIS_MOCK_CERT_PATH"] == "/opt/kinesis-mock/server.json"


def test_compose_servers_keep_their_data_in_named_volumes() -> None:
    compose = yaml.safe_load((ROOT / "compose/docker-compose.yml").read_text())
    services = compose["services"]
    assert "s3-data:/var/lib/s3proxy/data" in services["s3"]["volumes"]
    assert "kinesis-data:/var/lib/kinesis/data" in services["kinesis"]["volumes"]
    for name in ("s3", "kinesis"):
        assert services[name]["restart"] == "unless-stopped"
        assert "healthcheck" in services[name]
