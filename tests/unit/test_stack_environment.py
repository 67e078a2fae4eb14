"""What the local stack passes to the pipeline processes it starts: settings, never secrets."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from pipeline.config import LocalSettings
from pipeline.config.environment import settings_environment


def test_workloads_get_the_settings_but_no_secret(tmp_path: Path) -> None:
    settings = LocalSettings(
        run_dir=tmp_path,
        topic_prefix="shop",
        kafka_port=19092,
        api_keys=["key-1"],
        aws_access_key_id="AKIAEXAMPLE",
        aws_secret_access_key=SecretStr("very-secret"),
        airflow_db_url=SecretStr("postgresql://airflow:pw@db/airflow"),
    )
    environment = settings_environment(settings)
    assert environment["PINPIPE_TOPIC_PREFIX"] == "shop"
    assert environment["PINPIPE_KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:19092"
    assert environment["PINPIPE_RUN_DIR"] == str(tmp_path)
    # one endpoint per service, under the names boto3 and AWS SDK v2 read themselves
    assert environment["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:4566"
    assert environment["AWS_ENDPOINT_URL_KINESIS"] == "http://127.0.0.1:4568"
    assert "AWS_ENDPOINT_URL" not in environment
    for name in ("PINPIPE_AIRFLOW_DB_URL", "PINPIPE_AWS_SECRET_ACCESS_KEY", "PINPIPE_API_KEYS"):
        assert name not in environment
    leaked = [key for key, value in environment.items() if "*****" in value or "pw@" in value]
    assert leaked == [] and "very-secret" not in environment.values()
