"""What the S3 sink landed, read back for tests: objects, their keys, Kafka's end offsets."""

from __future__ import annotations

import time
import uuid

import boto3
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from pipeline.config import Settings
from pipeline.landing import topic_prefix
from tests.support.waiting import wait_for


# -- reading the lake ---------------------------------------------------------------------------
def landed_objects(settings: Settings, topic: str) -> dict[str, list[bytes]]:
    """Every landed object of a topic: key → its lines.

    Read again from the listing when a listed object is missing by the time it is read: seen
    once under load with S3Proxy's filesystem backend while the sink rewrote an open window."""
    s3 = boto3.client("s3", **settings.boto3_kwargs("s3"))
    for attempt in range(5):
        objects: dict[str, list[bytes]] = {}
        paginator = s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=settings.lake_bucket, Prefix=topic_prefix(topic)):
                for item in page.get("Contents", []):
                    response = s3.get_object(Bucket=settings.lake_bucket, Key=item["Key"])
                    objects[item["Key"]] = response["Body"].read().splitlines()
        except s3.exceptions.NoSuchKey:
            time.sleep(0.2 * (attempt + 1))
            continue
        return objects
    raise AssertionError(f"objects of {topic} kept vanishing between listing and reading")


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    consumer = Consumer({**settings.kafka_client_config(), "group.id": "landing-test-probe"})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in metadata.partitions
        }
    finally:
        consumer.close()


def record_offsets(settings: Settings, topic: str) -> dict[int, list[int]]:
    """The offsets of the committed records of `topic` per partition, ascending: what the sink
    lands. Read `read_committed`, so neither aborted records nor the commit markers of the API's
    transactions, which take offsets too, are among them."""
    ends = end_offsets(settings, topic)
    consumer = Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": f"landing-test-{uuid.uuid4().hex[:6]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
    found: dict[int, list[int]] = {p: [] for p in ends}

    def read_to_the_end() -> bool:
        message = consumer.poll(1)
        if message is not None and not message.error():
            found[int(message.partition() or 0)].append(int(message.offset() or 0))
        positions = consumer.position([TopicPartition(topic, p) for p in ends])
        at = {position.partition: position.offset for position in positions}
        return all(end == 0 or at[p] >= end for p, end in ends.items())

    try:
        wait_for(read_to_the_end, 120, f"{topic} read to its end", interval_s=0)
    finally:
        consumer.close()
    return {p: sorted(offsets) for p, offsets in found.items()}


def landed_line_count(settings: Settings, topics: list[str]) -> int:
    return sum(len(lines) for t in topics for lines in landed_objects(settings, t).values())
