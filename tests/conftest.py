"""Shared fixtures: a real local stack on test ports, started once per test session."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pipeline.config import Settings, get_settings
from pipeline.config.settings import local_port_variables

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Ports apart from a developer's running stack (9092, 8083, 4566, ...), so tests never touch it.
# PINPIPE_TEST_PORT_OFFSET moves them all, e.g. to run two test sessions side by side.
PORT_OFFSET = int(os.environ.get("PINPIPE_TEST_PORT_OFFSET", "10000"))
DEFAULT_PORTS = local_port_variables()
TEST_PORTS = {key: port + PORT_OFFSET for key, port in DEFAULT_PORTS.items()}
TEST_ENV = {
    "PINPIPE_TARGET": "local",
    **{key: str(port) for key, port in TEST_PORTS.items()},
    "PINPIPE_TOPIC_PREFIX": "test",
    "PINPIPE_LAKE_BUCKET": "test-lake",
    "PINPIPE_LANDING_FLUSH_INTERVAL_MS": "5000",
    # tests post exactly what they count: no background feed
    "PINPIPE_FEED_IDS_PER_SECOND": "0",
    # Airflow (1+ GB, slow to start) only where a test asks for it: tests/e2e start their own
    "PINPIPE_AIRFLOW_ENABLED": "false",
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_REGION": "us-east-1",
}
# Set by a developer's shell or .env; the test stack derives them from its ports instead.
CLEARED = (
    "PINPIPE_KAFKA_BOOTSTRAP_SERVERS",
    "PINPIPE_CONNECT_URL",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_KINESIS",
    "PINPIPE_API_URL",
    "AWS_DEFAULT_REGION",
    "PINPIPE_RUN_DIR",
)


@pytest.fixture(scope="session")
def test_env() -> Iterator[dict[str, str]]:
    """Point every `get_settings()` of this test session at the test stack."""
    # Not under pytest's basetemp: concurrent pytest sessions prune each other's old basetemps,
    # which would pull the run folder (and supervisord's socket) from under a live stack.
    run_dir = Path(tempfile.mkdtemp(prefix="pinpipe-test-stack-"))
    env = {**TEST_ENV, "PINPIPE_RUN_DIR": str(run_dir)}
    saved = {key: os.environ.get(key) for key in (*env, *CLEARED)}
    for key in CLEARED:
        os.environ.pop(key, None)
    os.environ.update(env)
    get_settings.cache_clear()
    yield env
    shutil.rmtree(run_dir, ignore_errors=True)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def stack(test_env: dict[str, str]) -> Iterator[Settings]:
    """The local stack (real broker, Connect worker, S3 and Kinesis servers), up and provisioned."""
    from pipeline.stack import stack as local_stack

    settings = get_settings()
    try:
        local_stack.up(settings, on_event=lambda message: print(f"[stack] {message}"))
        yield settings
    finally:  # also when `up` failed half-way: leave no process behind
        local_stack.down(settings, on_event=lambda message: print(f"[stack] {message}"))


@pytest.fixture(scope="session")
def spark_settings(test_env: dict[str, str]) -> Settings:
    """Whose lake `spark` reads (besides local folders): the test stack's, which `stack` starts;
    tests/compose override this with the compose stack's."""
    return get_settings()


@pytest.fixture(scope="session")
def spark(spark_settings: Settings) -> Iterator[SparkSession]:
    """The tests' one Spark session (a pytest process has one JVM): small, Delta enabled."""
    from tests.support.spark import shared_session

    session = shared_session(spark_settings)
    yield session
    # Close the py4j connections while pytest still owns the log streams.
    session.stop()


@pytest.fixture(scope="session", autouse=True)
def stream_job_left_out_of_test_stack() -> Iterator[None]:
    """The `stack` fixture starts no streaming job (one Spark driver less on a small machine);
    tests of the stream layer start their own, with their own lake and checkpoints."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PINPIPE_STREAM_ENABLED", "false")
        get_settings.cache_clear()
        yield
    get_settings.cache_clear()
