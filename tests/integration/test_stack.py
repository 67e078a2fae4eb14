"""The foundation's stack against its real processes: broker, Connect, S3 and Kinesis servers."""

from __future__ import annotations

import json
import time
import uuid

import boto3
import pytest
import requests
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from pipeline.config import Settings
from pipeline.stack import stack as local_stack

pytestmark = pytest.mark.integration


def test_every_component_reports_ready(stack: Settings) -> None:
    statuses = local_stack.status(stack)
    assert {s.name for s in statuses} >= {"s3", "kinesis", "kafka", "connect"}
    not_ready = [s.name for s in statuses if not (s.state == "RUNNING" and s.ready)]
    assert not not_ready, f"not ready: {not_ready}"


def test_provisioned_topics_bucket_and_streams(stack: Settings) -> None:
    topics = AdminClient(stack.kafka_client_config()).list_topics(timeout=10).topics
    for topic in stack.topics.values():
        assert topic in topics
        assert len(topics[topic].partitions) == stack.kafka_topic_partitions
    s3 = boto3.client("s3", **stack.boto3_kwargs("s3"))
    assert stack.lake_bucket in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    kinesis = boto3.client("kinesis", **stack.boto3_kwargs("kinesis"))
    assert set(stack.streams.values()) <= set(kinesis.list_streams()["StreamNames"])


def _group_consumer(settings: Settings, group: str, topic: str) -> Consumer:
    consumer = Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    return consumer


def _poll_values(consumer: Consumer, count: int, timeout_s: float = 30) -> list[bytes]:
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while len(values) < count and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        values.append(message.value())
        if len(values) == count:
            # commit exactly up to the last record handed to the application
            consumer.commit(message=message, asynchronous=False)
    return values


def test_produce_consume_with_committed_offsets_across_consumer_restart(stack: Settings) -> None:
    topic = f"test.roundtrip-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(stack.kafka_client_config())
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    payloads = [json.dumps({"index": i}).encode() for i in range(10)]
    producer = Producer({**stack.kafka_client_config(), "enable.idempotence": True, "acks": "all"})
    for payload in payloads:
        producer.produce(topic, payload)
    assert producer.flush(30) == 0

    group = f"group-{uuid.uuid4().hex[:8]}"
    first = _group_consumer(stack, group, topic)
    assert _poll_values(first, 4) == payloads[:4]
    first.close()

    restarted = _group_consumer(stack, group, topic)
    resumed = _poll_values(restarted, 6)
    restarted.close()
    assert resumed == payloads[4:], "a restarted consumer resumes at the committed offset"


def test_connect_rest_api_lists_the_s3_sink_plugin(stack: Settings) -> None:
    root = requests.get(stack.connect_url, timeout=10)
    assert root.status_code == 200 and "version" in root.json()
    plugins = requests.get(f"{stack.connect_url}/connector-plugins", timeout=10).json()
    sink_classes = [p["class"] for p in plugins if p["type"] == "sink"]
    assert any("s3" in cls.lower() for cls in sink_classes), sink_classes


def test_s3_put_get_list_through_the_s3_server(stack: Settings) -> None:
    s3 = boto3.client("s3", **stack.boto3_kwargs("s3"))
    assert s3.meta.endpoint_url == stack.endpoint_url("s3") == f"http://127.0.0.1:{stack.s3_port}"
    key = f"probe/{uuid.uuid4().hex}.json"
    s3.put_object(Bucket=stack.lake_bucket, Key=key, Body=b'{"ok": true}\n')
    body = s3.get_object(Bucket=stack.lake_bucket, Key=key)["Body"].read()
    assert body == b'{"ok": true}\n'
    listed = s3.list_objects_v2(Bucket=stack.lake_bucket, Prefix="probe/")["Contents"]
    assert key in {obj["Key"] for obj in listed}


def test_kinesis_put_get_through_the_kinesis_server(stack: Settings) -> None:
    kinesis = boto3.client("kinesis", **stack.boto3_kwargs("kinesis"))
    assert kinesis.meta.endpoint_url == stack.endpoint_url("kinesis")
    assert kinesis.meta.endpoint_url == f"http://127.0.0.1:{stack.kinesis_port}"
    stream = stack.streams["geo"]
    data = json.dumps({"ind": 7, "probe": uuid.uuid4().hex}).encode()
    put = kinesis.put_record(StreamName=stream, Data=data, PartitionKey="7")
    iterator = kinesis.get_shard_iterator(
        StreamName=stream,
        ShardId=put["ShardId"],
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=put["SequenceNumber"],
    )["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator, Limit=10)["Records"]
    assert records and records[0]["Data"] == data
    assert records[0]["SequenceNumber"] == put["SequenceNumber"]
