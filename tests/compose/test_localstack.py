"""The compose stack on LocalStack 4.14.0 for S3 and Kinesis (profile `localstack`): a stack of
its own (project `<project>-localstack`, host ports +1000 from the default stack's), every
pipeline container pointed at `http://localstack:4566` by PINPIPE_DOCKER_S3_URL and
PINPIPE_DOCKER_KINESIS_URL, its lake in a bucket of its own. The smallest scenario that proves
both paths there: counted records posted through the API land in LocalStack's S3 and the
`spark-batch` service turns them into silver and the nine gold tables; rows posted to the
Kinesis endpoints reach the `spark-stream` service's Delta tables exactly once, cleaned. The
default stack's tests (S3Proxy, kinesalite) cover restarts, malformed records and the DAG.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from pyspark.sql import SparkSession

from pipeline.spark_session import s3a_options
from pipeline.transform.job import read_gold
from tests.support import batch_scenario
from tests.support.compose import (
    PORT_OFFSET,
    PORTS,
    PROJECT,
    ComposeStack,
    post_and_land,
    start_compose_stack,
)
from tests.support.spark import shared_session
from tests.support.stream_scenario import (
    all_arrived,
    assert_each_table_holds_the_ids_once,
    assert_rows_cleaned,
    post_rows,
    stream_tables,
)
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.compose, pytest.mark.timeout(2700)]

LOCALSTACK_PROJECT = f"{PROJECT}-localstack"
# apart from the default test stack's ports, so both can run in one pytest session
LOCALSTACK_PORT_OFFSET = PORT_OFFSET + 1000
LOCALSTACK_URL = "http://localstack:4566"
LAKE_BUCKET = "pinpipe-lake-localstack"
# the default stack's Airflow is left out: the batch job runs as the spark-batch one-shot
SERVICES = ["localstack", "kafka", "connect", "api", "spark-stream"]
DRAWS = 40  # about 120 records: enough for a row in every gold query
STREAM_IDS = list(range(7_000_000, 7_000_040))
ARRIVAL_TIMEOUT_S = 480


@pytest.fixture(scope="module")
def localstack_stack() -> Iterator[ComposeStack]:
    # the host reaches S3 and Kinesis at LocalStack's one published port
    localstack_port = 4567 + LOCALSTACK_PORT_OFFSET
    env = {
        "COMPOSE_PROFILES": "localstack",
        "PINPIPE_DOCKER_S3_URL": LOCALSTACK_URL,
        "PINPIPE_DOCKER_KINESIS_URL": LOCALSTACK_URL,
        "PINPIPE_LAKE_BUCKET": LAKE_BUCKET,
    }
    with start_compose_stack(
        LOCALSTACK_PROJECT,
        LOCALSTACK_PORT_OFFSET,
        env,
        SERVICES,
        extra_ports={"PINPIPE_LOCALSTACK_PORT": 4567},
        s3_port=localstack_port,
        kinesis_port=localstack_port,
        lake_bucket=LAKE_BUCKET,
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def lake(localstack_stack: ComposeStack) -> Iterator[SparkSession]:
    """The process's Spark session, reading LAKE_BUCKET from LocalStack. S3A options per bucket:
    a session the default stack's tests made earlier keeps its endpoint for their bucket."""
    existing = SparkSession.getActiveSession()
    session = existing or shared_session(localstack_stack.host)
    hadoop = session.sparkContext._jsc.hadoopConfiguration()
    for key, value in s3a_options(localstack_stack.host).items():
        option = key.removeprefix("spark.hadoop.fs.s3a.")
        if option != key and option != "impl":
            hadoop.set(f"fs.s3a.bucket.{LAKE_BUCKET}.{option}", value)
    yield session
    if existing is None:
        # close the py4j connections while pytest still owns the log streams
        session.stop()


def test_the_containers_use_localstack_and_not_the_default_servers(
    localstack_stack: ComposeStack,
) -> None:
    """LocalStack answers as 4.14.0 with S3 and Kinesis running and holds the bucket and the
    streams `pinpipe provision` made; the default stack's S3Proxy and kinesalite (started as
    dependencies) hold neither."""
    host = localstack_stack.host
    health = requests.get(f"{host.endpoint_url('s3')}/_localstack/health", timeout=10).json()
    assert health["version"] == "4.14.0", health
    assert health["services"]["s3"] == health["services"]["kinesis"] == "running", health
    s3 = boto3.client("s3", **host.boto3_kwargs("s3"))
    assert LAKE_BUCKET in {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
    kinesis = boto3.client("kinesis", **host.boto3_kwargs("kinesis"))
    assert set(host.streams.values()) <= set(kinesis.list_streams()["StreamNames"])

    def published(key: str) -> str:
        return f"http://127.0.0.1:{PORTS[key] + LOCALSTACK_PORT_OFFSET}"

    default_servers = host.model_copy(
        update={
            "s3_endpoint_url": published("PINPIPE_S3_PORT"),
            "kinesis_endpoint_url": published("PINPIPE_KINESIS_PORT"),
        }
    )
    s3proxy = boto3.client("s3", **default_servers.boto3_kwargs("s3"))
    with pytest.raises(ClientError):
        s3proxy.head_bucket(Bucket=LAKE_BUCKET)
    default_kinesis = boto3.client("kinesis", **default_servers.boto3_kwargs("kinesis"))
    assert not set(host.streams.values()) & set(default_kinesis.list_streams()["StreamNames"])


@pytest.fixture(scope="module")
def batch_results(localstack_stack: ComposeStack) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Counted records landed in LocalStack's S3, then `pinpipe batch` in the Spark image."""
    ledger = post_and_land(localstack_stack, DRAWS)
    localstack_stack.one_shot(
        "spark-batch", "pinpipe", "batch", "--results-json", "/out/results.json", timeout_s=1500
    )
    results: dict[str, Any] = json.loads((localstack_stack.out / "results.json").read_text())
    return ledger, results


def test_batch_job_on_localstack_puts_every_acknowledged_record_in_silver_and_fills_gold(
    localstack_stack: ComposeStack,
    batch_results: tuple[list[dict[str, Any]], dict[str, Any]],
    lake: SparkSession,
) -> None:
    ledger, results = batch_results
    batch_scenario.assert_results_json(results)
    host = localstack_stack.host
    batch_scenario.assert_gold_filled(read_gold(lake, host.lake_uri))
    batch_scenario.assert_every_acknowledged_id_in_silver(lake, host.lake_uri, ledger)


def test_stream_job_on_localstack_writes_each_posted_row_once_cleaned(
    localstack_stack: ComposeStack, lake: SparkSession
) -> None:
    host = localstack_stack.host
    read = stream_tables(lake, host.lake_uri, host.topic_prefix)
    post_rows(host, STREAM_IDS + STREAM_IDS[:10])  # ten ids twice
    wait_for(
        all_arrived(read, STREAM_IDS),
        ARRIVAL_TIMEOUT_S,
        "the posted rows in the stream tables",
        interval_s=3,
    )
    assert_each_table_holds_the_ids_once(read, STREAM_IDS)
    assert_rows_cleaned(read, STREAM_IDS)
