"""The ingestion API of the running stack (gunicorn on the test port) against the real broker and
the S3 and Kinesis servers: success and error shapes, records readable where the API says they are,
and nothing written for a rejected request."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
import requests

from pipeline.config import Settings
from pipeline.stack.provision import ensure_streams
from tests.support.api import (
    KAFKA_JSON,
    ROWS,
    assert_error,
    geo_row,
    high_watermarks,
    kinesis,
    latest_iterators,
    pin_row,
    post_topic,
    put_stream,
    read_kafka,
    read_kinesis,
    records_after,
    user_row,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(stack: Settings) -> Settings:
    assert requests.get(f"{stack.api_url}/healthz", timeout=5).status_code == 200
    return stack


# -- Kafka: success --------------------------------------------------------------------------------


@pytest.mark.parametrize("table", ["pin", "geo", "user"])
def test_produce_returns_real_offsets_in_order(api: Settings, table: str) -> None:
    topic = api.topics[table]
    rows = [ROWS[table](ind) for ind in (11, 12, 13)]
    response = post_topic(api, topic, {"records": [{"value": row} for row in rows]})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["key_schema_id"] is None and body["value_schema_id"] is None
    assert len(body["offsets"]) == 3
    for row, entry in zip(rows, body["offsets"], strict=True):
        assert entry["error_code"] is None and entry["error"] is None
        key, value = read_kafka(api, topic, entry["partition"], entry["offset"])
        assert key is None
        assert value == row


def test_produce_honours_key_and_partition(api: Settings) -> None:
    topic = api.topics["geo"]
    records = [
        {"value": geo_row(21), "key": "user-21", "partition": 2},
        {"value": geo_row(22), "key": {"ind": 22}, "partition": 0},
    ]
    response = post_topic(api, topic, {"records": records})

    assert response.status_code == 200, response.text
    offsets = response.json()["offsets"]
    assert [entry["partition"] for entry in offsets] == [2, 0]
    assert read_kafka(api, topic, 2, offsets[0]["offset"]) == ("user-21", geo_row(21))
    assert read_kafka(api, topic, 0, offsets[1]["offset"]) == ({"ind": 22}, geo_row(22))


def test_offsets_follow_request_order_across_partitions(api: Settings) -> None:
    topic = api.topics["user"]
    records = [
        {"value": user_row(200 + i), **({"partition": i % 3} if i % 2 else {})} for i in range(9)
    ]
    response = post_topic(api, topic, {"records": records})

    assert response.status_code == 200, response.text
    offsets = response.json()["offsets"]
    for i, (record, entry) in enumerate(zip(records, offsets, strict=True)):
        if "partition" in record:
            assert entry["partition"] == record["partition"]
        assert read_kafka(api, topic, entry["partition"], entry["offset"])[1]["ind"] == 200 + i


def test_original_emulator_payload_is_accepted(api: Settings) -> None:
    """The public emulator: json.dumps(..., default=str) of DB rows (datetimes with a space)."""
    geo = {**geo_row(31), "timestamp": datetime(2021, 3, 4, 5, 6, 7)}
    user = {**user_row(31), "date_joined": datetime(2016, 1, 2, 3, 4, 5)}
    for table, row in (("pin", pin_row(31)), ("geo", geo), ("user", user)):
        payload = json.dumps({"records": [{"value": row}]}, default=str)
        response = requests.request(
            "POST",
            f"{api.api_url}/topics/{api.topics[table]}",
            headers={"Content-Type": KAFKA_JSON},
            data=payload,
            timeout=30,
        )
        assert response.status_code == 200, response.text
        entry = response.json()["offsets"][0]
        _, value = read_kafka(api, api.topics[table], entry["partition"], entry["offset"])
        assert value == json.loads(json.dumps(row, default=str))


@pytest.mark.parametrize(
    "content_type", ["application/vnd.kafka.v2+json", f"{KAFKA_JSON}; charset=utf-8"]
)
def test_produce_accepts_the_other_documented_content_types(
    api: Settings, content_type: str
) -> None:
    response = post_topic(
        api, api.topics["user"], {"records": [{"value": user_row()}]}, content_type
    )
    assert response.status_code == 200, response.text


def test_integral_floats_are_written_as_integers(api: Settings) -> None:
    row = {**user_row(41), "ind": 41.0, "age": 33.0}
    response = post_topic(api, api.topics["user"], {"records": [{"value": row}]})
    assert response.status_code == 200, response.text
    entry = response.json()["offsets"][0]
    _, value = read_kafka(api, api.topics["user"], entry["partition"], entry["offset"])
    assert value["ind"] == 41 and isinstance(value["ind"], int)
    assert value["age"] == 33 and isinstance(value["age"], int)


# -- Kafka: rejected requests write nothing --------------------------------------------------------


def _valid_geo_body() -> dict[str, Any]:
    return {"records": [{"value": geo_row(1)}, {"value": geo_row(2)}]}


def _with(index: int, **changes: Any) -> dict[str, Any]:
    body = _valid_geo_body()
    body["records"][index]["value"].update(changes)
    return body


def _without(field: str) -> dict[str, Any]:
    body = _valid_geo_body()
    del body["records"][1]["value"][field]
    return body


VALID = json.dumps(_valid_geo_body()).encode()

# (id, body (dict or raw bytes), content type, HTTP status, error_code, bad record indexes)
INVALID_PRODUCE: list[tuple[str, Any, str, int, int, list[int] | None]] = [
    ("json-content-type", VALID, "application/json", 415, 415, None),
    ("text-plain", VALID, "text/plain", 415, 415, None),
    ("no-content-type", VALID, "", 415, 415, None),
    ("binary-embedded-format", VALID, "application/vnd.kafka.binary.v2+json", 415, 415, None),
    ("latin-1-charset", VALID, f"{KAFKA_JSON}; charset=latin-1", 415, 415, None),
    ("malformed-json", b'{"records": [', KAFKA_JSON, 400, 40001, None),
    ("empty-body", b"", KAFKA_JSON, 400, 40001, None),
    ("nan-literal", VALID.replace(b"-89.9787", b"NaN"), KAFKA_JSON, 422, 42201, [0, 1]),
    (
        "non-utf8-bytes",
        VALID.replace(b"Antarctica", b"Antarc\xfftica"),
        KAFKA_JSON,
        400,
        40001,
        None,
    ),
    ("utf16-body", json.dumps(_valid_geo_body()).encode("utf-16"), KAFKA_JSON, 400, 40001, None),
    ("body-over-limit", b'{"records": [' + b" " * (6 * 2**20) + b"]}", KAFKA_JSON, 413, 413, None),
    ("empty-record-list", {"records": []}, KAFKA_JSON, 422, 42202, None),
    ("no-records-field", {"values": [{"value": geo_row()}]}, KAFKA_JSON, 422, 42202, None),
    ("records-not-a-list", {"records": {"value": geo_row()}}, KAFKA_JSON, 422, 42202, None),
    ("body-not-an-object", [geo_row()], KAFKA_JSON, 422, 42202, None),
    (
        "avro-schema-field",
        {**_valid_geo_body(), "value_schema": "{}"},
        KAFKA_JSON,
        422,
        42202,
        None,
    ),
    (
        "record-without-value",
        {"records": [{"value": geo_row()}, {"key": "k"}]},
        KAFKA_JSON,
        422,
        42201,
        [1],
    ),
    ("record-not-an-object", {"records": [{"value": geo_row()}, 5]}, KAFKA_JSON, 422, 42201, [1]),
    ("missing-field", _without("country"), KAFKA_JSON, 422, 42201, [1]),
    ("missing-id", _without("ind"), KAFKA_JSON, 422, 42201, [1]),
    ("id-as-text", _with(0, ind="1"), KAFKA_JSON, 422, 42201, [0]),
    ("negative-id", _with(1, ind=-1), KAFKA_JSON, 422, 42201, [1]),
    ("id-as-bool", _with(0, ind=True), KAFKA_JSON, 422, 42201, [0]),
    ("id-fractional", _with(0, ind=1.5), KAFKA_JSON, 422, 42201, [0]),
    ("latitude-as-text", _with(0, latitude="-5.3"), KAFKA_JSON, 422, 42201, [0]),
    ("latitude-out-of-range", _with(1, latitude=90.01), KAFKA_JSON, 422, 42201, [1]),
    ("longitude-out-of-range", _with(0, longitude=-180.5), KAFKA_JSON, 422, 42201, [0]),
    ("null-value", _with(0, country=None), KAFKA_JSON, 422, 42201, [0]),
    ("bad-timestamp-format", _with(0, timestamp="28/08/2020 03:52"), KAFKA_JSON, 422, 42201, [0]),
    ("impossible-date", _with(1, timestamp="2020-02-30T00:00:00"), KAFKA_JSON, 422, 42201, [1]),
    ("extra-large-value", _with(0, country="x" * 100_000), KAFKA_JSON, 422, 42201, [0]),
    ("unknown-field", _with(1, lattitude=1.0), KAFKA_JSON, 422, 42201, [1]),
    ("lone-surrogate", _with(0, country="\ud800"), KAFKA_JSON, 400, 40001, None),
    (
        "partition-does-not-exist",
        {"records": [{"value": geo_row()}, {"value": geo_row(), "partition": 99}]},
        KAFKA_JSON,
        422,
        42201,
        [1],
    ),
    (
        "negative-partition",
        {"records": [{"value": geo_row(), "partition": -1}]},
        KAFKA_JSON,
        422,
        42201,
        [0],
    ),
    (
        "row-of-another-table",
        {"records": [{"value": geo_row()}, {"value": user_row()}]},
        KAFKA_JSON,
        422,
        42201,
        [1],
    ),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code", "bad"),
    [case[1:] for case in INVALID_PRODUCE],
    ids=[case[0] for case in INVALID_PRODUCE],
)
def test_invalid_produce_is_rejected_and_writes_nothing(
    api: Settings, body: Any, content_type: str, status: int, code: int, bad: list[int] | None
) -> None:
    topic = api.topics["geo"]
    before = high_watermarks(api, topic)

    response = post_topic(api, topic, body, content_type)

    error = assert_error(response, status, code)
    if bad is not None:
        assert [entry["index"] for entry in error["errors"]] == bad
        assert all(entry["reason"] for entry in error["errors"])
    assert high_watermarks(api, topic) == before
    # the API keeps serving after every kind of bad input
    assert post_topic(api, topic, {"records": [{"value": geo_row()}]}).status_code == 200


def test_every_bad_record_is_listed_with_its_reasons(api: Settings) -> None:
    body = {
        "records": [
            {"value": {**geo_row(), "latitude": 91, "timestamp": "yesterday"}},
            {"value": geo_row()},
            {"value": {**geo_row(), "country": 5}},
        ]
    }
    error = assert_error(post_topic(api, api.topics["geo"], body), 422, 42201)

    assert [entry["index"] for entry in error["errors"]] == [0, 2]
    first = error["errors"][0]["reason"]
    assert "value.latitude" in first and "value.timestamp" in first and "ISO 8601" in first
    assert "value.country" in error["errors"][1]["reason"]
    assert "2 of 3 records" in error["message"]


def test_unknown_topic_is_404(api: Settings) -> None:
    error = assert_error(post_topic(api, "test.nope", _valid_geo_body()), 404, 40401)
    assert "test.nope" in error["message"]


# -- Kinesis ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("table", ["pin", "geo", "user"])
def test_put_record_lands_at_its_sequence_number(api: Settings, table: str) -> None:
    stream = api.streams[table]
    row = ROWS[table](51)
    response = put_stream(
        api, stream, "record", {"StreamName": stream, "Data": row, "PartitionKey": "partition-1"}
    )

    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {"ShardId", "SequenceNumber"}
    assert read_kinesis(api, stream, answer["ShardId"], answer["SequenceNumber"]) == row


def test_put_records_lands_each_record(api: Settings) -> None:
    stream = api.streams["user"]
    rows = [user_row(ind) for ind in range(60, 65)]
    response = put_stream(
        api,
        stream,
        "records",
        {"Records": [{"Data": row, "PartitionKey": f"p{row['ind']}"} for row in rows]},
    )

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["FailedRecordCount"] == 0
    assert len(answer["Records"]) == len(rows)
    for row, entry in zip(rows, answer["Records"], strict=True):
        assert read_kinesis(api, stream, entry["ShardId"], entry["SequenceNumber"]) == row


def test_original_stream_emulator_payload_is_accepted(api: Settings) -> None:
    stream = api.streams["geo"]
    row = {**geo_row(71), "timestamp": datetime(2019, 5, 6, 7, 8, 9)}
    payload = json.dumps(
        {"StreamName": stream, "Data": row, "PartitionKey": "partition-1"}, default=str
    )
    response = requests.request(
        "PUT",
        f"{api.api_url}/streams/{stream}/record",
        headers={"Content-Type": "application/json"},
        data=payload,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    stored = read_kinesis(api, stream, answer["ShardId"], answer["SequenceNumber"])
    assert stored["timestamp"] == "2019-05-06 07:08:09"


def _records(count: int) -> dict[str, Any]:
    return {"Records": [{"Data": geo_row(i), "PartitionKey": "p"} for i in range(count)]}


INVALID_KINESIS: list[tuple[str, str, Any, str, int, int, list[int] | None]] = [
    (
        "wrong-content-type",
        "record",
        {"Data": geo_row(), "PartitionKey": "p"},
        "text/plain",
        415,
        415,
        None,
    ),
    ("malformed-json", "record", b'{"Data": ', "application/json", 400, 40001, None),
    (
        "non-utf8",
        "records",
        json.dumps(_records(1)).encode().replace(b"Antarctica", b"\xc3("),
        "application/json",
        400,
        40001,
        None,
    ),
    ("no-data", "record", {"PartitionKey": "p"}, "application/json", 422, 42201, [0]),
    (
        "empty-partition-key",
        "record",
        {"Data": geo_row(), "PartitionKey": ""},
        "application/json",
        422,
        42201,
        [0],
    ),
    (
        "bad-row",
        "record",
        {"Data": {**geo_row(), "longitude": 500}, "PartitionKey": "p"},
        "application/json",
        422,
        42201,
        [0],
    ),
    ("empty-record-list", "records", {"Records": []}, "application/json", 422, 42202, None),
    ("over-500-records", "records", _records(501), "application/json", 422, 42202, None),
    (
        "one-bad-record",
        "records",
        {"Records": [*_records(2)["Records"], {"Data": user_row(), "PartitionKey": "p"}]},
        "application/json",
        422,
        42201,
        [2],
    ),
]


@pytest.mark.parametrize(
    ("suffix", "body", "content_type", "status", "code", "bad"),
    [case[1:] for case in INVALID_KINESIS],
    ids=[case[0] for case in INVALID_KINESIS],
)
def test_invalid_kinesis_request_is_rejected_and_writes_nothing(
    api: Settings,
    suffix: str,
    body: Any,
    content_type: str,
    status: int,
    code: int,
    bad: list[int] | None,
) -> None:
    stream = api.streams["geo"]
    iterators = latest_iterators(api, stream)

    error = assert_error(put_stream(api, stream, suffix, body, content_type), status, code)

    if bad is not None:
        assert [entry["index"] for entry in error["errors"]] == bad
    assert records_after(api, iterators) == []


@pytest.mark.parametrize("suffix", ["record", "records"])
def test_unknown_stream_is_404(api: Settings, suffix: str) -> None:
    error = assert_error(put_stream(api, "streaming-nope", suffix, _records(1)), 404, 40404)
    assert "streaming-nope" in error["message"]


def test_list_and_describe_streams(api: Settings) -> None:
    listed = requests.get(f"{api.api_url}/streams", timeout=30)
    assert listed.status_code == 200
    assert set(api.streams.values()) <= set(listed.json()["StreamNames"])

    described = requests.get(f"{api.api_url}/streams/{api.streams['pin']}", timeout=30)
    assert described.status_code == 200
    description = described.json()["StreamDescription"]
    assert description["StreamName"] == api.streams["pin"]
    assert description["StreamStatus"] == "ACTIVE"
    assert len(description["Shards"]) == api.kinesis_shards

    assert_error(requests.get(f"{api.api_url}/streams/streaming-nope", timeout=30), 404, 40404)


def test_delete_and_create_a_stream(api: Settings) -> None:
    stream = api.streams["user"]
    url = f"{api.api_url}/streams/{stream}"
    try:
        exists = requests.post(url, json={}, timeout=30)
        assert_error(exists, 409, 40901)

        deleted = requests.delete(url, timeout=30)
        assert deleted.status_code == 200 and deleted.json() == {}
        # DeleteStream is asynchronous (DELETING first), in Kinesis as in kinesalite
        wait_for(
            lambda: stream not in kinesis(api).list_streams()["StreamNames"],
            60,
            f"{stream} to be gone from the list after DeleteStream",
            interval_s=0.5,
        )
        assert_error(
            put_stream(api, stream, "record", {"Data": user_row(), "PartitionKey": "p"}),
            404,
            40404,
        )

        created = requests.post(url, json={"ShardCount": 1}, timeout=30)
        assert created.status_code == 200 and created.json() == {}
        assert stream in kinesis(api).list_streams()["StreamNames"]
        assert_error(requests.post(url, json={"ShardCount": 0}, timeout=30), 422, 42202)
        assert_error(
            requests.delete(f"{api.api_url}/streams/streaming-nope", timeout=30), 404, 40404
        )
    finally:
        ensure_streams(api)  # other tests share this stream
    answer = put_stream(api, stream, "record", {"Data": user_row(), "PartitionKey": "p"})
    assert answer.status_code == 200, answer.text


# -- operations ------------------------------------------------------------------------------------


def test_health_and_readiness(api: Settings) -> None:
    health = requests.get(f"{api.api_url}/healthz", timeout=10)
    assert health.status_code == 200 and health.json() == {"status": "ok"}

    ready = requests.get(f"{api.api_url}/readyz", timeout=30)
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready"
    assert body["checks"]["kafka"]["ok"] is True
    assert body["checks"]["kinesis"]["ok"] is True


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_records_errors_and_latency(api: Settings) -> None:
    topic = api.topics["pin"]
    route = f"/topics/{topic}"
    before = requests.get(f"{api.api_url}/metrics", timeout=10).text

    assert post_topic(api, topic, {"records": [{"value": pin_row(i)} for i in range(4)]}).ok
    assert post_topic(api, topic, {"records": []}).status_code == 422

    after = requests.get(f"{api.api_url}/metrics", timeout=10)
    assert after.status_code == 200
    assert after.headers["Content-Type"].startswith("text/plain")
    text = after.text

    def grew(name: str, by: float, **labels: str) -> None:
        assert _metric(text, name, **labels) - _metric(before, name, **labels) == by, name

    grew("pinpipe_api_requests_total", 1, route=route, method="POST", status="200")
    grew("pinpipe_api_requests_total", 1, route=route, method="POST", status="422")
    grew("pinpipe_api_records_total", 4, sink="kafka", table="pin", outcome="written")
    grew("pinpipe_api_errors_total", 1, route=route, error_code="42202")
    grew("pinpipe_api_request_duration_seconds_count", 2, route=route, method="POST")
    assert _metric(text, "pinpipe_api_delivery_duration_seconds_count", sink="kafka") > 0


def test_openapi_document_and_docs_page(api: Settings) -> None:
    document = requests.get(f"{api.api_url}/openapi/openapi.json", timeout=10).json()
    paths = document["paths"]
    produce = paths[f"/topics/{api.topics['pin']}"]["post"]
    assert set(produce["requestBody"]["content"]) == {KAFKA_JSON, "application/vnd.kafka.v2+json"}
    assert {"200", "400", "404", "413", "415", "422", "503"} <= set(produce["responses"])
    row = document["components"]["schemas"]["GeoRow"]["properties"]
    assert row["latitude"]["minimum"] == -90 and row["latitude"]["maximum"] == 90
    for path in ("/streams", "/streams/{stream}", "/healthz", "/readyz", "/metrics"):
        assert path in paths
    assert f"/streams/{api.streams['geo']}/records" in paths

    page = requests.get(f"{api.api_url}/openapi/swagger", timeout=10)
    assert page.status_code == 200 and "swagger" in page.text.lower()


def test_wrong_method_and_unknown_path_are_json_errors(api: Settings) -> None:
    wrong = requests.delete(f"{api.api_url}/healthz", timeout=10)
    assert_error(wrong, 405, 405)
    assert "GET" in wrong.headers["Allow"]
    assert_error(requests.get(f"{api.api_url}/nothing/here", timeout=10), 404, 404)
