"""Error responses: `{"error_code": int, "message": str}` as Confluent REST Proxy writes them.

`error_code` is the HTTP status followed by a two-digit detail where one is useful (REST Proxy
style: 40401 topic not found, 42201 invalid records, 50003 retriable broker error), otherwise
the HTTP status itself (413, 415). Every error of the API, including the ones Flask raises
(404 for an unknown path, 405, 413), uses this shape.
"""

from __future__ import annotations

from collections import defaultdict
from enum import IntEnum
from typing import Any

from flask import Response, jsonify
from pydantic import ValidationError

from pipeline.ingest.schemas import FORMAT_HINTS, ErrorResponse, RecordError


class ErrorCode(IntEnum):
    MALFORMED_JSON = 40001
    KINESIS_REJECTED = 40002
    FORBIDDEN = 40301
    TOPIC_NOT_FOUND = 40401
    STREAM_NOT_FOUND = 40404
    STREAM_IN_USE = 40901
    BODY_TOO_LARGE = 413
    RECORD_TOO_LARGE = 41301
    UNSUPPORTED_MEDIA_TYPE = 415
    INVALID_RECORDS = 42201
    INVALID_REQUEST = 42202
    IDEMPOTENCY_KEY_REUSED = 42203
    KAFKA_ERROR = 50002
    KAFKA_UNAVAILABLE = 50003
    KINESIS_UNAVAILABLE = 50301
    API_BUSY = 50302
    KINESIS_ERROR = 50201


class ApiError(Exception):
    """An error answered to the client: HTTP status, REST Proxy code, message, bad records."""

    def __init__(
        self,
        status: int,
        code: ErrorCode | int,
        message: str,
        errors: list[RecordError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = int(code)
        self.message = message
        self.errors = errors
        self.headers = headers or {}

    def response(self) -> Response:
        body = ErrorResponse(error_code=self.code, message=self.message, errors=self.errors)
        response = jsonify(body.model_dump(exclude_none=True))
        response.status_code = self.status
        response.headers.update(self.headers)
        return response


def invalid_records(errors: list[RecordError], total: int) -> ApiError:
    return ApiError(
        422,
        ErrorCode.INVALID_RECORDS,
        f"{len(errors)} of {total} records are invalid; nothing was written",
        errors,
    )


# Where the records list sits in each request model (Kafka `records`, Kinesis `Records`), and the
# fields of a single-record request (Kinesis PutRecord): errors there belong to record 0.
_RECORD_LISTS = ("records", "Records")
_SINGLE_RECORD_FIELDS = ("Data", "PartitionKey")
_MAX_REASONS_PER_RECORD = 20


def _describe(loc: tuple[int | str, ...], message: str) -> str:
    where = ".".join(str(part) for part in loc)
    return f"{where}: {message}" if where else message


def from_validation_error(error: ValidationError, body: Any) -> ApiError:
    """A pydantic error of a request model, as 422 listing each bad record with its reasons.

    Problems of the request around the records (no `records`, an empty list, unknown fields)
    are 42202; problems of records are 42201 with one entry per bad record.
    """
    by_record: dict[int, list[str]] = defaultdict(list)
    envelope: list[str] = []
    for item in error.errors(include_url=False, include_input=False):
        loc = tuple(item["loc"])
        message = item["msg"]
        if item["type"] == "string_pattern_mismatch" and loc and str(loc[-1]) in FORMAT_HINTS:
            message = FORMAT_HINTS[str(loc[-1])]
        if item["type"] == "too_long" and len(loc) == 1 and loc[0] in _RECORD_LISTS:
            context = item.get("ctx", {})
            message = (
                f"{context.get('actual_length')} records; at most {context.get('max_length')} "
                "per request: split the records into smaller requests"
            )
        if len(loc) >= 2 and loc[0] in _RECORD_LISTS and isinstance(loc[1], int):
            by_record[loc[1]].append(_describe(loc[2:], message))
        elif loc and loc[0] in _SINGLE_RECORD_FIELDS:
            by_record[0].append(_describe(loc, message))
        else:
            envelope.append(_describe(loc, message))
    if envelope or not by_record:
        return ApiError(
            422,
            ErrorCode.INVALID_REQUEST,
            "invalid request: " + "; ".join(envelope or ["request does not match the schema"]),
        )
    records = body.get("records", body.get("Records")) if isinstance(body, dict) else None
    total = len(records) if isinstance(records, list) else 1
    errors = [
        RecordError(index=index, reason="; ".join(reasons[:_MAX_REASONS_PER_RECORD]))
        for index, reasons in sorted(by_record.items())
    ]
    return invalid_records(errors, total)
