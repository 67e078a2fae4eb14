"""The S3 and Kinesis servers' configuration: endpoints per service, local and compose in step."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

from pipeline.config.environment import settings_environment
from pipeline.config.settings import AwsSettings, DockerSettings, LocalSettings
from pipeline.stack.components import core_components
from pipeline.stack.servers import (
    kinesis_environment,
    kinesis_mock_state_left,
    s3proxy_properties,
)
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
    assert s3.ports == [24566] and kinesis.ports == [24568]
    conf = Path(s3.command[s3.command.index("--properties") + 1])
    s3proxy = _properties(conf.read_text())
    assert s3proxy["jclouds.filesystem.basedir"] == str(tmp_path / "data" / "s3")
    assert s3proxy["s3proxy.endpoint"] == "http://127.0.0.1:24566"
    assert kinesis.environment["KINESIS_DATA_DIR"] == str(tmp_path / "data" / "kinesis")
    assert kinesis.environment["KINESIS_HOST"] == "127.0.0.1", "loopback only on the local stack"
    assert Path(kinesis.command[-1]).is_file(), "kinesis-server.js missing: run `make setup`"


def test_local_and_compose_kinesis_run_one_launcher() -> None:
    """The local program and the compose image start the same kinesis-server.js."""
    installed = Path({c.name: c for c in core_components(LocalSettings())}["kinesis"].command[-1])
    assert installed.read_bytes() == (ROOT / "node/kinesis-server.js").read_bytes()
    stage = parse_dockerfile(ROOT / "images/kinesis/Dockerfile").stage("kinesis")
    copies = {
        parts[1]: parts[0]
        for parts in (args.split() for args in stage.all("COPY"))
        if len(parts) == 2
    }
    assert json.loads(stage.all("CMD")[-1]) == ["node", "/opt/kinesis/kinesis-server.js"]
    assert copies["/opt/kinesis/kinesis-server.js"] == "node/kinesis-server.js"


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
    settings = DockerSettings(kinesis_port=4568)
    local = kinesis_environment(settings, "/var/lib/kinesis/data")
    # the compose network reaches it by service name: every interface in the container
    assert image_env.pop("KINESIS_HOST") == "0.0.0.0" and local.pop("KINESIS_HOST") == "127.0.0.1"
    assert {key: image_env.get(key) for key in local} == local


def test_compose_servers_keep_their_data_in_named_volumes() -> None:
    compose = yaml.safe_load((ROOT / "compose/docker-compose.yml").read_text())
    services = compose["services"]
    assert "s3-data:/var/lib/s3proxy/data" in services["s3"]["volumes"]
    assert "kinesis-data:/var/lib/kinesis/data" in services["kinesis"]["volumes"]
    for name in ("s3", "kinesis"):
        assert services[name]["restart"] == "unless-stopped"
        assert "healthcheck" in services[name]


def test_a_run_folder_from_kinesis_mock_is_named_not_silently_emptied(tmp_path: Path) -> None:
    assert kinesis_mock_state_left(tmp_path) is None
    (tmp_path / "kinesis-data.json").write_text("{}")
    warning = kinesis_mock_state_left(tmp_path)
    assert warning is not None and "streams start empty" in warning
    (tmp_path / "CURRENT").write_text("MANIFEST-000002\n")  # kinesalite's LevelDB since then
    assert kinesis_mock_state_left(tmp_path) is None
