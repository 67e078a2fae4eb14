"""A fake ingestion API for the emulator's tests: Kafka REST Proxy v2 and Kinesis-proxy shapes
(data contract §2), keeping what it received; failures switchable."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.support.api import KAFKA_JSON


@dataclass(frozen=True)
class Received:
    at: float
    method: str
    path: str
    content_type: str
    api_key: str | None
    body: Any
    status: int
    answer: Any


class FakeApi:
    """Kafka REST Proxy v2 and Kinesis-proxy shapes of data contract §2; failures switchable."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.offsets: Counter[str] = Counter()
        self.sequence = itertools.count(49_600_000_000_000_000_000)
        self.planned: deque[int] = deque()  # statuses for the next requests, whatever they are
        self.always: dict[str, int] = {}  # destination -> status for every request
        self.bad_records: set[tuple[str, int]] = set()  # (destination, row id) refused per record
        self.api_key: str | None = None

    # -- controls ------------------------------------------------------------------------------
    def fail_next(self, *statuses: int) -> None:
        with self.lock:
            self.planned.extend(statuses)

    def answers(self, status: int | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.received if status is None or r.status == status]

    # -- WSGI ------------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        status, answer = self._answer(request)
        with self.lock:
            try:
                body = json.loads(request.get_data())
            except ValueError:
                body = None
            self.received.append(
                Received(
                    at=time.monotonic(),
                    method=request.method,
                    path=request.path,
                    content_type=request.headers.get("Content-Type", ""),
                    api_key=request.headers.get("x-api-key"),
                    body=body,
                    status=status,
                    answer=answer,
                )
            )
        response = Response(json.dumps(answer), status=status, content_type="application/json")
        return response(environ, start_response)

    def _answer(self, request: Request) -> tuple[int, Any]:
        parts = request.path.strip("/").split("/")
        with self.lock:
            planned = self.planned.popleft() if self.planned else None
        if self.api_key is not None and request.headers.get("x-api-key") != self.api_key:
            return 403, {"message": "Forbidden"}
        if planned is not None:
            return planned, {"error_code": planned * 100 + 1, "message": f"planned {planned}"}
        destination = parts[1] if len(parts) > 1 else ""
        if destination in self.always:
            status = self.always[destination]
            return status, {"error_code": status * 100 + 1, "message": f"told to answer {status}"}
        try:
            body = json.loads(request.get_data())
        except ValueError:
            return 422, {"error_code": 42201, "message": "broken JSON"}
        if request.method == "POST" and len(parts) == 2 and parts[0] == "topics":
            if request.headers.get("Content-Type") != KAFKA_JSON:
                return 415, {"error_code": 415, "message": "HTTP 415 Unsupported Media Type"}
            return 200, self._produce(destination, body["records"])
        if request.method == "PUT" and len(parts) == 3 and parts[0] == "streams":
            if parts[2] == "record":
                return 200, self._put(destination, body["Data"])
            if parts[2] == "records":
                entries = [self._put(destination, entry["Data"]) for entry in body["Records"]]
                failed = sum(1 for entry in entries if "ErrorCode" in entry)
                return 200, {"FailedRecordCount": failed, "Records": entries}
        return 404, {"error_code": 40401, "message": "not found"}

    def _produce(self, topic: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        entries = []
        for record in records:
            value = record["value"]
            if (topic, value.get("index", value.get("ind"))) in self.bad_records:
                entries.append(
                    {"partition": None, "offset": None, "error_code": 42202, "error": "bad record"}
                )
                continue
            with self.lock:
                offset = self.offsets[topic]
                self.offsets[topic] += 1
            entries.append({"partition": 0, "offset": offset, "error_code": None, "error": None})
        return {"offsets": entries, "key_schema_id": None, "value_schema_id": None}

    def _put(self, stream: str, data: dict[str, Any]) -> dict[str, Any]:
        if (stream, data.get("index", data.get("ind"))) in self.bad_records:
            return {"ErrorCode": "InternalFailure", "ErrorMessage": "bad record"}
        with self.lock:
            number = next(self.sequence)
        return {"ShardId": "shardId-000000000000", "SequenceNumber": str(number)}
