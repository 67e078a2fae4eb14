"""Data contract §2 request bodies and answers; the emulator's pacing and latency bookkeeping."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from decimal import Decimal

import pytest

from pipeline.source.pacing import LatencyRecorder, Pacer
from pipeline.source.posting import (
    KAFKA_JSON,
    Record,
    UnexpectedResponseError,
    build_request,
    error_reason,
    read_success,
    row_value,
)

GEO = {"ind": 7, "timestamp": datetime(2020, 8, 28, 3, 52, 47), "latitude": -5.34445,
       "longitude": -177.924, "country": "Cocos (Keeling) Islands"}  # fmt: skip


def records(count: int, table: str = "geo") -> tuple[Record, ...]:
    return tuple(
        Record(seq, table, 7 + seq, row_value(GEO | {"ind": 7 + seq})) for seq in range(count)
    )


def test_row_values_are_json_ready() -> None:
    value = row_value(GEO | {"extra": Decimal("1.5")})
    assert value["timestamp"] == "2020-08-28T03:52:47"
    assert value["extra"] == 1.5
    assert list(value)[:5] == list(GEO)


def test_batch_request_follows_rest_proxy_v2() -> None:
    request = build_request("batch", "http://api:8000/", "p.geo", records(2), api_key="k")
    assert (request.method, request.url) == ("POST", "http://api:8000/topics/p.geo")
    assert request.headers["Content-Type"] == KAFKA_JSON
    assert request.headers["x-api-key"] == "k"
    key = request.headers["Idempotency-Key"]
    assert key.startswith('"') and key.endswith('"') and len(key) == 38  # a quoted UUID
    other = build_request("batch", "http://api:8000/", "p.geo", records(2), api_key="k")
    assert other.headers["Idempotency-Key"] != key  # one key per request
    given = build_request("batch", "http://api", "p.geo", records(1), idempotency_key="abc")
    assert given.headers["Idempotency-Key"] == '"abc"'
    body = json.loads(request.body)
    assert body == {"records": [{"key": str(r.row_id), "value": r.value} for r in records(2)]}
    assert body["records"][0]["value"]["timestamp"] == "2020-08-28T03:52:47"


def test_stream_requests_follow_the_kinesis_proxy() -> None:
    single = build_request("stream", "http://api", "streaming-p-geo", records(1))
    assert (single.method, single.url) == ("PUT", "http://api/streams/streaming-p-geo/record")
    assert "x-api-key" not in single.headers
    assert json.loads(single.body) == {
        "StreamName": "streaming-p-geo",
        "Data": records(1)[0].value,
        "PartitionKey": "7",
    }
    several = build_request("stream", "http://api", "streaming-p-geo", records(3))
    assert several.url == "http://api/streams/streaming-p-geo/records"
    body = json.loads(several.body)
    assert body["StreamName"] == "streaming-p-geo"
    assert body["Records"] == [{"Data": r.value, "PartitionKey": str(r.row_id)} for r in records(3)]


def test_one_request_carries_one_table() -> None:
    with pytest.raises(ValueError, match="one table"):
        build_request("batch", "http://api", "t", records(1, "geo") + records(1, "pin"))
    with pytest.raises(ValueError, match="at least one"):
        build_request("batch", "http://api", "t", ())


def test_reading_rest_proxy_answers() -> None:
    request = build_request("batch", "http://api", "p.geo", records(3))
    answer = {
        "offsets": [
            {"partition": 1, "offset": 40, "error_code": None, "error": None},
            {"partition": None, "offset": None, "error_code": 42201, "error": "bad"},
            {"partition": 1, "offset": 41, "error_code": None, "error": None},
        ],
        "key_schema_id": None,
        "value_schema_id": None,
    }
    results = read_success("batch", request, json.dumps(answer).encode())
    assert [r.outcome for r in results] == ["accepted", "rejected", "accepted"]
    assert results[0].position == {"partition": 1, "offset": 40}
    assert results[1].reason == "error_code 42201: bad"
    with pytest.raises(UnexpectedResponseError, match="offset entry per record"):
        read_success("batch", request, b'{"offsets": []}')
    with pytest.raises(UnexpectedResponseError, match="not JSON"):
        read_success("batch", request, b"<html>")


def test_reading_kinesis_answers() -> None:
    single = build_request("stream", "http://api", "s", records(1))
    [result] = read_success("stream", single, b'{"ShardId": "shardId-0", "SequenceNumber": "9"}')
    assert result.accepted and result.position == {"shard_id": "shardId-0", "sequence_number": "9"}
    several = build_request("stream", "http://api", "s", records(2))
    answer = {
        "FailedRecordCount": 1,
        "Records": [
            {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"},
            {"ShardId": "shardId-0", "SequenceNumber": "10"},
        ],
    }
    results = read_success("stream", several, json.dumps(answer).encode())
    assert [r.outcome for r in results] == ["rejected", "accepted"]
    assert results[0].reason == "ProvisionedThroughputExceededException: slow down"
    with pytest.raises(UnexpectedResponseError, match="Records entry per record"):
        read_success("stream", several, b'{"FailedRecordCount": 0, "Records": []}')


def test_error_reasons() -> None:
    assert error_reason(404, b'{"error_code": 40401, "message": "Topic not found."}') == (
        "HTTP 404 40401: Topic not found."
    )
    assert error_reason(403, b'{"message": "Forbidden"}') == "HTTP 403: Forbidden"
    assert error_reason(502, b"Bad Gateway") == "HTTP 502: Bad Gateway"
    assert error_reason(500, b"") == "HTTP 500"


class RecordingEvent(threading.Event):
    """An event whose waits return at once and are recorded: the pacer's schedule, no sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return self.is_set()


def test_pacer_spaces_records_evenly() -> None:
    now = [100.0]
    pacer = Pacer(rate=50.0, clock=lambda: now[0])
    stop = RecordingEvent()
    assert all(pacer.wait(1, stop) for _ in range(5))
    # The first goes at once; then one slot of 1/50 s per record.
    assert stop.waits == pytest.approx([0.02, 0.04, 0.06, 0.08])
    stop.waits.clear()
    assert pacer.wait(10, stop)  # a request of 10 records takes 10 slots
    assert pacer.wait(1, stop)
    assert stop.waits == pytest.approx([0.10, 0.30])


def test_pacer_catches_up_on_a_short_hiccup_only() -> None:
    now = [0.0]
    pacer = Pacer(rate=10.0, clock=lambda: now[0], burst=0.2)
    stop = RecordingEvent()
    pacer.wait(1, stop)
    now[0] = 60.0  # held up for a minute: at most 0.2 s (2 records) are made up, not 600
    for _ in range(4):
        pacer.wait(1, stop)
    assert stop.waits == pytest.approx([0.1])


def test_pacer_stops_and_validates() -> None:
    stop = RecordingEvent()
    stop.set()
    assert Pacer(rate=10.0).wait(1, stop) is False
    assert Pacer(rate=None).wait(1, stop) is False
    assert Pacer(rate=None).wait(1, RecordingEvent()) is True
    with pytest.raises(ValueError, match="rate"):
        Pacer(rate=0)


def test_latency_percentiles_and_bounded_memory() -> None:
    recorder = LatencyRecorder(capacity=1_000)
    assert recorder.percentile(0.5) is None
    for millisecond in range(1, 101):
        recorder.add(millisecond / 1000)
    assert recorder.percentile(0.5) == 0.050
    assert recorder.percentile(0.99) == 0.099
    assert recorder.percentile(1.0) == 0.100
    for _ in range(10_000):
        recorder.add(0.5)
    assert recorder.count == 10_100
    assert len(recorder._samples) == 1_000
    assert recorder.percentile(0.5) == 0.5
