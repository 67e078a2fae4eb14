"""Create what data contract §2.5 names — the lake bucket, 3 topics, 3 streams — idempotently."""

from __future__ import annotations

import time

import boto3
from botocore.exceptions import ClientError
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from pipeline.config import Settings


def ensure_bucket(settings: Settings) -> None:
    s3 = boto3.client("s3", **settings.boto3_kwargs("s3"))
    try:
        s3.head_bucket(Bucket=settings.lake_bucket)
    except ClientError:
        kwargs: dict[str, object] = {"Bucket": settings.lake_bucket}
        if settings.aws_region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": settings.aws_region}
        s3.create_bucket(**kwargs)  # type: ignore[arg-type]


def api_requests_topic(settings: Settings) -> NewTopic:
    """The API's Idempotency-Key answers: one partition (a few hundred bytes per keyed request,
    read whole at the API's start), compacted by key and deleted after api_idempotency_hours."""
    return NewTopic(
        settings.api_requests_topic,
        1,
        settings.kafka_replication_factor,
        config={
            "cleanup.policy": "compact,delete",
            "retention.ms": str(int(settings.api_idempotency_hours * 3_600_000)),
        },
    )


def ensure_topics(settings: Settings, extra: list[str] | None = None) -> list[str]:
    """Create the three table topics, the API's requests topic (and any `extra`), returning
    those that were missing."""
    admin = AdminClient(settings.kafka_client_config())
    wanted = [*settings.topics.values(), settings.api_requests_topic, *(extra or [])]
    existing = set(admin.list_topics(timeout=10).topics)
    missing = [name for name in wanted if name not in existing]
    if missing:
        futures = admin.create_topics(
            [
                api_requests_topic(settings)
                if name == settings.api_requests_topic
                else NewTopic(
                    name, settings.kafka_topic_partitions, settings.kafka_replication_factor
                )
                for name in missing
            ]
        )
        for name, future in futures.items():
            try:
                future.result(timeout=30)
            except Exception as error:  # a concurrent `up` may have created it first
                if "TOPIC_ALREADY_EXISTS" not in str(error):
                    raise RuntimeError(f"could not create topic {name}: {error}") from error
    return missing


def ensure_streams(settings: Settings, timeout_s: float = 30) -> list[str]:
    """Create the three Kinesis streams and wait until they are ACTIVE."""
    kinesis = boto3.client("kinesis", **settings.boto3_kwargs("kinesis"))
    existing = set(kinesis.list_streams()["StreamNames"])
    missing = [name for name in settings.streams.values() if name not in existing]
    for name in missing:
        kinesis.create_stream(StreamName=name, ShardCount=settings.kinesis_shards)
    deadline = time.monotonic() + timeout_s
    for name in settings.streams.values():
        while (
            kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
                "StreamStatus"
            ]
            != "ACTIVE"
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kinesis stream {name} did not become ACTIVE")
            time.sleep(0.5)
    return missing


def describe_created(created: dict[str, list[str]]) -> str:
    """`created topics a, b; streams c` for what `provision` made, or `already there`."""
    made = [f"{kind} {', '.join(names)}" for kind, names in created.items() if names]
    return "created " + "; ".join(made) if made else "already there"


def provision(settings: Settings) -> dict[str, list[str]]:
    """Everything the pipeline writes to, created once; re-running changes nothing."""
    ensure_bucket(settings)
    return {"topics": ensure_topics(settings), "streams": ensure_streams(settings)}
