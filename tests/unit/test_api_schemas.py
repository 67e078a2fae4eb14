"""Row schemas of the ingestion API and how their errors reach the client (no services)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pipeline.ingest.errors import ApiError, ErrorCode, from_validation_error
from pipeline.ingest.kinesis import check_sizes
from pipeline.ingest.schemas import (
    MAX_KINESIS_RECORD_BYTES,
    MAX_KINESIS_REQUEST_BYTES,
    PRODUCE_REQUESTS,
    PUT_RECORD_REQUESTS,
    PUT_RECORDS_REQUESTS,
    GeoRow,
    PinRow,
    UserRow,
    produce_requests,
)

PIN = {
    "index": 7528,
    "unique_id": "fbe53c66-3442-4773-b19e-d3ec6f54dddf",
    "title": "Nice Fishing Gear",
    "description": "All the gear you need",
    "poster_name": "Fish Tank Co",
    "follower_count": "15k",
    "tag_list": "fishing,outdoors",
    "is_image_or_video": "image",
    "image_src": "https://i.pinimg.com/originals/a/b.jpg",
    "downloaded": 1,
    "save_location": "Local save in /data/travel",
    "category": "travel",
}
GEO = {
    "ind": 7528,
    "timestamp": "2020-08-28T03:52:47",
    "latitude": -89.9787,
    "longitude": -173.293,
    "country": "Cocos (Keeling) Islands",
}
USER = {
    "ind": 7528,
    "first_name": "Abigail",
    "last_name": "Ali",
    "age": 20,
    "date_joined": "2015-10-24 11:23:51",
}


def _errors(model: Any, value: dict[str, Any]) -> list[tuple[Any, ...]]:
    with pytest.raises(ValidationError) as raised:
        model.model_validate(value)
    return [tuple(error["loc"]) for error in raised.value.errors()]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"title": "No Title Data Available"},
        {"description": "No description available Story format"},
        {"poster_name": "User Info Error", "follower_count": "User Info Error"},
        {"tag_list": "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e"},
        {"image_src": "Image src error.", "downloaded": 0},
        {"is_image_or_video": "multi-video(story page format)"},
        {"follower_count": "437"},
        {"follower_count": "2M"},
        {"follower_count": " 1.5k "},
        {"title": ""},
        {"index": 5.0},
    ],
)
def test_pin_accepts_source_values_and_placeholders(changes: dict[str, Any]) -> None:
    PinRow.model_validate({**PIN, **changes})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"follower_count": "lots"}, "follower_count"),
        ({"follower_count": 15000}, "follower_count"),
        ({"follower_count": "\u0661\u0665k"}, "follower_count"),  # Arabic-Indic digits
        ({"unique_id": "not-a-uuid"}, "unique_id"),
        ({"downloaded": 2}, "downloaded"),
        ({"downloaded": True}, "downloaded"),
        ({"index": "7528"}, "index"),
        ({"index": 2**31}, "index"),
        ({"title": "x" * 1_001}, "title"),
        ({"category": None}, "category"),
        ({"extra": 1}, "extra"),
    ],
)
def test_pin_rejects(changes: dict[str, Any], field: str) -> None:
    assert _errors(PinRow, {**PIN, **changes}) == [(field,)]


@pytest.mark.parametrize(
    "timestamp",
    [
        "2020-08-28T03:52:47",
        "2020-08-28 03:52:47",
        "2020-08-28T03:52:47.123456789",
        "2020-08-28T03:52:47Z",
        "2020-08-28T03:52:47+02:00",
        "2020-08-28T03:52:47-0530",
        "2020-02-29T00:00:00",
    ],
)
def test_geo_accepts_iso_datetimes(timestamp: str) -> None:
    assert GeoRow.model_validate({**GEO, "timestamp": timestamp}).timestamp == timestamp


@pytest.mark.parametrize(
    "timestamp",
    ["2020-08-28", "28/08/2020 03:52:47", "2019-02-29T00:00:00", "1900-01-01T00:00:00", "", "now"],
)
def test_geo_rejects_other_datetimes(timestamp: str) -> None:
    assert _errors(GeoRow, {**GEO, "timestamp": timestamp}) == [("timestamp",)]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("latitude", 90.5),
        ("latitude", -91),
        ("longitude", 180.01),
        ("longitude", float("nan")),
        ("latitude", "1.0"),
        ("country", "x" * 201),
    ],
)
def test_geo_rejects_out_of_range(field: str, value: Any) -> None:
    assert _errors(GeoRow, {**GEO, field: value}) == [(field,)]


def test_geo_bounds_are_inclusive() -> None:
    GeoRow.model_validate({**GEO, "latitude": 90, "longitude": -180})


@pytest.mark.parametrize(
    ("age", "ok"), [(0, True), (17, True), (130, True), (131, False), (-1, False), (20.5, False)]
)
def test_user_age_range(age: Any, ok: bool) -> None:
    row = {**USER, "age": age}
    if ok:
        UserRow.model_validate(row)
    else:
        assert _errors(UserRow, row) == [("age",)]


def test_integral_floats_become_integers() -> None:
    assert UserRow.model_validate({**USER, "ind": 3.0, "age": 30.0}).model_dump()["age"] == 30
    assert type(UserRow.model_validate({**USER, "age": 30.0}).age) is int


def test_kafka_errors_name_each_bad_record() -> None:
    body = {
        "records": [
            {"value": GEO},
            {"value": {**GEO, "latitude": 100, "timestamp": "yesterday"}},
            {"value": GEO, "partition": -1},
        ]
    }
    with pytest.raises(ValidationError) as raised:
        PRODUCE_REQUESTS["geo"].model_validate(body)

    error = from_validation_error(raised.value, body)

    assert (error.status, error.code) == (422, ErrorCode.INVALID_RECORDS)
    assert error.errors is not None
    assert [e.index for e in error.errors] == [1, 2]
    assert "value.latitude" in error.errors[0].reason
    assert "value.timestamp: expected an ISO 8601 date and time" in error.errors[0].reason
    assert error.errors[1].reason.startswith("partition:")
    assert error.message == "2 of 3 records are invalid; nothing was written"


@pytest.mark.parametrize(
    "body",
    [{"records": []}, {}, {"records": [{"value": GEO}], "value_schema": "x"}, None, []],
)
def test_envelope_errors_are_42202(body: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        PRODUCE_REQUESTS["geo"].model_validate(body)
    error = from_validation_error(raised.value, body)
    assert (error.status, error.code, error.errors) == (422, ErrorCode.INVALID_REQUEST, None)


def test_kinesis_single_record_errors_are_record_0() -> None:
    body = {"Data": {**USER, "age": "20"}, "PartitionKey": ""}
    with pytest.raises(ValidationError) as raised:
        PUT_RECORD_REQUESTS["user"].model_validate(body)
    error = from_validation_error(raised.value, body)
    assert error.errors is not None and [e.index for e in error.errors] == [0]
    assert "Data.age" in error.errors[0].reason and "PartitionKey" in error.errors[0].reason


def test_kinesis_batch_limits() -> None:
    entry = {"Data": USER, "PartitionKey": "p"}
    PUT_RECORDS_REQUESTS["user"].model_validate({"Records": [entry] * 500})
    with pytest.raises(ValidationError):
        PUT_RECORDS_REQUESTS["user"].model_validate({"Records": [entry] * 501})
    with pytest.raises(ValidationError):
        PUT_RECORDS_REQUESTS["user"].model_validate(
            {"Records": [{**entry, "PartitionKey": "k" * 257}]}
        )


def test_stream_name_in_body_is_optional() -> None:
    model = PUT_RECORD_REQUESTS["pin"]
    model.model_validate({"Data": PIN, "PartitionKey": "p"})
    model.model_validate({"StreamName": "streaming-x-pin", "Data": PIN, "PartitionKey": "p"})


def test_produce_record_count_is_capped_with_a_clear_message() -> None:
    model = produce_requests(3)["geo"]
    model.model_validate({"records": [{"value": GEO}] * 3})
    body = {"records": [{"value": GEO}] * 4}
    with pytest.raises(ValidationError) as raised:
        model.model_validate(body)
    error = from_validation_error(raised.value, body)
    assert (error.status, error.code) == (422, ErrorCode.INVALID_REQUEST)
    assert "4 records; at most 3 per request" in error.message
    assert produce_requests(3)["geo"] is model  # built once per limit
    schema = PRODUCE_REQUESTS["geo"].model_json_schema()
    assert schema["properties"]["records"]["maxItems"] == 1000  # Settings.api_max_records


def test_kinesis_record_size_limit_counts_data_and_partition_key() -> None:
    key = "p" * 10
    check_sizes([(b"x" * (MAX_KINESIS_RECORD_BYTES - len(key)), key)])
    with pytest.raises(ApiError) as raised:
        check_sizes([(b"x", key), (b"x" * (MAX_KINESIS_RECORD_BYTES - len(key) + 1), key)])
    assert (raised.value.status, raised.value.code) == (422, ErrorCode.INVALID_RECORDS)
    assert raised.value.errors is not None
    assert [e.index for e in raised.value.errors] == [1]
    assert str(MAX_KINESIS_RECORD_BYTES) in raised.value.errors[0].reason


def test_kinesis_partition_key_counts_in_utf8_bytes() -> None:
    key = "é" * 256  # 256 characters, 512 bytes
    check_sizes([(b"x" * (MAX_KINESIS_RECORD_BYTES - 512), key)])
    with pytest.raises(ApiError):
        check_sizes([(b"x" * (MAX_KINESIS_RECORD_BYTES - 511), key)])


def test_kinesis_put_records_total_is_capped_at_5_mib() -> None:
    record = (b"x" * 1_000_000, "p")
    check_sizes([record] * 5)
    with pytest.raises(ApiError) as raised:
        check_sizes([record] * 6)
    assert (raised.value.status, raised.value.code) == (413, ErrorCode.RECORD_TOO_LARGE)
    assert str(MAX_KINESIS_REQUEST_BYTES) in raised.value.message
