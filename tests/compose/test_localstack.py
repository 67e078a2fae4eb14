"""The compose stack on LocalStack 4.14.0 for S3 and Kinesis (profile `localstack`): a stack of
its own (project `<project>-localstack`, host ports +1000 from the default stack's), every
pipeline container pointed at `http://localstack:4566` by PINPIPE_DOCKER_S3_URL and
PINPIPE_DOCKER_KINESIS_URL, its lake in a bucket of its own. The smallest scenario that proves
both paths there: counted records posted through the API land in LocalStack's S3 and the
`spark-batch` service turns them into silver and the nine gold tables; rows posted to the
Kinesis endpoints reach the `spark-stream` service's Delta tables exactly once, cleaned. The
default stack's tests (S3Proxy, kinesis-mock) cover restarts, malformed records and the DAG.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from pydantic import SecretStr
from pyspark.sql import DataFrame, SparkSession

from pipeline.config import LocalSettings
from pipeline.lake import QUERY_COLUMNS, LakePaths, StreamPaths
from pipeline.spark_session import s3a_options
from pipeline.stream.job import TABLES as STREAM_TABLES
from pipeline.transform.job import TABLES as BATCH_TABLES
from pipeline.transform.job import read_gold
from pipeline.transform.lake import read_delta
from tests.compose.conftest import (
    FLUSH_INTERVAL_MS,
    PORT_OFFSET,
    PORTS,
    PROJECT,
    ComposeStack,
    engine_reachable,
    post_and_land,
)
from tests.support.spark import shared_session
from tests.support.stream_scenario import (
    assert_no_duplicate_ids,
    expected_rows,
    post_rows,
    rows_by_ind,
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
    engine_reachable()
    folder = Path(tempfile.mkdtemp(prefix="pinpipe-compose-localstack-"))
    out = folder / "out"
    out.mkdir()
    out.chmod(0o777)  # the containers' non-root user writes ledgers and results here
    ports = {
        key: port + LOCALSTACK_PORT_OFFSET
        for key, port in {**PORTS, "PINPIPE_LOCALSTACK_PORT": 4567}.items()
    }
    settings: dict[str, object] = {
        "COMPOSE_PROFILES": "localstack",
        "PINPIPE_DOCKER_S3_URL": LOCALSTACK_URL,
        "PINPIPE_DOCKER_KINESIS_URL": LOCALSTACK_URL,
        "PINPIPE_LAKE_BUCKET": LAKE_BUCKET,
        "PINPIPE_LANDING_FLUSH_INTERVAL_MS": FLUSH_INTERVAL_MS,
        **ports,
    }
    env_file = folder / "compose.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    # the host reaches S3 and Kinesis at LocalStack's one published port
    host = LocalSettings(
        run_dir=folder / "run",
        kafka_port=ports["PINPIPE_KAFKA_PORT"],
        connect_port=ports["PINPIPE_CONNECT_PORT"],
        s3_port=ports["PINPIPE_LOCALSTACK_PORT"],
        kinesis_port=ports["PINPIPE_LOCALSTACK_PORT"],
        api_port=ports["PINPIPE_API_PORT"],
        airflow_port=ports["PINPIPE_AIRFLOW_PORT"],
        stream_metrics_port=ports["PINPIPE_STREAM_METRICS_PORT"],
        topic_prefix="pinpipe",
        lake_bucket=LAKE_BUCKET,
        lake_root="",
        landing_flush_interval_ms=FLUSH_INTERVAL_MS,
        aws_region="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key=SecretStr("test"),
        api_keys=[],
        spark_driver_memory="1g",
    )
    stack = ComposeStack(env_file=env_file, host=host, out=out, project=LOCALSTACK_PROJECT)
    try:
        up = stack.command("up", "--wait", "--wait-timeout", "900", *SERVICES)
        started = subprocess.run(up, capture_output=True, text=True, timeout=2400)
        if started.returncode != 0:
            pytest.fail(
                "the compose stack on LocalStack did not become healthy:\n"
                f"{(started.stdout + started.stderr)[-3000:]}\n{stack.diagnostics()}"
            )
        yield stack
    finally:
        subprocess.run(
            stack.command("down", "--volumes", "--remove-orphans", "--timeout", "30"),
            capture_output=True,
            timeout=600,
        )
        shutil.rmtree(folder, ignore_errors=True)


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
    streams `pinpipe provision` made; the default stack's S3Proxy and kinesis-mock (started as
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
    kinesis_mock = boto3.client("kinesis", **default_servers.boto3_kwargs("kinesis"))
    assert not set(host.streams.values()) & set(kinesis_mock.list_streams()["StreamNames"])


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
    assert list(results) == list(QUERY_COLUMNS)
    for query_id, rows in results.items():
        assert rows, f"{query_id}: no rows"
        assert all(list(row) == list(QUERY_COLUMNS[query_id]) for row in rows), query_id
    host = localstack_stack.host
    gold = read_gold(lake, host.lake_uri)
    assert len(gold) == 9 and all(gold.values()), {name: len(rows) for name, rows in gold.items()}
    paths = LakePaths(host.lake_uri)
    for table in BATCH_TABLES:
        silver = {
            row["ind"] for row in read_delta(lake, paths.silver(table)).select("ind").collect()
        }
        acknowledged = {entry["id"] for entry in ledger if entry["table"] == table}
        assert acknowledged, f"no {table} record in the ledger"
        missing = sorted(acknowledged - silver)
        assert not missing, f"{table}: {len(missing)} acknowledged ids missing: {missing[:10]}"


def stream_table(lake: SparkSession, host: LocalSettings, name: str) -> DataFrame:
    return lake.read.format("delta").load(StreamPaths(host.lake_uri, host.topic_prefix).table(name))


def test_stream_job_on_localstack_writes_each_posted_row_once_cleaned(
    localstack_stack: ComposeStack, lake: SparkSession
) -> None:
    host = localstack_stack.host
    post_rows(host, STREAM_IDS + STREAM_IDS[:10])  # ten ids twice

    def arrived() -> bool:
        return all(
            len(rows_by_ind(stream_table(lake, host, name), STREAM_IDS)) == len(STREAM_IDS)
            for name in STREAM_TABLES
        )

    wait_for(arrived, ARRIVAL_TIMEOUT_S, "the posted rows in the stream tables", interval_s=3)
    for name in STREAM_TABLES:
        frame = stream_table(lake, host, name)
        found = rows_by_ind(frame, STREAM_IDS)
        assert sorted(found) == STREAM_IDS, name
        assert all(len(rows) == 1 for rows in found.values()), name
        assert_no_duplicate_ids(frame)
        for ind, rows in found.items():
            assert rows[0] == expected_rows(ind)[name], f"{name} {ind}"
