"""Kinesis delivery through boto3, endpoint and region from settings, bounded by the API timeout.

botocore's own timeouts and a single retry keep every call within about the configured timeout,
so an unreachable endpoint becomes a 503 instead of a hung request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from pipeline.config import Settings
from pipeline.ingest.errors import ApiError, ErrorCode, invalid_records
from pipeline.ingest.schemas import MAX_KINESIS_RECORD_BYTES, MAX_KINESIS_REQUEST_BYTES, RecordError

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

T = TypeVar("T")

_UNAVAILABLE_ERRORS = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionClosedError,
)
_THROTTLED = {
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "ThrottlingException",
    "KMSThrottlingException",
    "InternalFailure",
    "ServiceUnavailable",
}


def _summary(kinesis: KinesisClient, stream: str) -> Any:
    return kinesis.describe_stream_summary(StreamName=stream)


def check_sizes(records: Sequence[tuple[bytes, str]]) -> None:
    """Kinesis's size limits, checked before the call: 422 naming each record whose data +
    partition key exceed 1 MiB, 413 for a PutRecords request over 5 MiB in all."""
    sizes = [len(data) + len(key.encode()) for data, key in records]
    errors = [
        RecordError(
            index=index,
            reason=f"Data + PartitionKey are {size} bytes; a Kinesis record holds at most "
            f"{MAX_KINESIS_RECORD_BYTES}",
        )
        for index, size in enumerate(sizes)
        if size > MAX_KINESIS_RECORD_BYTES
    ]
    if errors:
        raise invalid_records(errors, len(records))
    if sum(sizes) > MAX_KINESIS_REQUEST_BYTES:
        raise ApiError(
            413,
            ErrorCode.RECORD_TOO_LARGE,
            f"Data + PartitionKeys of the request are {sum(sizes)} bytes; a PutRecords request "
            f"holds at most {MAX_KINESIS_REQUEST_BYTES}: split it; nothing was written",
        )


class KinesisDelivery:
    def __init__(self, settings: Settings, timeout_s: float | None = None, threads: int = 8):
        self.settings = settings
        self.timeout_s = timeout_s if timeout_s is not None else settings.api_timeout_s
        self._threads = threads
        self._client: KinesisClient | None = None
        self._lock = threading.Lock()

    def client(self) -> KinesisClient:
        with self._lock:
            if self._client is None:
                half = max(self.timeout_s / 2, 0.5)
                config = Config(
                    connect_timeout=min(half, 2.0),
                    read_timeout=half,
                    retries={"total_max_attempts": 2, "mode": "standard"},
                    max_pool_connections=max(self._threads * 2, 10),
                )
                self._client = boto3.client(
                    "kinesis", config=config, **self.settings.boto3_kwargs("kinesis")
                )
            return self._client

    def call(self, stream: str, action: Callable[[KinesisClient], T]) -> T:
        """Run one Kinesis call, translating its failures into API errors."""
        try:
            return action(self.client())
        except _UNAVAILABLE_ERRORS as error:
            raise ApiError(
                503,
                ErrorCode.KINESIS_UNAVAILABLE,
                f"Kinesis did not answer within {self.timeout_s:g}s ({error}); retry later",
            ) from error
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            message = error.response.get("Error", {}).get("Message", str(error))
            if code == "ResourceNotFoundException":
                raise ApiError(
                    404, ErrorCode.STREAM_NOT_FOUND, f"stream {stream} not found in Kinesis"
                ) from error
            if code == "ResourceInUseException":
                raise ApiError(409, ErrorCode.STREAM_IN_USE, f"{stream}: {message}") from error
            if code in _THROTTLED:
                raise ApiError(
                    503, ErrorCode.KINESIS_UNAVAILABLE, f"Kinesis is busy ({code}); retry later"
                ) from error
            if code in ("InvalidArgumentException", "ValidationException"):
                raise ApiError(400, ErrorCode.KINESIS_REJECTED, f"{code}: {message}") from error
            raise ApiError(
                502, ErrorCode.KINESIS_ERROR, f"Kinesis error {code}: {message}"
            ) from error
        except BotoCoreError as error:
            raise ApiError(
                503, ErrorCode.KINESIS_UNAVAILABLE, f"Kinesis call failed: {error}"
            ) from error

    # -- records -----------------------------------------------------------------------------------
    def put_record(self, stream: str, data: bytes, partition_key: str) -> dict[str, str]:
        answer = self.call(
            stream,
            lambda kinesis: kinesis.put_record(
                StreamName=stream, Data=data, PartitionKey=partition_key
            ),
        )
        return {"ShardId": answer["ShardId"], "SequenceNumber": answer["SequenceNumber"]}

    def put_records(self, stream: str, records: Sequence[tuple[bytes, str]]) -> dict[str, Any]:
        entries: Any = [{"Data": data, "PartitionKey": key} for data, key in records]
        answer = self.call(
            stream, lambda kinesis: kinesis.put_records(StreamName=stream, Records=entries)
        )
        results = []
        for entry in answer["Records"]:
            if entry.get("ErrorCode"):
                results.append(
                    {"ErrorCode": entry["ErrorCode"], "ErrorMessage": entry.get("ErrorMessage", "")}
                )
            else:
                results.append(
                    {"ShardId": entry["ShardId"], "SequenceNumber": entry["SequenceNumber"]}
                )
        return {"FailedRecordCount": answer.get("FailedRecordCount", 0), "Records": results}

    # -- streams -----------------------------------------------------------------------------------
    def list_streams(self) -> dict[str, Any]:
        names: list[str] = []
        answer = self.call("", lambda kinesis: kinesis.list_streams())
        names += answer["StreamNames"]
        while answer.get("HasMoreStreams") and names:
            after = names[-1]

            def next_page(kinesis: KinesisClient, after: str = after) -> Any:
                return kinesis.list_streams(ExclusiveStartStreamName=after)

            answer = self.call("", next_page)
            names += answer["StreamNames"]
        return {"StreamNames": names, "HasMoreStreams": False}

    def describe(self, stream: str) -> dict[str, Any]:
        answer = self.call(stream, lambda kinesis: kinesis.describe_stream(StreamName=stream))
        found = answer["StreamDescription"]
        return {
            "StreamDescription": {
                "StreamName": found["StreamName"],
                "StreamARN": found["StreamARN"],
                "StreamStatus": found["StreamStatus"],
                "RetentionPeriodHours": found["RetentionPeriodHours"],
                "StreamCreationTimestamp": found["StreamCreationTimestamp"].isoformat(),
                "HasMoreShards": found["HasMoreShards"],
                "Shards": [
                    {
                        "ShardId": shard["ShardId"],
                        "HashKeyRange": dict(shard["HashKeyRange"]),
                        "SequenceNumberRange": dict(shard["SequenceNumberRange"]),
                    }
                    for shard in found["Shards"]
                ],
            }
        }

    def create(self, stream: str, shards: int) -> None:
        self.call(
            stream, lambda kinesis: kinesis.create_stream(StreamName=stream, ShardCount=shards)
        )

    def delete(self, stream: str) -> None:
        self.call(stream, lambda kinesis: kinesis.delete_stream(StreamName=stream))

    def check(self) -> str:
        """Readiness: the endpoint answers and every configured stream is usable."""
        states = {}
        for stream in self.settings.streams.values():
            answer = self.call(stream, partial(_summary, stream=stream))
            states[stream] = answer["StreamDescriptionSummary"]["StreamStatus"]
        unusable = {
            name: state for name, state in states.items() if state not in ("ACTIVE", "UPDATING")
        }
        if unusable:
            raise ApiError(503, ErrorCode.KINESIS_UNAVAILABLE, f"streams not active: {unusable}")
        return "streams active"
