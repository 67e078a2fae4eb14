"""The API when its sinks go away and come back, and when it shuts down."""

from __future__ import annotations

import time
from pathlib import Path

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from pipeline.config import Settings
from pipeline.ingest.app import create_app, ingest_of
from pipeline.ingest.kafka import KafkaDelivery, OutgoingRecord
from pipeline.stack.components import kafka_ready
from pipeline.stack.supervisor import Supervisor
from tests.integration.test_api import (
    api_process,
    assert_error,
    free_port,
    geo_row,
    post_topic,
    read_kafka,
)

pytestmark = pytest.mark.integration


def _wait(condition: str, check: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {condition}"
        time.sleep(0.5)


def test_broker_stopped_gives_503_quickly_and_recovers_without_restart(stack: Settings) -> None:
    supervisor = Supervisor(stack)
    api_pid = supervisor.info()["api"]["pid"]
    topic = stack.topics["geo"]
    body = {"records": [{"value": geo_row(81)}]}
    assert post_topic(stack, topic, body).status_code == 200
    try:
        supervisor.stop("kafka")

        started = time.monotonic()
        response = post_topic(stack, topic, body)
        elapsed = time.monotonic() - started
        error = assert_error(response, 503, 50003)
        assert "Kafka" in error["message"]
        # answered within the configured timeout (plus HTTP overhead), never hanging
        assert elapsed < stack.api_timeout_s + 3, elapsed

        ready = requests.get(f"{stack.api_url}/readyz", timeout=30)
        assert ready.status_code == 503
        assert ready.json()["checks"]["kafka"]["ok"] is False
        assert requests.get(f"{stack.api_url}/healthz", timeout=5).status_code == 200
    finally:
        supervisor.start("kafka")
        _wait("the broker", lambda: kafka_ready(stack), 120)

    deadline = time.monotonic() + 90
    while True:
        response = post_topic(stack, topic, body)
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        assert_error(response, 503, 50003)
        time.sleep(1)
    assert response.status_code == 200, response.text
    entry = response.json()["offsets"][0]
    assert read_kafka(stack, topic, entry["partition"], entry["offset"]) == (None, geo_row(81))
    assert supervisor.info()["api"]["pid"] == api_pid  # recovered by itself
    assert requests.get(f"{stack.api_url}/readyz", timeout=30).status_code == 200


def test_kinesis_unreachable_gives_503_and_recovers(stack: Settings) -> None:
    """An API whose Kinesis endpoint is down (a private emulator, so the stack's stays up)."""
    port = free_port()
    settings = stack.model_copy(
        update={"aws_endpoint_url": f"http://127.0.0.1:{port}", "api_timeout_s": 2.0}
    )
    app = create_app(settings)
    client = app.test_client()
    stream = settings.streams["geo"]
    body = {"Data": geo_row(91), "PartitionKey": "p"}

    started = time.monotonic()
    response = client.put(f"/streams/{stream}/record", json=body)
    elapsed = time.monotonic() - started
    assert response.status_code == 503, response.text
    assert response.json is not None and response.json["error_code"] == 50301
    assert elapsed < settings.api_timeout_s + 3, elapsed
    assert client.get("/readyz").status_code == 503

    emulator = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    emulator.start()
    try:
        emulator_client = boto3.client("kinesis", **settings.boto3_kwargs())
        emulator_client.create_stream(StreamName=stream, ShardCount=1)
        _wait(
            "the stream",
            lambda: (
                emulator_client.describe_stream_summary(StreamName=stream)[
                    "StreamDescriptionSummary"
                ]["StreamStatus"]
                == "ACTIVE"
            ),
            30,
        )
        response = client.put(f"/streams/{stream}/record", json=body)
        assert response.status_code == 200, response.text
        assert response.json is not None and response.json["SequenceNumber"]
    finally:
        emulator.stop()
        ingest_of(app).close()


def test_close_flushes_records_still_in_flight(stack: Settings) -> None:
    delivery = KafkaDelivery(stack)
    topic = stack.topics["geo"]
    batch = delivery.send(
        topic,
        [OutgoingRecord(value=b'{"ind": 101}'), OutgoingRecord(value=b'{"ind": 102}')],
        deadline=time.monotonic() + 10,
    )

    assert delivery.close() == 0

    assert batch.done.is_set()  # delivered by close(), nobody waited for it before
    offsets = delivery.wait(topic, batch, deadline=time.monotonic())
    for number, (partition, offset) in zip((101, 102), offsets, strict=True):
        assert read_kafka(stack, topic, partition, offset) == (None, {"ind": number})


def test_gunicorn_shutdown_flushes_the_producer(stack: Settings, tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    with api_process(stack, log) as (url, process):
        response = requests.post(
            f"{url}/topics/{stack.topics['geo']}",
            json={"records": [{"value": geo_row(111)}]},
            headers={"Content-Type": "application/vnd.kafka.json.v2+json"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
    assert process.returncode == 0, log.read_text()
    assert "kafka producer closed; 0 records undelivered" in log.read_text()
