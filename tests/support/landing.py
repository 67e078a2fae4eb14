"""What the S3 sink landed, read back for tests: objects, their keys, Kafka's end offsets."""

from __future__ import annotations

import time

import boto3
from confluent_kafka import Consumer, TopicPartition

from pipeline.config import Settings


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
            for page in paginator.paginate(Bucket=settings.lake_bucket, Prefix=f"topics/{topic}/"):
                for item in page.get("Contents", []):
                    response = s3.get_object(Bucket=settings.lake_bucket, Key=item["Key"])
                    objects[item["Key"]] = response["Body"].read().splitlines()
        except s3.exceptions.NoSuchKey:
            time.sleep(0.2 * (attempt + 1))
            continue
        return objects
    raise AssertionError(f"objects of {topic} kept vanishing between listing and reading")


def object_key(topic: str, partition: int, offset: int, window: int) -> str:
    start = offset - offset % window
    return f"topics/{topic}/partition={partition}/{topic}+{partition}+{start:020d}.json"


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


def landed_line_count(settings: Settings, topics: list[str]) -> int:
    return sum(len(lines) for t in topics for lines in landed_objects(settings, t).values())
