"""Data contract §3.4's one rule for repeated ids, through the real stack: an id posted twice with
different values ends as the same silver row in both layers, the latest arrival's.

API → Kafka → Connect → S3 lake → batch job, and API → Kinesis → streaming job. Records are keyed
by their id (Kafka key, Kinesis partition key), as the contract says, so one id keeps to one
partition and one shard. Three ids:

- `ACROSS`: first values, the stream job writes them, then second values (a MERGE update);
  in the batch layer both land in one object (a later line wins);
- `WITHIN`: second values posted before first values, both before the job starts (one
  micro-batch): the later post, i.e. the "first" values, must win, not the higher version;
- `ONCE`: posted once, as a control.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from pyspark.sql import SparkSession

from pipeline.config import Settings
from pipeline.lake import LakePaths, StreamPaths
from pipeline.landing import topic_prefix
from pipeline.stream.job import TABLES
from pipeline.transform.job import run_batch
from pipeline.transform.lake import read_delta
from tests.support.stream_job import JOB_START_TIMEOUT_S, StreamJobProcess, new_job
from tests.support.stream_scenario import expected_rows, rows_by_ind, source_rows
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

KAFKA_JSON = "application/vnd.kafka.json.v2+json"
ACROSS, WITHIN, ONCE = 7_100_001, 7_100_002, 7_100_003
IDS = [ACROSS, WITHIN, ONCE]


def version(ind: int, n: int) -> dict[str, dict[str, Any]]:
    """Version `n` of an id's three rows: every table differs between versions."""
    rows = source_rows(ind)
    rows["pin"]["title"] = f"Version {n}"
    rows["geo"]["country"] = f"Country {n}"
    rows["user"]["age"] = 20 + n
    return rows


def expected(ind: int, n: int) -> dict[str, dict[str, Any]]:
    rows = expected_rows(ind)
    rows["pin"]["title"] = f"Version {n}"
    rows["geo"]["country"] = f"Country {n}"
    rows["user"]["age"] = 20 + n
    return rows


def post_both_layers(settings: Settings, ind: int, n: int) -> None:
    """One request per table and layer, keyed by the id, answered before the next is sent."""
    for table, row in version(ind, n).items():
        answer = requests.post(
            f"{settings.api_url}/topics/{settings.topics[table]}",
            json={"records": [{"key": str(ind), "value": row}]},
            headers={"Content-Type": KAFKA_JSON},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["offsets"][0]["error_code"] is None, answer.text
        stream = settings.streams[table]
        answer = requests.put(
            f"{settings.api_url}/streams/{stream}/record",
            json={"StreamName": stream, "Data": row, "PartitionKey": str(ind)},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text


def landed_lines(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Our ids' lines in the landing zone, per table."""
    s3 = boto3.client("s3", **settings.boto3_kwargs("s3"))
    found: dict[str, list[dict[str, Any]]] = {table: [] for table in TABLES}
    for table, topic in settings.topics.items():
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=settings.lake_bucket, Prefix=topic_prefix(topic)
        )
        for page in pages:
            for item in page.get("Contents", []):
                body = s3.get_object(Bucket=settings.lake_bucket, Key=item["Key"])["Body"].read()
                for line in body.decode().splitlines():
                    row = json.loads(line)
                    if row.get("index", row.get("ind")) in IDS:
                        found[table].append(row)
    return found


@pytest.fixture(scope="module")
def stream_job(
    stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StreamJobProcess]:
    job = new_job(stack, tmp_path_factory)
    post_both_layers(stack, ACROSS, 1)
    post_both_layers(stack, WITHIN, 2)
    post_both_layers(stack, WITHIN, 1)
    post_both_layers(stack, ONCE, 1)
    job.start("--until-idle", "20", "--timeout", "900")
    try:
        # the first micro-batches have the first version of ACROSS ...
        job.wait_for(
            lambda: all(job.input_rows().get(t, 0) >= 4 for t in TABLES),
            JOB_START_TIMEOUT_S,
            "the first micro-batches",
        )
        # ... then its second version arrives, in a later micro-batch
        post_both_layers(stack, ACROSS, 2)
        report = job.wait_exit(400)
        assert all(rows >= 5 for rows in report["input_rows"].values()), report
        yield job
    finally:
        job.kill()


def stream_rows(spark: SparkSession, job: StreamJobProcess) -> dict[str, dict[int, Any]]:
    paths = StreamPaths(job.lake, "test")
    result = {}
    for table in TABLES:
        found = rows_by_ind(spark.read.format("delta").load(paths.table(table)), IDS)
        assert all(len(rows) == 1 for rows in found.values()), found
        result[table] = {ind: rows[0] for ind, rows in found.items()}
    return result


def batch_rows(spark: SparkSession, settings: Settings) -> dict[str, dict[int, Any]]:
    """Wait until Connect has landed our five records per table, then run the batch job."""
    wait_for(
        lambda: sum(len(lines) for lines in landed_lines(settings).values()) >= 3 * 5,
        300,
        "five landed records per table",
        interval_s=2,
        on_timeout=lambda: f"landed: {landed_lines(settings)}",
    )
    lake = f"s3a://{settings.lake_bucket}/repeated-ids-tests/{uuid.uuid4().hex[:8]}/lake"
    run_batch(spark, settings.landing_uri, lake, settings.topics)
    result = {}
    for table in TABLES:
        found = rows_by_ind(read_delta(spark, LakePaths(lake).silver(table)), IDS)
        assert all(len(rows) == 1 for rows in found.values()), found
        result[table] = {ind: rows[0] for ind, rows in found.items()}
    return result


def test_both_layers_keep_the_latest_arrival_of_a_repeated_id(
    stack: Settings, spark: SparkSession, stream_job: StreamJobProcess
) -> None:
    streamed = stream_rows(spark, stream_job)
    batched = batch_rows(spark, stack)
    want = {ACROSS: 2, WITHIN: 1, ONCE: 1}
    for table in TABLES:
        for ind, n in want.items():
            assert streamed[table][ind] == expected(ind, n)[table], (table, ind, "stream")
            assert batched[table][ind] == expected(ind, n)[table], (table, ind, "batch")
        assert streamed[table] == batched[table], table
