"""Settings → environment, written once (pipeline/config/environment.py): what the local stack's
workloads, Airflow, the compose containers (compose/pipeline.env), MWAA and the deploy get."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import AwsSettings, DockerSettings, LocalSettings, Settings
from pipeline.config.environment import (
    COMPOSE_ENV_PATH,
    COMPOSE_FROM_DOT_ENV,
    CONTAINER_RUN_DIR,
    HOST_ONLY,
    compose_env_text,
    compose_environment,
    settings_environment,
    settings_from_environment,
    settings_with,
    variable_name,
)
from pipeline.config.settings import PROJECT_ROOT


def test_the_committed_compose_env_file_is_current() -> None:
    committed = COMPOSE_ENV_PATH.read_text(encoding="utf-8")
    assert committed == compose_env_text(), (
        "compose/pipeline.env is out of date: run `uv run pinpipe config compose-env --write`"
    )


def test_the_compose_env_depends_on_neither_this_shell_nor_this_checkout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = compose_env_text()
    monkeypatch.setenv("PINPIPE_KAFKA_TOPIC_PARTITIONS", "7")
    monkeypatch.setenv("PINPIPE_TARGET", "local")
    assert compose_env_text() == before
    assert str(PROJECT_ROOT) not in before
    assert "PINPIPE_KAFKA_TOPIC_PARTITIONS=3\n" in before


def test_a_container_reads_back_the_docker_settings() -> None:
    """pipeline.env plus what compose passes from .env (its defaults) is the docker target."""
    expected = settings_with(DockerSettings, run_dir=CONTAINER_RUN_DIR)
    passed = settings_environment(expected, only=COMPOSE_FROM_DOT_ENV)
    read = settings_from_environment(DockerSettings, {**compose_environment(), **passed})
    differing = {
        name
        for name in Settings.model_fields
        if getattr(read, name) != getattr(expected, name) and name not in HOST_ONLY
    }
    assert differing == set()
    assert read.endpoint_url("s3") == "http://s3:4566"


def test_secrets_are_never_rendered(tmp_path: Path) -> None:
    settings = settings_with(
        LocalSettings,
        run_dir=tmp_path,
        api_keys=["key-1"],
        aws_access_key_id="AKIAEXAMPLE",
        aws_secret_access_key=SecretStr("very-secret"),
        airflow_db_url=SecretStr("postgresql://airflow:pw@db/airflow"),
    )
    environment = settings_environment(settings)
    text = "\n".join(f"{key}={value}" for key, value in environment.items())
    for leaked in ("key-1", "AKIAEXAMPLE", "very-secret", "pw@", "*****"):
        assert leaked not in text
    assert "AWS_ACCESS_KEY_ID" not in environment and "PINPIPE_API_KEYS" not in environment


def test_only_renders_the_named_fields_and_the_target() -> None:
    settings = settings_with(AwsSettings, lake_bucket="b", aws_region="eu-west-1")
    assert settings_environment(settings, only=["lake_bucket", "aws_region"]) == {
        "PINPIPE_TARGET": "aws",
        "PINPIPE_LAKE_BUCKET": "b",
        "AWS_REGION": "eu-west-1",
    }
    with pytest.raises(ValueError, match="lake_bukket"):
        settings_environment(settings, only=["lake_bukket"])


def test_variables_are_the_sdk_names_where_a_field_has_one() -> None:
    assert variable_name("aws_region") == "AWS_REGION"
    assert variable_name("kinesis_endpoint_url") == "AWS_ENDPOINT_URL_KINESIS"
    assert variable_name("lake_bucket") == "PINPIPE_LAKE_BUCKET"


def test_settings_from_an_environment_ignore_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINPIPE_LAKE_BUCKET", "local-lake")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    settings = settings_from_environment(AwsSettings, {"PINPIPE_TOPIC_PREFIX": "pp"})
    assert isinstance(settings, AwsSettings)
    assert settings.topic_prefix == "pp" and settings.lake_bucket == "pinpipe-lake"
    assert settings.aws_endpoint_url is None


@pytest.mark.parametrize(("content", "exit_code"), [(None, 0), ("stale\n", 1)])
def test_compose_env_check_fails_only_when_the_file_is_out_of_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None, exit_code: int
) -> None:
    target = tmp_path / "pipeline.env"
    target.write_text(content if content is not None else compose_env_text(), encoding="utf-8")
    monkeypatch.setattr("pipeline.config.cli.COMPOSE_ENV_PATH", target)
    result = CliRunner().invoke(app, ["config", "compose-env", "--check"])
    assert result.exit_code == exit_code, result.output
    if exit_code:
        assert "pinpipe config compose-env --write" in result.output
    runner = CliRunner()
    assert runner.invoke(app, ["config", "compose-env", "--write"]).exit_code == 0
    assert target.read_text(encoding="utf-8") == compose_env_text()
