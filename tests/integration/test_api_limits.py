"""The API's limits against the real broker and Kinesis server of the stack: record sizes as the
producer and the broker count them, records per request, and Kinesis's request size."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from flask.testing import FlaskClient

from pipeline.config import Settings
from pipeline.ingest.app import create_app, ingest_of
from pipeline.ingest.kafka import MAX_KEY_AND_VALUE_BYTES
from pipeline.ingest.schemas import MAX_KINESIS_REQUEST_BYTES
from tests.support.api import (
    KAFKA_JSON,
    apart,
    assert_error,
    geo_row,
    high_watermarks,
    latest_iterators,
    pin_row,
    post_topic,
    put_stream,
    read_kafka,
    records_after,
)

pytestmark = pytest.mark.integration


def _keyed_body(total_bytes: int) -> dict[str, Any]:
    """One geo record whose JSON key + JSON value are exactly `total_bytes` long."""
    value = geo_row(301)
    value_bytes = len(json.dumps(value, separators=(",", ":")).encode())
    key = "k" * (total_bytes - value_bytes - 2)  # 2: the quotes of the JSON string
    return {"records": [{"key": key, "value": value}]}


def test_keyed_record_at_the_producer_limit_is_written(stack: Settings) -> None:
    topic = stack.topics["geo"]
    body = _keyed_body(MAX_KEY_AND_VALUE_BYTES)

    response = post_topic(stack, topic, body)

    assert response.status_code == 200, response.text[:500]
    entry = response.json()["offsets"][0]
    key, value = read_kafka(stack, topic, entry["partition"], entry["offset"])
    assert key == body["records"][0]["key"] and value == geo_row(301)


def test_keyed_record_one_byte_over_the_producer_limit_is_422(stack: Settings) -> None:
    """Under the old 1,000,000-byte check but over what librdkafka accepts: was a 500."""
    topic = stack.topics["geo"]
    before = high_watermarks(stack, topic)
    body = _keyed_body(MAX_KEY_AND_VALUE_BYTES + 1)
    body["records"].insert(0, {"value": geo_row(300)})

    error = assert_error(post_topic(stack, topic, body), 422, 42201)

    assert [entry["index"] for entry in error["errors"]] == [1]
    reason = error["errors"][0]["reason"]
    assert f"{MAX_KEY_AND_VALUE_BYTES + 1} bytes" in reason
    assert str(MAX_KEY_AND_VALUE_BYTES) in reason
    assert high_watermarks(stack, topic) == before


@pytest.fixture(scope="module")
def small_topic_client(stack: Settings) -> Iterator[tuple[FlaskClient, str]]:
    """An app whose pin topic exists in the broker with max.message.bytes=2000: the broker, not
    the producer, refuses big records there."""
    settings = stack.model_copy(update={"topic_prefix": "limits"})
    topic = settings.topics["pin"]
    admin = AdminClient(stack.kafka_client_config())
    if topic not in admin.list_topics(timeout=10).topics:
        created = admin.create_topics([NewTopic(topic, 1, 1, config={"max.message.bytes": "2000"})])
        created[topic].result(timeout=30)
    app = create_app(settings)
    yield app.test_client(), topic
    ingest_of(app).close()


def test_record_the_broker_refuses_as_too_large_is_413(
    small_topic_client: tuple[FlaskClient, str],
) -> None:
    client, topic = small_topic_client
    big = {**pin_row(311), "description": "d" * 5_000}

    response = client.post(
        f"/topics/{topic}", json={"records": [{"value": big}]}, headers={"Content-Type": KAFKA_JSON}
    )

    assert response.status_code == 413, response.text
    assert response.json is not None and response.json["error_code"] == 41301
    assert "too large" in response.json["message"]
    # the producer keeps working for records that fit
    small = client.post(
        f"/topics/{topic}",
        json={"records": [{"value": pin_row(312)}]},
        headers={"Content-Type": KAFKA_JSON},
    )
    assert small.status_code == 200, small.text


def test_produce_takes_at_most_the_record_limit(stack: Settings) -> None:
    topic = stack.topics["geo"]
    limit = stack.api_max_records
    rows = [{"value": {**geo_row(i), "country": "c"}} for i in range(limit + 1)]
    before = high_watermarks(stack, topic)

    error = assert_error(post_topic(stack, topic, {"records": rows}), 422, 42202)
    assert f"{limit + 1} records; at most {limit} per request" in error["message"]
    assert high_watermarks(stack, topic) == before

    accepted = post_topic(stack, topic, {"records": rows[:limit]})
    assert accepted.status_code == 200, accepted.text[:500]
    assert len(accepted.json()["offsets"]) == limit


def test_record_limit_follows_the_setting(stack: Settings) -> None:
    app = create_app(apart(stack.model_copy(update={"api_max_records": 2})))
    try:
        client = app.test_client()
        url = f"/topics/{stack.topics['geo']}"
        headers = {"Content-Type": KAFKA_JSON}
        rows = [{"value": geo_row(i)} for i in (321, 322, 323)]
        refused = client.post(url, json={"records": rows}, headers=headers)
        assert refused.status_code == 422 and refused.json is not None
        assert "at most 2 per request" in refused.json["message"]
        assert client.post(url, json={"records": rows[:2]}, headers=headers).status_code == 200
        document = client.get("/openapi/openapi.json").json
        assert document is not None
        schema = document["components"]["schemas"]["GeoProduceRequest"]
        assert schema["properties"]["records"]["maxItems"] == 2
    finally:
        ingest_of(app).close()


def test_put_records_takes_at_most_500_records(stack: Settings) -> None:
    stream = stack.streams["geo"]
    iterators = latest_iterators(stack, stream)
    body = {"Records": [{"Data": geo_row(i), "PartitionKey": "p"} for i in range(501)]}

    error = assert_error(put_stream(stack, stream, "records", body), 422, 42202)

    assert "501 records; at most 500 per request" in error["message"]
    assert records_after(stack, iterators) == []


def test_put_records_over_5_mib_in_all_is_413(stack: Settings) -> None:
    """Kinesis takes at most 5 MiB of data + partition keys per PutRecords; reachable when the
    API's body limit is raised above it."""
    app = create_app(apart(stack.model_copy(update={"api_max_body_bytes": 16 * 2**20})))
    stream = stack.streams["pin"]
    big = {**pin_row(331), "description": "d" * 10_000, "tag_list": "t" * 10_000}
    count = MAX_KINESIS_REQUEST_BYTES // 20_000 + 10
    body = {"Records": [{"Data": {**big, "index": i}, "PartitionKey": "p"} for i in range(count)]}
    iterators = latest_iterators(stack, stream)
    try:
        response = app.test_client().put(f"/streams/{stream}/records", json=body)
    finally:
        ingest_of(app).close()

    assert response.status_code == 413, response.text[:500]
    assert response.json is not None and response.json["error_code"] == 41301
    assert str(MAX_KINESIS_REQUEST_BYTES) in response.json["message"]
    assert records_after(stack, iterators) == []
