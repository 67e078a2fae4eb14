"""The wire formats of data contract §2: building API requests and reading their answers.

Batch layer (Kafka REST Proxy v2): `POST /topics/{topic}`,
`{"records": [{"key": "<id>", "value": row}, ...]}`, answered by one offset entry per record.
Records are keyed by their row id in both layers, so one id keeps to one Kafka partition and one
Kinesis shard, where offset / sequence number order is arrival order ("latest arrival wins").
Stream layer (API Gateway's Kinesis proxy): `PUT /streams/{stream}/record` with
`{"StreamName", "Data", "PartitionKey"}` for one record, or
`PUT /streams/{stream}/records` with `{"StreamName", "Records": [...]}` (PutRecords) for several.
Pure functions, no I/O (a Kafka request's default idempotency key is a random UUID): the
emulator sends what these build.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote

Mode = Literal["batch", "stream"]
MODES: tuple[Mode, ...] = ("batch", "stream")

KAFKA_JSON = "application/vnd.kafka.json.v2+json"
KAFKA_ACCEPT = "application/vnd.kafka.v2+json, application/json"
JSON = "application/json"


@dataclass(frozen=True)
class Record:
    """One source row on its way to the API."""

    seq: int  # which draw of the emulator produced it (ids repeat: sampling has replacement)
    table: str  # pin | geo | user
    row_id: int
    value: dict[str, Any]


@dataclass(frozen=True)
class ApiRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    table: str
    destination: str  # topic (batch) or stream (stream)
    records: tuple[Record, ...]


Outcome = Literal["accepted", "rejected", "failed"]


@dataclass(frozen=True)
class RecordResult:
    """The fate of one record: accepted (with its position), rejected by the API (a 4xx answer
    or a per-record error) or failed (retries exhausted, or an answer of unknown shape)."""

    record: Record
    outcome: Outcome
    position: dict[str, Any] = field(default_factory=dict)  # partition/offset or shard/sequence
    reason: str = ""

    @property
    def accepted(self) -> bool:
        return self.outcome == "accepted"


class UnexpectedResponseError(ValueError):
    """A 2xx answer whose body does not have the data contract §2 shape."""


def json_value(value: Any) -> Any:
    """Datetimes as ISO 8601 text (`2020-08-28T03:52:47`), decimals as floats."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def row_value(row: dict[str, Any]) -> dict[str, Any]:
    return {column: json_value(value) for column, value in row.items()}


def build_request(
    mode: Mode,
    api_url: str,
    destination: str,
    records: tuple[Record, ...],
    api_key: str | None = None,
    idempotency_key: str | None = None,
) -> ApiRequest:
    """The HTTP request that posts `records` (all of one table) to `destination`.

    A Kafka request carries an `Idempotency-Key` (`idempotency_key`, or a new UUID): built once
    per request, it goes out again unchanged on each retry, so the API answers a retry whose
    first attempt was committed with that attempt's offsets instead of writing the records twice.
    """
    if not records:
        raise ValueError("a request needs at least one record")
    tables = {record.table for record in records}
    if len(tables) != 1:
        raise ValueError(f"one request carries one table's records, got {sorted(tables)}")
    base = api_url.rstrip("/")
    name = quote(destination, safe="")
    headers: dict[str, str] = {}
    if api_key:
        headers["x-api-key"] = api_key
    body: dict[str, Any]
    if mode == "batch":
        method, url = "POST", f"{base}/topics/{name}"
        headers |= {"Content-Type": KAFKA_JSON, "Accept": KAFKA_ACCEPT}
        # the draft's sf-string form: a quoted string
        headers["Idempotency-Key"] = f'"{idempotency_key or uuid.uuid4()}"'
        body = {
            "records": [{"key": partition_key(record), "value": record.value} for record in records]
        }
    elif len(records) == 1:
        method, url = "PUT", f"{base}/streams/{name}/record"
        headers |= {"Content-Type": JSON, "Accept": JSON}
        record = records[0]
        body = {
            "StreamName": destination,
            "Data": record.value,
            "PartitionKey": partition_key(record),
        }
    else:
        method, url = "PUT", f"{base}/streams/{name}/records"
        headers |= {"Content-Type": JSON, "Accept": JSON}
        body = {
            "StreamName": destination,
            "Records": [
                {"Data": record.value, "PartitionKey": partition_key(record)} for record in records
            ],
        }
    return ApiRequest(
        method=method,
        url=url,
        headers=headers,
        body=json.dumps(body, separators=(",", ":")).encode(),
        table=records[0].table,
        destination=destination,
        records=records,
    )


def partition_key(record: Record) -> str:
    """The row id: an id's records stay in order within one Kafka partition / Kinesis shard."""
    return str(record.row_id)


def error_reason(status: int, body: bytes) -> str:
    """A short reason from an error answer: REST Proxy `error_code`/`message` or raw text."""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict):
        code = document.get("error_code", document.get("__type", ""))
        message = document.get("message", document.get("Message", ""))
        if code or message:
            return f"HTTP {status} {code}: {message}".replace(" :", ":").strip()
    text = body.decode(errors="replace").strip()[:200]
    return f"HTTP {status}: {text}" if text else f"HTTP {status}"


def read_success(mode: Mode, request: ApiRequest, body: bytes) -> list[RecordResult]:
    """Per-record results of a 2xx answer; raises UnexpectedResponseError on a foreign shape."""
    try:
        document = json.loads(body)
    except ValueError as error:
        raise UnexpectedResponseError(f"2xx answer is not JSON: {body[:200]!r}") from error
    if not isinstance(document, dict):
        raise UnexpectedResponseError(f"2xx answer is not a JSON object: {body[:200]!r}")
    if mode == "batch":
        return _kafka_results(request, document)
    if len(request.records) == 1 and request.url.endswith("/record"):
        return [_kinesis_result(request.records[0], document)]
    entries = document.get("Records")
    if not isinstance(entries, list) or len(entries) != len(request.records):
        raise UnexpectedResponseError(
            f"PutRecords answer has no Records entry per record: {body[:200]!r}"
        )
    return [
        _kinesis_result(record, entry if isinstance(entry, dict) else {})
        for record, entry in zip(request.records, entries, strict=True)
    ]


def _kafka_results(request: ApiRequest, document: dict[str, Any]) -> list[RecordResult]:
    offsets = document.get("offsets")
    if not isinstance(offsets, list) or len(offsets) != len(request.records):
        raise UnexpectedResponseError(
            f"REST Proxy answer has no offset entry per record: {document!r:.200}"
        )
    results = []
    for record, entry in zip(request.records, offsets, strict=True):
        entry = entry if isinstance(entry, dict) else {}
        if entry.get("error_code") is not None or entry.get("error") is not None:
            reason = f"error_code {entry.get('error_code')}: {entry.get('error')}"
            results.append(RecordResult(record, "rejected", reason=reason))
        elif entry.get("offset") is None:
            results.append(RecordResult(record, "rejected", reason="no offset returned"))
        else:
            position = {"partition": entry.get("partition"), "offset": entry["offset"]}
            results.append(RecordResult(record, "accepted", position))
    return results


def _kinesis_result(record: Record, entry: dict[str, Any]) -> RecordResult:
    if entry.get("ErrorCode"):
        reason = f"{entry['ErrorCode']}: {entry.get('ErrorMessage', '')}".strip()
        return RecordResult(record, "rejected", reason=reason)
    if entry.get("SequenceNumber") is None:
        return RecordResult(record, "rejected", reason="no sequence number")
    position = {"shard_id": entry.get("ShardId"), "sequence_number": entry["SequenceNumber"]}
    return RecordResult(record, "accepted", position)
