"""State survives `down` + `up` of the local stack (issue 14).

On the session's test stack: records posted through the API to Kafka (landed by Connect in S3)
and to Kinesis (left unconsumed), a Delta table and a streaming query's checkpoint written by
Spark over s3a://, then the whole stack is stopped and started again. Everything must still be
there, and records posted after the restart land too, every acknowledged one exactly once.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter

import boto3
import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pipeline.config import Settings
from pipeline.landing import LANDING_PREFIX
from pipeline.stack import stack as local_stack
from tests.support.api import ROWS, post_topic, put_stream
from tests.support.landing import end_offsets, landed_objects, record_offsets
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

RECORDS_PER_TABLE = 40


def post_batch(settings: Settings, inds: list[int]) -> list[tuple[str, int]]:
    """Post one record per ind and table through the API; the (topic, ind) pairs acknowledged."""
    acknowledged = []
    for table, topic in settings.topics.items():
        body = {"records": [{"value": ROWS[table](ind)} for ind in inds]}
        response = post_topic(settings, topic, body)
        assert response.status_code == 200, response.text
        offsets = response.json()["offsets"]
        assert all(entry.get("error") is None for entry in offsets), offsets
        acknowledged += [(topic, ind) for ind in inds]
    return acknowledged


def fill_a_window(settings: Settings, inds: list[int]) -> list[tuple[str, int]]:
    """Pin records to partition 0, more than a landing window: Connect lands the window whole
    and commits its offsets (it commits only up to the start of the window still open)."""
    topic = settings.topics["pin"]
    for chunk in range(0, len(inds), 500):
        records = [{"value": ROWS["pin"](ind), "partition": 0} for ind in inds[chunk : chunk + 500]]
        response = post_topic(settings, topic, {"records": records})
        assert response.status_code == 200, response.text
    return [(topic, ind) for ind in inds]


def post_stream(settings: Settings, inds: list[int]) -> dict[str, set[str]]:
    """PutRecords through the API; each stream's acknowledged sequence numbers."""
    acknowledged: dict[str, set[str]] = {}
    for table, stream in settings.streams.items():
        records = [{"Data": ROWS[table](ind), "PartitionKey": str(ind)} for ind in inds]
        response = put_stream(settings, stream, "records", {"Records": records})
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["FailedRecordCount"] == 0, answer
        acknowledged[stream] = {entry["SequenceNumber"] for entry in answer["Records"]}
    return acknowledged


def ind_of(line: bytes) -> int:
    value = json.loads(line)
    return int(value.get("ind", value.get("index", -1)))


def landed_inds(settings: Settings) -> Counter[tuple[str, int]]:
    """(topic, ind) of every line in the lake, counted."""
    counted: Counter[tuple[str, int]] = Counter()
    for topic in settings.topics.values():
        for lines in landed_objects(settings, topic).values():
            counted.update((topic, ind_of(line)) for line in lines)
    return counted


def wait_until_landed(settings: Settings) -> None:
    """Until the lake holds as many lines as the topics hold committed records (every test's;
    the commit markers of the API's transactions take offsets, not lines)."""
    topics = list(settings.topics.values())

    def lines_match_offsets() -> bool:
        expected = sum(
            len(found) for topic in topics for found in record_offsets(settings, topic).values()
        )
        return sum(landed_inds(settings).values()) == expected

    wait_for(lines_match_offsets, settings.landing_flush_interval_ms / 1000 + 120, "landing")


def lake_objects(settings: Settings) -> dict[str, tuple[int, str]]:
    """Every object of the bucket: key → (size, ETag)."""
    s3 = boto3.client("s3", **settings.boto3_kwargs("s3"))
    objects = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.lake_bucket):
        for item in page.get("Contents", []):
            objects[item["Key"]] = (item["Size"], item["ETag"])
    return objects


def kafka_end_offsets(settings: Settings) -> dict[tuple[str, int], int]:
    return {
        (topic, partition): offset
        for topic in settings.topics.values()
        for partition, offset in end_offsets(settings, topic).items()
    }


def connect_committed_offsets(settings: Settings) -> dict[tuple[str, int], int]:
    """The S3 sink's committed offsets (Connect's consumer group `connect-<connector>`)."""
    admin = AdminClient(settings.kafka_client_config())
    partitions = [TopicPartition(topic, p) for topic, p in kafka_end_offsets(settings)]
    request = ConsumerGroupTopicPartitions(f"connect-{settings.connector_name}", partitions)
    result = admin.list_consumer_group_offsets([request])[request.group_id].result(timeout=30)
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions}


def kinesis_records(settings: Settings) -> dict[str, dict[str, bytes]]:
    """Every record still in each stream: sequence number → data (reading consumes nothing)."""
    kinesis = boto3.client("kinesis", **settings.boto3_kwargs("kinesis"))
    held: dict[str, dict[str, bytes]] = {}
    for stream in settings.streams.values():
        held[stream] = {}
        for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
            iterator = kinesis.get_shard_iterator(
                StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
                held[stream] |= {r["SequenceNumber"]: r["Data"] for r in page["Records"]}
                if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
                    break
                iterator = page.get("NextShardIterator")
    return held


def copy_stream(spark: SparkSession, source: str, target: str, checkpoint: str) -> None:
    """A Structured Streaming query (Delta → Delta) run to the end of its input."""
    query = (
        spark.readStream.format("delta")
        .load(source)
        .writeStream.format("delta")
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start(target)
    )
    query.awaitTermination()


def test_down_and_up_keep_lake_delta_checkpoints_kafka_offsets_and_kinesis(
    stack: Settings, spark: SparkSession
) -> None:
    run = uuid.uuid4().hex[:8]
    first = random.Random(run).sample(range(10**6, 10**7), RECORDS_PER_TABLE)
    acknowledged = post_batch(stack, first)
    window = random.Random(run + "window").sample(
        range(10**9, 2 * 10**9), stack.landing_flush_max_records + 10
    )
    acknowledged += fill_a_window(stack, window)
    streamed = post_stream(stack, first)
    wait_until_landed(stack)

    # a Delta table and a streaming query's checkpoint in the same bucket, over s3a://
    base = f"s3a://{stack.lake_bucket}/restart-test/{run}"
    table, copy, checkpoint = f"{base}/table", f"{base}/copy", f"{base}/_checkpoints/copy"
    rows = spark.range(500).withColumn("run", F.lit(run)).withColumn("square", F.col("id") ** 2)
    rows.write.format("delta").save(table)
    copy_stream(spark, table, copy, checkpoint)
    table_rows = sorted(spark.read.format("delta").load(table).collect())
    assert len(table_rows) == 500
    assert spark.read.format("delta").load(copy).count() == 500

    objects = lake_objects(stack)
    assert any(key.startswith(f"restart-test/{run}/_checkpoints/copy/") for key in objects)
    offsets = kafka_end_offsets(stack)
    pin0 = (stack.topics["pin"], 0)
    wait_for(lambda: connect_committed_offsets(stack)[pin0] > 0, 180, "Connect to commit")
    committed = connect_committed_offsets(stack)
    held = kinesis_records(stack)
    for stream, sequences in streamed.items():
        assert sequences <= set(held[stream]), f"{stream}: acknowledged records missing"

    local_stack.down(stack, on_event=lambda message: print(f"[restart] {message}"))
    local_stack.up(stack, on_event=lambda message: print(f"[restart] {message}"))

    after = lake_objects(stack)
    missing = sorted(set(objects) - set(after))
    assert not missing, f"{len(missing)} of {len(objects)} objects gone, e.g. {missing[:3]}"
    changed = [key for key in objects if after[key] != objects[key]]
    # only a window still open may be rewritten (same name, same lines plus later ones)
    assert all(key.startswith(f"{LANDING_PREFIX}/") for key in changed), changed
    assert kafka_end_offsets(stack) == offsets, "the topics lost or gained records"
    assert connect_committed_offsets(stack) == committed, "Connect's committed offsets moved"
    assert kinesis_records(stack) == held, "Kinesis streams lost records over the restart"

    assert sorted(spark.read.format("delta").load(table).collect()) == table_rows
    copy_stream(spark, table, copy, checkpoint)  # resumes from its checkpoint: nothing new
    assert spark.read.format("delta").load(copy).count() == 500, "checkpoint lost: reprocessed"

    # the sink carries on from its offsets: before and after, each record lands exactly once
    second = random.Random(run + "after").sample(range(10**7, 10**8), RECORDS_PER_TABLE)
    acknowledged += post_batch(stack, second)
    wait_until_landed(stack)
    landed = landed_inds(stack)
    counts = Counter(landed[key] for key in acknowledged)
    assert counts == Counter({1: len(acknowledged)}), f"times landed → records: {counts}"


def test_ingest_api_reaches_kinesis_after_the_restart(stack: Settings) -> None:
    """The API's Kinesis client reconnects to the restarted server (run after the test above)."""
    inds = random.Random(uuid.uuid4().hex).sample(range(10**8, 10**9), 5)
    acknowledged = post_stream(stack, inds)
    held = kinesis_records(stack)
    for stream, sequences in acknowledged.items():
        assert sequences <= set(held[stream]), stream
    assert all(
        {ind_of(held[stream][sequence]) for sequence in sequences} == set(inds)
        for stream, sequences in acknowledged.items()
    )
