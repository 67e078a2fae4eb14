"""Pydantic models of everything the ingestion API reads and writes.

The same models validate requests and generate the OpenAPI document, so the document cannot drift
from what the API accepts. Rows are validated as the emulator sends them (data contract §1-2):
datetimes are ISO 8601 text, `follower_count` is text (`437`, `15k`, `User Info Error`), and the
placeholders of data contract §1 are ordinary values. Validation is strict (no type coercion: `"5"`
is not an integer) and rejects unknown fields, so a typo in a field name is reported instead of
silently dropped.

Vocabularies (`category`, `is_image_or_video`) are text with a length limit, not enums: the API
guards types and ranges, and the cleaning stage decides what a value means.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    create_model,
)

# -- row fields ----------------------------------------------------------------------------------


def _integral(value: Any) -> Any:
    """JSON Schema counts `3.0` as an integer; accept it (and write `3`). `3.5` stays an error."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


Integer = Annotated[int, BeforeValidator(_integral)]
# Row ids are Spark IntegerType downstream (pipeline.transform.schemas).
RowId = Annotated[Integer, Field(ge=0, le=2**31 - 1, description="row id shared by the 3 tables")]

# ASCII digits only: `\d` would also admit other scripts' digits in the Rust regex engine.
ISO_DATETIME_PATTERN = (
    r"^(19[7-9][0-9]|20[0-9][0-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"[T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])?$"
)
EARLIEST_YEAR, LATEST_YEAR = 1970, 2099


def _real_datetime(text: str) -> str:
    """The pattern admits `2020-02-30`; the calendar does not. The text itself is kept."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise ValueError(f"not a valid date and time: {error}") from None
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise ValueError(f"year must be between {EARLIEST_YEAR} and {LATEST_YEAR}")
    return text


IsoDatetime = Annotated[
    str,
    Field(
        pattern=ISO_DATETIME_PATTERN,
        description="ISO 8601 date and time: `T` or a space, optional fraction, `Z` or offset",
        examples=["2020-08-28T03:52:47", "2020-08-28 03:52:47.5+02:00"],
    ),
    AfterValidator(_real_datetime),
]


def text(max_length: int, description: str = "", **extra: Any) -> Any:
    """A text column of at most `max_length` characters (empty text is allowed: cleaning nulls
    it)."""
    return Field(max_length=max_length, description=description or None, **extra)


USER_INFO_ERROR = "User Info Error"
FOLLOWER_COUNT_PATTERN = r"^ *[0-9]{1,15}(\.[0-9]{1,6})? *[kKmMbB]? *$|^User Info Error$"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


# What a value of a patterned field must look like, for error messages (the regex is unreadable).
FORMAT_HINTS: dict[str, str] = {
    "timestamp": "expected an ISO 8601 date and time such as 2020-08-28T03:52:47",
    "date_joined": "expected an ISO 8601 date and time such as 2020-08-28T03:52:47",
    "follower_count": f"expected digits with optional k/M/B suffix (15k, 2M) or {USER_INFO_ERROR}",
    "unique_id": "expected a UUID such as 8b2c1d7e-0f4a-4c39-9a5e-2d6f1b3c4a5e",
    "Idempotency-Key": "expected 1 to 255 printable ASCII characters, "
    'optionally in double quotes (e.g. "8e03978e-40d5-43e8-bc93-6894a57f9324")',
}


class _Row(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class PinRow(_Row):
    """A row of `pinterest_data` (data contract §1)."""

    index: RowId
    unique_id: str = Field(pattern=UUID_PATTERN, description="UUID")
    title: str = text(1_000, "placeholder `No Title Data Available` when missing")
    description: str = text(10_000, "placeholders `No description available [Story format]`")
    poster_name: str = text(1_000, f"placeholder `{USER_INFO_ERROR}`")
    follower_count: str = Field(
        pattern=FOLLOWER_COUNT_PATTERN,
        description=f"digits, optional k/M/B suffix (`437`, `15k`, `2M`), or `{USER_INFO_ERROR}`",
        examples=["437", "15k", "2M", USER_INFO_ERROR],
    )
    tag_list: str = text(10_000, "comma-joined tags")
    is_image_or_video: str = text(100, "`image`, `video`, `multi-video(story page format)`")
    image_src: str = text(4_096, "URL; placeholder `Image src error.`")
    downloaded: Integer = Field(ge=0, le=1, description="0 or 1")
    save_location: str = text(1_000, "`Local save in /data/<category>`")
    category: str = text(100, "e.g. `travel`")


class GeoRow(_Row):
    """A row of `geolocation_data` (data contract §1)."""

    ind: RowId
    timestamp: IsoDatetime
    latitude: float = Field(ge=-90, le=90, allow_inf_nan=False)
    longitude: float = Field(ge=-180, le=180, allow_inf_nan=False)
    country: str = text(200)


class UserRow(_Row):
    """A row of `user_data` (data contract §1)."""

    ind: RowId
    first_name: str = text(200)
    last_name: str = text(200)
    age: Integer = Field(ge=0, le=130, description="years")
    date_joined: IsoDatetime


ROW_MODELS: dict[str, type[_Row]] = {"pin": PinRow, "geo": GeoRow, "user": UserRow}

# -- Kafka REST Proxy v2 -------------------------------------------------------------------------


class _Envelope(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


def _kafka_models(table: str, row: type[_Row], max_records: int) -> type[_Envelope]:
    """`{"records": [{"value": row, "key"?, "partition"?}]}` for one table."""
    title = table.capitalize()
    record = create_model(
        f"{title}KafkaRecord",
        __base__=_Envelope,
        __doc__=f"One {table} record of a produce request.",
        value=(row, ...),
        key=(JsonValue, Field(default=None, description="any JSON value; null: no key")),
        partition=(
            Annotated[Integer, Field(ge=0)] | None,
            Field(default=None, description="target partition; null: the partitioner picks"),
        ),
    )
    return create_model(
        f"{title}ProduceRequest",
        __base__=_Envelope,
        __doc__=f"Kafka REST Proxy v2 produce request for the {table} topic.",
        # A count limit besides the body size: 5 MiB of small rows would be ~50k records,
        # all held in memory and waited for by one request (and one thread).
        records=(list[record], Field(min_length=1, max_length=max_records)),  # type: ignore[valid-type]
    )


DEFAULT_MAX_RECORDS = 1000  # Settings.api_max_records


@cache
def produce_requests(max_records: int = DEFAULT_MAX_RECORDS) -> dict[str, type[_Envelope]]:
    """The produce request model of each table, taking at most `max_records` records."""
    return {table: _kafka_models(table, row, max_records) for table, row in ROW_MODELS.items()}


PRODUCE_REQUESTS: dict[str, type[_Envelope]] = produce_requests()


class PartitionOffset(BaseModel):
    partition: int
    offset: int
    error_code: int | None = None
    error: str | None = None


class ProduceResponse(BaseModel):
    """REST Proxy v2 produce response: one offset per record, in request order."""

    offsets: list[PartitionOffset]
    key_schema_id: int | None = None
    value_schema_id: int | None = None


# -- Kinesis proxy (API Gateway conventions) ------------------------------------------------------

# Kinesis limits (AWS): 500 records per PutRecords; a record's data + partition key at most
# 1 MiB; a PutRecords request's data + partition keys at most 5 MiB.
MAX_KINESIS_RECORDS = 500
MAX_KINESIS_RECORD_BYTES = 2**20
MAX_KINESIS_REQUEST_BYTES = 5 * 2**20
PartitionKey = Annotated[str, Field(min_length=1, max_length=256)]
StreamName: Any = (
    str | None,
    Field(default=None, max_length=128, description="optional, ignored: the path names the stream"),
)


def _kinesis_models(table: str, row: type[_Row]) -> tuple[type[_Envelope], type[_Envelope]]:
    title = table.capitalize()
    single = create_model(
        f"{title}PutRecordRequest",
        __base__=_Envelope,
        __doc__=f"PutRecord of one {table} row (stored in Kinesis as JSON bytes).",
        StreamName=StreamName,
        Data=(row, ...),
        PartitionKey=(PartitionKey, ...),
    )
    entry = create_model(
        f"{title}PutRecordsEntry",
        __base__=_Envelope,
        Data=(row, ...),
        PartitionKey=(PartitionKey, ...),
    )
    batch = create_model(
        f"{title}PutRecordsRequest",
        __base__=_Envelope,
        __doc__=f"PutRecords of up to {MAX_KINESIS_RECORDS} {table} rows.",
        StreamName=StreamName,
        Records=(list[entry], Field(min_length=1, max_length=MAX_KINESIS_RECORDS)),  # type: ignore[valid-type]
    )
    return single, batch


_KINESIS = {table: _kinesis_models(table, row) for table, row in ROW_MODELS.items()}
PUT_RECORD_REQUESTS: dict[str, type[_Envelope]] = {t: pair[0] for t, pair in _KINESIS.items()}
PUT_RECORDS_REQUESTS: dict[str, type[_Envelope]] = {t: pair[1] for t, pair in _KINESIS.items()}


class PutRecordResponse(BaseModel):
    ShardId: str
    SequenceNumber: str


class PutRecordsResultEntry(BaseModel):
    """Either `ShardId` + `SequenceNumber`, or `ErrorCode` + `ErrorMessage`."""

    ShardId: str | None = None
    SequenceNumber: str | None = None
    ErrorCode: str | None = None
    ErrorMessage: str | None = None


class PutRecordsResponse(BaseModel):
    FailedRecordCount: int
    Records: list[PutRecordsResultEntry]


class CreateStreamRequest(_Envelope):
    ShardCount: Integer | None = Field(default=None, ge=1, le=100, description="default: config")


class ProduceHeaders(BaseModel):
    """Request headers of a produce request that the API reads itself."""

    idempotency_key: str | None = Field(
        default=None,
        alias="Idempotency-Key",
        pattern=r'^(?:[ -~]{1,255}|"[ -~]{1,255}")$',
        description="Optional. One key per request, the same on each retry of it (IETF draft "
        "draft-ietf-httpapi-idempotency-key-header): a key already answered gets that answer "
        "again (200, same offsets, header `Idempotent-Replayed: true`) and nothing is written "
        "twice, also across API restarts, for `api_idempotency_hours`; the same key with other "
        "records is 422. A UUID per request is a good key.",
    )


class TopicPath(BaseModel):
    topic: str = Field(description="topic name, `<prefix>.pin|geo|user`")


class StreamPath(BaseModel):
    stream: str = Field(description="stream name, `streaming-<prefix>-pin|geo|user`")


class ListStreamsResponse(BaseModel):
    StreamNames: list[str]
    HasMoreStreams: bool


class HashKeyRange(BaseModel):
    StartingHashKey: str
    EndingHashKey: str


class SequenceNumberRange(BaseModel):
    StartingSequenceNumber: str
    EndingSequenceNumber: str | None = None


class Shard(BaseModel):
    ShardId: str
    HashKeyRange: HashKeyRange
    SequenceNumberRange: SequenceNumberRange


class StreamDescription(BaseModel):
    StreamName: str
    StreamARN: str
    StreamStatus: str
    RetentionPeriodHours: int
    StreamCreationTimestamp: str = Field(description="ISO 8601")
    HasMoreShards: bool
    Shards: list[Shard]


class DescribeStreamResponse(BaseModel):
    StreamDescription: StreamDescription


class EmptyResponse(BaseModel):
    """Kinesis answers CreateStream and DeleteStream with an empty object."""


# -- errors and operations -------------------------------------------------------------------------


class RecordError(BaseModel):
    index: int = Field(description="position of the record in the request (0 for a single record)")
    reason: str


class ErrorResponse(BaseModel):
    """REST Proxy style error; `errors` lists each bad record of a 422."""

    error_code: int
    message: str
    errors: list[RecordError] | None = None


class Health(BaseModel):
    status: str


class Check(BaseModel):
    ok: bool
    detail: str


class Readiness(BaseModel):
    status: str = Field(description="`ready` or `not ready`")
    checks: dict[str, Check]
