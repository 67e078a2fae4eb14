"""The Python `kinesis` source against a real Kinesis API (a moto server started here).

The reader is driven the way Spark drives it (`initialOffset`, `latestOffset`, `partitions`,
`read`, and `partitions(last, last)` after a restart), then once through Spark itself.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from pyspark.sql import SparkSession

from pipeline.stream.kinesis_source import (
    AFTER_SEQUENCE_NUMBER,
    AT_TIMESTAMP,
    KINESIS_SCHEMA,
    TRIM_HORIZON,
    KinesisDataSource,
    KinesisOptions,
    KinesisSourceError,
    KinesisStreamReader,
    ShardRange,
    ensure_kinesis_source,
    parse_duration,
)
from tests.support.ports import free_port

Row = tuple[Any, ...]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    port = free_port()
    moto = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{url}/moto-api/", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline or moto.poll() is not None:
            moto.kill()
            raise RuntimeError("moto server did not start")
        time.sleep(0.2)
    yield url
    moto.terminate()
    moto.wait(10)


@pytest.fixture(scope="module")
def kinesis(endpoint: str) -> Any:
    return boto3.client(
        "kinesis",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def new_stream(kinesis: Any, shards: int = 1) -> str:
    name = f"unit-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    return name


def put(kinesis: Any, stream: str, values: range | list[int]) -> None:
    for value in values:
        kinesis.put_record(
            StreamName=stream,
            Data=json.dumps({"ind": value}).encode(),
            PartitionKey=f"key-{value}",
        )


def reader(endpoint: str, stream: str, **extra: str) -> KinesisStreamReader:
    options = {
        "streamName": stream,
        "endpoint": endpoint,
        "region": "us-east-1",
        "awsAccessKey": "test",
        "awsSecretKey": "test",
        "minFetchPeriod": "0ms",
        "shardFetchInterval": "0s",
        **extra,
    }
    return KinesisStreamReader(KinesisOptions.parse(options))


def batch(source: KinesisStreamReader, start: dict[str, Any], end: dict[str, Any]) -> list[Row]:
    """Plan and read one micro-batch the way Spark does (partitions pickled to executors)."""
    rows: list[Row] = []
    executor_reader = pickle.loads(pickle.dumps(source))
    for partition in source.partitions(start, end):
        rows += list(executor_reader.read(pickle.loads(pickle.dumps(partition))))
    return rows


def values(rows: list[Row]) -> list[int]:
    return [json.loads(row[1])["ind"] for row in rows]


# -- options -------------------------------------------------------------------------------------


def test_options_use_databricks_names_and_reject_bad_values() -> None:
    options = KinesisOptions.parse(
        {
            "STREAMNAME": "a, b",
            "initialPosition": "TRIM_HORIZON",
            "maxRecordsPerFetch": "500",
            "maxFetchDuration": "2s",
            "minFetchPeriod": "250ms",
        }
    )
    assert options.streams == ("a", "b")
    assert options.initial_position == {"iteratorType": TRIM_HORIZON}
    assert options.max_records_per_fetch == 500
    assert options.max_fetch_duration_s == 2.0
    assert options.min_fetch_period_s == 0.25
    assert "secret" not in repr(KinesisOptions.parse({"streamName": "a"}))

    earliest = KinesisOptions.parse({"streamName": "a", "initialPosition": "earliest"})
    assert earliest.initial_position == {"iteratorType": TRIM_HORIZON}
    latest = KinesisOptions.parse({"streamName": "a"}).initial_position
    assert latest["iteratorType"] == AT_TIMESTAMP
    assert abs(latest["timestamp"] / 1000 - time.time()) < 60
    at = KinesisOptions.parse(
        {"streamName": "a", "initialPosition": '{"at_timestamp": "2024-01-02T03:04:05Z"}'}
    ).initial_position
    assert at == {
        "iteratorType": AT_TIMESTAMP,
        "timestamp": int(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp() * 1000),
    }

    bad: list[dict[str, str]] = [
        {},
        {"streamName": "a", "initialPosition": "yesterday"},
        {"streamName": "a", "awsAccessKey": "only-the-key"},
        {"streamName": "a", "maxRecordsPerFetch": "20000"},
        {"streamName": "a", "maxFetchDuration": "soon"},
        {"streamName": "a", "failOnDataLoss": "maybe"},
    ]
    for options_map in bad:
        with pytest.raises(KinesisSourceError):
            KinesisOptions.parse(options_map)
    assert parse_duration("1.5m", "x") == 90.0


# -- reading -------------------------------------------------------------------------------------


def test_reads_from_trim_horizon_in_databricks_shape(endpoint: str, kinesis: Any) -> None:
    stream = new_stream(kinesis, shards=2)
    put(kinesis, stream, range(10))
    source = reader(endpoint, stream, initialPosition="trim_horizon")

    start = source.initialOffset()
    assert set(start[stream]) == {"shardId-000000000000", "shardId-000000000001"}
    end = source.latestOffset()
    assert all(
        position["iteratorType"] == AFTER_SEQUENCE_NUMBER for position in end[stream].values()
    )
    partitions = source.partitions(start, end)
    # one partition per shard that moved, carrying the records latestOffset already read
    assert all(isinstance(p, ShardRange) and p.rows is not None for p in partitions)
    rows = batch(reader(endpoint, stream), start, end)  # a fresh reader: nothing prefetched
    assert sorted(values(rows)) == list(range(10))

    first = rows[0]
    assert len(first) == len(KINESIS_SCHEMA.fields)
    partition_key, data, stream_name, shard, sequence, arrival = first
    assert partition_key.startswith("key-")
    assert isinstance(data, bytes) and json.loads(data)["ind"] in range(10)
    assert stream_name == stream and shard.startswith("shardId-")
    assert sequence.isdigit()
    assert arrival.tzinfo is not None and abs(arrival.timestamp() - time.time()) < 120

    # nothing new: the same offset, as identical JSON (Spark compares the text)
    assert json.dumps(source.latestOffset()) == json.dumps(end)
    put(kinesis, stream, range(10, 13))
    later = source.latestOffset()
    assert sorted(values(batch(source, end, later))) == [10, 11, 12]


def test_latest_skips_what_was_there_before_the_first_start(endpoint: str, kinesis: Any) -> None:
    stream = new_stream(kinesis)
    put(kinesis, stream, range(5))
    time.sleep(0.05)
    source = reader(endpoint, stream, initialPosition="latest")
    start = source.initialOffset()
    assert source.latestOffset() == start
    time.sleep(0.05)
    put(kinesis, stream, [100, 101])
    end = source.latestOffset()
    assert values(batch(source, start, end)) == [100, 101]


def test_restart_resumes_at_the_checkpointed_offset(endpoint: str, kinesis: Any) -> None:
    stream = new_stream(kinesis)
    put(kinesis, stream, range(4))
    first = reader(endpoint, stream, initialPosition="trim_horizon")
    start = first.initialOffset()
    committed = first.latestOffset()
    assert values(batch(first, start, committed)) == [0, 1, 2, 3]
    put(kinesis, stream, range(4, 7))
    uncommitted = first.latestOffset()  # planned, then the job died before committing

    # The restarted reader learns the checkpoint through partitions(last, last) ...
    restarted = reader(endpoint, stream, initialPosition="trim_horizon")
    assert restarted.partitions(uncommitted, uncommitted) == []
    # ... replays the uncommitted batch from Kinesis exactly ...
    replay = restarted.partitions(committed, uncommitted)
    assert [p.rows for p in replay if isinstance(p, ShardRange)] == [None]
    assert values(batch(restarted, committed, uncommitted)) == [4, 5, 6]
    # ... and then only reads what came after it.
    put(kinesis, stream, [7])
    after = restarted.latestOffset()
    assert values(batch(restarted, uncommitted, after)) == [7]


def test_batches_are_bounded_by_fetch_size_and_duration(endpoint: str, kinesis: Any) -> None:
    stream = new_stream(kinesis)
    put(kinesis, stream, range(30))
    source = reader(
        endpoint,
        stream,
        initialPosition="trim_horizon",
        maxRecordsPerFetch="10",
        maxFetchDuration="0s",
    )
    offsets = [source.initialOffset()]
    seen: list[int] = []
    for _ in range(3):
        offsets.append(source.latestOffset())
        seen += values(batch(source, offsets[-2], offsets[-1]))
        assert len(seen) == len(offsets[1:]) * 10
    assert seen == list(range(30))


def test_new_shards_are_found_and_read_after_their_parent(endpoint: str, kinesis: Any) -> None:
    stream = new_stream(kinesis)
    put(kinesis, stream, range(3))
    source = reader(endpoint, stream, initialPosition="trim_horizon")
    start = source.initialOffset()
    before = source.latestOffset()
    assert sorted(values(batch(source, start, before))) == [0, 1, 2]

    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]
    middle = (int(shard["HashKeyRange"]["EndingHashKey"]) + 1) // 2
    kinesis.split_shard(
        StreamName=stream, ShardToSplit=shard["ShardId"], NewStartingHashKey=str(middle)
    )
    put(kinesis, stream, range(10, 20))
    after = source.latestOffset()

    parent = after[stream][shard["ShardId"]]
    assert parent.get("closed") is True
    children = [name for name in after[stream] if name != shard["ShardId"]]
    assert len(children) == 2
    # moto moves the parent's records into the children on a split (real Kinesis keeps them in
    # the parent), so the old records may come again: everything put after the split arrives.
    assert set(range(10, 20)) <= set(values(batch(source, before, after)))


def test_data_loss_is_an_error_unless_allowed(endpoint: str, kinesis: Any) -> None:
    stream = new_stream(kinesis)
    put(kinesis, stream, range(2))
    source = reader(endpoint, stream, initialPosition="trim_horizon")
    key = "shardId-000000000000"
    missing = ShardRange(stream, key, {"iteratorType": TRIM_HORIZON}, "999999", None)
    with pytest.raises(KinesisSourceError, match="no longer in the stream"):
        list(source.read(missing))
    lenient = reader(endpoint, stream, initialPosition="trim_horizon", failOnDataLoss="false")
    assert values(list(lenient.read(missing))) == [0, 1]


# -- through Spark -------------------------------------------------------------------------------


def test_spark_reads_the_stream_with_format_kinesis(
    spark: SparkSession, endpoint: str, kinesis: Any, tmp_path: Path
) -> None:
    assert ensure_kinesis_source(spark) is True
    stream = new_stream(kinesis, shards=2)
    put(kinesis, stream, range(8))
    frame = (
        spark.readStream.format("kinesis")
        .option("streamName", stream)
        .option("initialPosition", "trim_horizon")
        .option("region", "us-east-1")
        .option("endpoint", endpoint)
        .option("awsAccessKey", "test")
        .option("awsSecretKey", "test")
        .load()
    )
    assert frame.schema == KINESIS_SCHEMA
    name = f"kinesis_{uuid.uuid4().hex[:8]}"
    query = (
        frame.writeStream.format("memory")
        .queryName(name)
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .trigger(processingTime="1 second")
        .start()
    )
    try:
        query.processAllAvailable()
        put(kinesis, stream, range(8, 12))
        deadline = time.monotonic() + 120
        while spark.table(name).count() < 12 and time.monotonic() < deadline:
            query.processAllAvailable()
            time.sleep(0.5)
        got = [json.loads(row.data)["ind"] for row in spark.table(name).collect()]
    finally:
        query.stop()
    assert sorted(got) == list(range(12))
    assert KinesisDataSource.name() == "kinesis"
