"""The ingestion API in tests: rows as the emulator sends them (data contract §1, placeholders
included), requests to the API, reading back what it wrote (Kafka, Kinesis), and a second API
process for tests that must not disturb the stack's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import requests
from confluent_kafka import Consumer, TopicPartition

from pipeline.config import Settings
from tests.support.ports import free_port

KAFKA_JSON = "application/vnd.kafka.json.v2+json"


def pin_row(ind: int = 7528) -> dict[str, Any]:
    return {
        "index": ind,
        "unique_id": "fbe53c66-3442-4773-b19e-d3ec6f54dddf",
        "title": "No Title Data Available",
        "description": "No description available Story format",
        "poster_name": "User Info Error",
        "follower_count": "User Info Error",
        "tag_list": "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e",
        "is_image_or_video": "multi-video(story page format)",
        "image_src": "Image src error.",
        "downloaded": 0,
        "save_location": "Local save in /data/mens-fashion",
        "category": "mens-fashion",
    }


def geo_row(ind: int = 7528) -> dict[str, Any]:
    return {
        "ind": ind,
        "timestamp": "2020-08-28T03:52:47",
        "latitude": -89.9787,
        "longitude": -173.293,
        "country": "Antarctica (the territory South of 60 deg S)",
    }


def user_row(ind: int = 7528) -> dict[str, Any]:
    return {
        "ind": ind,
        "first_name": "Abigail",
        "last_name": "Ali",
        "age": 20,
        "date_joined": "2015-10-24 11:23:51",
    }


ROWS = {"pin": pin_row, "geo": geo_row, "user": user_row}


def post_topic(
    settings: Settings, topic: str, body: Any, content_type: str = KAFKA_JSON
) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(
        f"{settings.api_url}/topics/{topic}",
        data=data,
        headers={"Content-Type": content_type} if content_type else {},
        timeout=60,
    )


def put_stream(
    settings: Settings, stream: str, suffix: str, body: Any, content_type: str = "application/json"
) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.put(
        f"{settings.api_url}/streams/{stream}/{suffix}",
        data=data,
        headers={"Content-Type": content_type} if content_type else {},
        timeout=60,
    )


def consumer(settings: Settings) -> Consumer:
    return Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": f"test-api-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )


def read_kafka(settings: Settings, topic: str, partition: int, offset: int) -> tuple[Any, Any]:
    """(key, value) of the message at exactly this partition and offset, JSON-decoded."""
    reader = consumer(settings)
    try:
        reader.assign([TopicPartition(topic, partition, offset)])
        for _ in range(30):
            message = reader.poll(1.0)
            if message is None:
                continue
            assert message.error() is None, message.error()
            assert (message.partition(), message.offset()) == (partition, offset)
            key = message.key()
            return (json.loads(key) if key else None), json.loads(message.value() or b"")
        raise AssertionError(f"no message at {topic}[{partition}]@{offset}")
    finally:
        reader.close()


def high_watermarks(settings: Settings, topic: str) -> list[int]:
    reader = consumer(settings)
    try:
        partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
        return [
            reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in sorted(partitions)
        ]
    finally:
        reader.close()


def kinesis(settings: Settings) -> Any:
    return boto3.client("kinesis", **settings.boto3_kwargs("kinesis"))


def read_kinesis(settings: Settings, stream: str, shard: str, sequence: str) -> Any:
    client = kinesis(settings)
    iterator = client.get_shard_iterator(
        StreamName=stream,
        ShardId=shard,
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=sequence,
    )["ShardIterator"]
    record = client.get_records(ShardIterator=iterator, Limit=1)["Records"][0]
    assert record["SequenceNumber"] == sequence
    return json.loads(record["Data"])


def latest_iterators(settings: Settings, stream: str) -> list[str]:
    client = kinesis(settings)
    shards = client.list_shards(StreamName=stream)["Shards"]
    return [
        client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
        )["ShardIterator"]
        for shard in shards
    ]


def records_after(settings: Settings, iterators: list[str]) -> list[Any]:
    client = kinesis(settings)
    return [r for it in iterators for r in client.get_records(ShardIterator=it)["Records"]]


def assert_error(response: requests.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["error_code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body


@contextmanager
def api_process(
    settings: Settings, log_path: Path, **environment: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`pinpipe api` (gunicorn) on a free port with extra PINPIPE_* settings; SIGTERM at exit.

    Its Kafka transactional.id is its own (unless `PINPIPE_API_TRANSACTIONAL_ID` is given), so it
    does not fence the stack's API, which has the same topic prefix."""
    port = free_port()
    environment.setdefault("PINPIPE_API_TRANSACTIONAL_ID", own_transactional_id(settings))
    env = {**os.environ, **environment, "PINPIPE_API_PORT": str(port)}
    env.pop("PINPIPE_API_URL", None)
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "api", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, log_path.read_text()
                try:
                    if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                assert time.monotonic() < deadline, "API process did not start"
                time.sleep(0.2)
            yield url, process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def own_transactional_id(settings: Settings) -> str:
    """A Kafka transactional.id no other API uses: the stack's API has `<prefix>-api`, and two
    APIs with one id fence each other at each transaction."""
    return f"{settings.topic_prefix}-api-test-{uuid.uuid4().hex[:8]}"


def apart(settings: Settings) -> Settings:
    """`settings` with a transactional.id of its own, for an API built in the test process."""
    return settings.model_copy(update={"api_transactional_id": own_transactional_id(settings)})
