"""The ingestion API: Kafka REST Proxy v2 and API Gateway's Kinesis proxy, validated, observable.

Each configured topic and stream gets its own route (`POST /topics/<prefix>.pin`, ...) whose body
model is the row schema of its table, so the OpenAPI document shows the exact schema of each.
Unknown names fall through to catch-all routes that answer 404.

A request passes, in order: API key (403), topic/stream known (404), content type (415), a free
sink slot (503 when `threads` requests already wait for Kafka/Kinesis), size (413), UTF-8 JSON
(400), schema of every record and the record count (422, listing each bad record), the sinks'
size limits (422 per record, 413 for a whole PutRecords), then delivery (503 when the broker or
Kinesis does not answer in time). Nothing is written unless the whole request is valid.

Accepted content types: `application/vnd.kafka.json.v2+json` (REST Proxy's JSON embedded format)
and `application/vnd.kafka.v2+json` for Kafka; `application/json` for Kinesis. Only `charset=utf-8`
(or no charset). Anything else is 415.
"""

from __future__ import annotations

import atexit
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any, TypeVar

from flask import Response, g, request
from flask.json.provider import DefaultJSONProvider
from flask_openapi3.models.info import Info
from flask_openapi3.models.tag import Tag
from flask_openapi3.openapi import OpenAPI
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from pipeline.config import Settings, get_settings
from pipeline.ingest.errors import ApiError, ErrorCode, from_validation_error, invalid_records
from pipeline.ingest.idempotency import AnswersUnavailable, IdempotencyKey, KeyReused, fingerprint
from pipeline.ingest.kafka import (
    MAX_KEY_AND_VALUE_BYTES,
    MESSAGE_MAX_BYTES,
    RECORD_OVERHEAD_BYTES,
    KafkaDelivery,
    KafkaFailed,
    KafkaUnavailable,
    OutgoingRecord,
    RecordTooLarge,
    TopicNotFound,
)
from pipeline.ingest.kinesis import KinesisDelivery, check_sizes
from pipeline.ingest.metrics import Metrics
from pipeline.ingest.schemas import (
    PUT_RECORD_REQUESTS,
    PUT_RECORDS_REQUESTS,
    ROW_MODELS,
    Check,
    CreateStreamRequest,
    DescribeStreamResponse,
    EmptyResponse,
    ErrorResponse,
    Health,
    ListStreamsResponse,
    ProduceHeaders,
    ProduceResponse,
    PutRecordResponse,
    PutRecordsResponse,
    Readiness,
    RecordError,
    StreamPath,
    TopicPath,
    produce_requests,
)

log = logging.getLogger(__name__)

KAFKA_MEDIA_TYPES = ("application/vnd.kafka.json.v2+json", "application/vnd.kafka.v2+json")
KINESIS_MEDIA_TYPES = ("application/json",)
API_KEY_HEADER = "x-api-key"
EXTENSION = "pinpipe.ingest"
API_TITLE = "pinpipe ingestion API"

TAG_KAFKA = Tag(name="kafka", description="Kafka REST Proxy v2: produce to the batch layer")
TAG_KINESIS = Tag(name="kinesis", description="API Gateway Kinesis proxy: the stream layer")
TAG_OPS = Tag(name="operations", description="health, readiness, metrics")


# -- JSON ------------------------------------------------------------------------------------------


class OrderedJSONProvider(DefaultJSONProvider):
    """Responses keep the field order of the models (Flask sorts keys by default)."""

    sort_keys = False


def encode(value: Any) -> bytes:
    """A JSON value as compact UTF-8 JSON."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# -- the app ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteInfo:
    """What the request hooks need to know about an endpoint."""

    protected: bool = True
    media_types: tuple[str, ...] = ()  # empty: the route takes no body
    sink: str = ""
    table: str = ""
    uses_sink: bool = False  # calls Kafka or Kinesis: needs one of the sink slots


class Ingest:
    """Everything a running API holds: settings, sinks, metrics and its route table."""

    def __init__(
        self,
        settings: Settings,
        kafka: KafkaDelivery,
        kinesis: KinesisDelivery,
        metrics: Metrics,
        sink_slots: int = 8,
    ) -> None:
        self.settings = settings
        self.kafka = kafka
        self.kinesis = kinesis
        self.metrics = metrics
        self.routes: dict[str, RouteInfo] = {}
        # At most `sink_slots` requests wait for a sink at once; the server runs more threads
        # than that, so a stuck broker cannot take the threads /healthz and /readyz need.
        self.sink_slots = sink_slots
        self._slots = threading.BoundedSemaphore(sink_slots)
        self._closed = False

    def take_sink_slot(self) -> bool:
        if not self._slots.acquire(blocking=False):
            return False
        self.metrics.in_flight.inc()
        return True

    def release_sink_slot(self) -> None:
        self.metrics.in_flight.dec()
        self._slots.release()

    def close(self) -> None:
        """Graceful shutdown (after the in-flight requests were answered): deliver what the
        producer still holds within api_shutdown_flush_s, then drop it."""
        if not self._closed:
            self._closed = True
            self.kafka.close(self.settings.api_shutdown_flush_s)


class IngestOpenAPI(OpenAPI):
    """flask-openapi3 with two fixes to the generated document (the media types each body route
    really accepts, no generic 422 on routes without a body) and body validation by the views."""

    json_provider_class = OrderedJSONProvider

    @staticmethod
    def create_view_func(  # type: ignore[no-untyped-def]
        func, header, cookie, path, query, form, body, raw, *args, **kwargs
    ):
        """Bodies are validated by the views, from the raw bytes with pydantic's JSON parser
        (`parse_body`): faster than json.loads + model_validate, strict UTF-8, and the error
        order the API promises. The body model still documents the route."""
        return OpenAPI.create_view_func(
            func, header, cookie, path, query, form, None, raw, *args, **kwargs
        )

    def generate_spec_json(self) -> None:
        super().generate_spec_json()  # type: ignore[no-untyped-call]
        components = self.spec_json.get("components", {})
        if components.get("securitySchemes") is None:
            components.pop("securitySchemes", None)
        for path_item in self.spec_json["paths"].values():
            for operation in path_item.values():
                responses = operation.get("responses", {})
                injected = responses.get("422", {}).get("content", {}).get("application/json", {})
                if injected.get("schema", {}).get("type") == "array":
                    del responses["422"]
                media_types = operation.pop("x-media-types", None)
                body = operation.get("requestBody")
                if media_types and body:
                    schema = next(iter(body["content"].values()))
                    body["content"] = {media_type: schema for media_type in media_types}


def create_app(
    settings: Settings | None = None,
    *,
    kafka: KafkaDelivery | None = None,
    kinesis: KinesisDelivery | None = None,
    threads: int = 8,
) -> IngestOpenAPI:
    """The Flask app of the ingestion API. Sinks are created lazily on first use.

    `threads` requests may use the sinks at once; more get 503 at once (the server runs a few
    threads more, for the operations routes)."""
    settings = settings or get_settings()
    keys = [key for key in settings.api_keys if key]
    security_schemes: Any = (
        {"api_key": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}} if keys else None
    )
    app = IngestOpenAPI(
        __name__,
        info=Info(
            title=API_TITLE,
            version="1.0.0",
            description=(
                "Kafka REST Proxy v2 (`POST /topics/{topic}`) and API Gateway Kinesis proxy "
                "(`PUT /streams/{stream}/record[s]`) for pin, geo and user rows. "
                "Errors are `{error_code, message}`; a 422 lists each bad record."
            ),
        ),
        security_schemes=security_schemes,
        validation_error_model=ErrorResponse,
        validation_error_callback=lambda error: _validation_failed(error).response(),
    )
    app.config["MAX_CONTENT_LENGTH"] = settings.api_max_body_bytes
    ingest = Ingest(
        settings,
        kafka or KafkaDelivery(settings),
        kinesis or KinesisDelivery(settings, threads=threads),
        Metrics(),
        sink_slots=threads,
    )
    ingest.metrics.watch_kafka(ingest.kafka)
    app.extensions[EXTENSION] = ingest
    atexit.register(ingest.close)
    security: list[dict[str, list[Any]]] | None = [{"api_key": []}] if keys else None

    def responses(*codes: int, ok: Any = None) -> dict[int, Any]:
        documented: dict[int, Any] = {200: ok} if ok is not None else {}
        if keys:
            documented[403] = ErrorResponse
        documented.update({code: ErrorResponse for code in codes})
        return documented

    def route(
        method: str,
        rule: str,
        view: Callable[..., Any],
        *,
        info: RouteInfo,
        codes: tuple[int, ...] = (),
        ok: Any = None,
        tags: list[Tag] | None = None,
        media_types: tuple[str, ...] = (),
    ) -> None:
        endpoint = view.__name__
        if endpoint in ingest.routes:
            raise ValueError(f"duplicate endpoint {endpoint}")
        ingest.routes[endpoint] = info
        decorator = getattr(app, method)(
            rule,
            endpoint=endpoint,
            tags=tags,
            responses=responses(*codes, ok=ok),
            security=security if info.protected else None,
            openapi_extensions={"x-media-types": list(media_types)} if media_types else None,
        )
        decorator(view)

    _register_kafka(app, ingest, route)
    _register_kinesis(app, ingest, route)
    _register_operations(app, ingest, route)
    _register_hooks(app, ingest)
    return app


def ingest_of(app: Any) -> Ingest:
    found: Ingest = app.extensions[EXTENSION]
    return found


def _current() -> Ingest:
    from flask import current_app

    return ingest_of(current_app)


def _validation_failed(error: ValidationError, data: bytes | None = None) -> ApiError:
    """422 for a body that does not match its model (counting its records for the metrics)."""
    try:
        body = json.loads(data) if data is not None else None
    except ValueError:
        body = None
    failure = from_validation_error(error, body)
    info = _current().routes.get(request.endpoint or "")
    if info is not None and info.sink:
        records = body.get("records", body.get("Records")) if isinstance(body, dict) else None
        count = len(records) if isinstance(records, list) else 1
        _current().metrics.records.labels(info.sink, info.table, "rejected").inc(count)
    return failure


Body = TypeVar("Body", bound=BaseModel)


def parse_body(model: type[Body]) -> Body:
    """The request body as `model`: 413 past the size limit, 400 for bytes that are not UTF-8
    JSON, 422 listing every bad record."""
    data = request.get_data(cache=False)
    try:
        return model.model_validate_json(data)
    except ValidationError as error:
        broken = [e for e in error.errors(include_url=False) if e["type"] == "json_invalid"]
        if broken:
            reason = broken[0]["msg"].removeprefix("Invalid JSON: ")
            if not data:
                reason = "empty body"
            raise ApiError(400, ErrorCode.MALFORMED_JSON, f"malformed JSON: {reason}") from None
        raise _validation_failed(error, data) from None


Register = Callable[..., None]


def _named(name: str, view: Callable[..., Any], doc: str, annotations: dict[str, Any]) -> Any:
    view.__name__ = view.__qualname__ = name
    view.__doc__ = doc
    view.__annotations__ = annotations
    return view


def _row_json(row: BaseModel) -> bytes:
    """A validated row as compact UTF-8 JSON, in the schema's column order and types."""
    serialized: bytes = row.__pydantic_serializer__.to_json(row)
    return serialized


# -- Kafka -----------------------------------------------------------------------------------------


def _register_kafka(app: IngestOpenAPI, ingest: Ingest, route: Register) -> None:
    for table, topic in ingest.settings.topics.items():
        route(
            "post",
            f"/topics/{topic}",
            _produce_view(ingest, table, topic),
            info=RouteInfo(
                media_types=KAFKA_MEDIA_TYPES, sink="kafka", table=table, uses_sink=True
            ),
            codes=(400, 404, 413, 415, 422, 503),
            ok=ProduceResponse,
            tags=[TAG_KAFKA],
            media_types=KAFKA_MEDIA_TYPES,
        )

    known_topics = list(ingest.settings.topics.values())

    def produce_unknown_topic(path: TopicPath) -> Any:
        raise ApiError(
            404,
            ErrorCode.TOPIC_NOT_FOUND,
            f"Topic {path.topic} not found; known topics: {', '.join(known_topics)}",
        )

    route(
        "post",
        "/topics/<topic>",
        _named(
            "produce_unknown_topic",
            produce_unknown_topic,
            "Any other topic: 404 (error_code 40401)",
            {"path": TopicPath},
        ),
        info=RouteInfo(),
        codes=(404,),
        tags=[TAG_KAFKA],
    )


def _produce_response(acknowledged: list[tuple[int, int]], replayed: bool = False) -> Response:
    """The ProduceResponse JSON, written directly: for 500 records this is several times faster
    than building 500 dicts for jsonify (the shape is checked against the model by the tests)."""
    offsets = ",".join(
        f'{{"partition":{partition},"offset":{offset},"error_code":null,"error":null}}'
        for partition, offset in acknowledged
    )
    response = Response(
        f'{{"offsets":[{offsets}],"key_schema_id":null,"value_schema_id":null}}',
        content_type="application/json",
    )
    if replayed:  # the answer of an earlier request with this Idempotency-Key; nothing written
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _idempotency_key(header: ProduceHeaders) -> str | None:
    """The key, without the double quotes of the draft's sf-string form (bare keys, as most
    clients send them, are accepted too)."""
    key = header.idempotency_key
    if key is not None and len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    return key


def _produce_view(ingest: Ingest, table: str, topic: str) -> Any:
    model = produce_requests(ingest.settings.api_max_records)[table]
    limit = MAX_KEY_AND_VALUE_BYTES

    row_json = ROW_MODELS[table].__pydantic_serializer__.to_json

    def produce(header: ProduceHeaders) -> Any:
        records: list[Any] = parse_body(model).records  # type: ignore[attr-defined]
        partitions = ingest.kafka.partitions(topic)
        errors: list[RecordError] = []
        outgoing: list[OutgoingRecord] = []
        for index, record in enumerate(records):
            value: bytes = row_json(record.value)
            # A row's JSON stays far below the limit (text columns are bounded); a key need not.
            if record.key is None and record.partition is None and len(value) <= limit:
                outgoing.append(OutgoingRecord(value))  # the common case, kept lean
                continue
            key = None if record.key is None else encode(record.key)
            if record.partition is not None and record.partition >= partitions:
                errors.append(
                    RecordError(
                        index=index,
                        reason=f"partition {record.partition} does not exist: "
                        f"{topic} has {partitions}",
                    )
                )
            size = len(value) + len(key or b"")
            if size > limit:  # what the producer would refuse (MSG_SIZE_TOO_LARGE)
                errors.append(
                    RecordError(
                        index=index,
                        reason=f"key + value are {size} bytes as JSON; a Kafka record holds at "
                        f"most {limit} (message.max.bytes {MESSAGE_MAX_BYTES} minus "
                        f"{RECORD_OVERHEAD_BYTES} bytes of record overhead)",
                    )
                )
            outgoing.append(OutgoingRecord(value, key, record.partition))
        if errors:
            ingest.metrics.records.labels("kafka", table, "rejected").inc(len(records))
            raise invalid_records(errors, len(records))
        given = _idempotency_key(header)
        idempotency = None if given is None else IdempotencyKey(given, fingerprint(topic, outgoing))
        started = time.perf_counter()
        try:
            job = ingest.kafka.submit(topic, outgoing, idempotency)
        except (KafkaUnavailable, KafkaFailed, RecordTooLarge, AnswersUnavailable):
            ingest.metrics.records.labels("kafka", table, "failed").inc(len(records))
            raise
        except KeyReused:
            ingest.metrics.records.labels("kafka", table, "rejected").inc(len(records))
            raise
        ingest.metrics.delivery.labels("kafka").observe(time.perf_counter() - started)
        outcome = "replayed" if job.replayed else "written"
        ingest.metrics.records.labels("kafka", table, outcome).inc(len(records))
        return _produce_response(job.offsets or [], replayed=job.replayed)

    return _named(
        f"produce_{table}",
        produce,
        f"Produce {table} rows to {topic}\n"
        "Answers 200 only once the broker acknowledged every record (acks=all) and the Kafka "
        "transaction holding them committed, with the real partition and offset of each "
        "record, in request order. Any error: nothing of the request is visible to "
        "read_committed consumers. With `Idempotency-Key`, a retry is answered, not written "
        "again.",
        {"body": model, "header": ProduceHeaders},
    )


# -- Kinesis ---------------------------------------------------------------------------------------


def _known_stream(ingest: Ingest, stream: str) -> str:
    known = list(ingest.settings.streams.values())
    if stream not in known:
        raise ApiError(
            404,
            ErrorCode.STREAM_NOT_FOUND,
            f"Stream {stream} not found; known streams: {', '.join(known)}",
        )
    return stream


def _register_kinesis(app: IngestOpenAPI, ingest: Ingest, route: Register) -> None:
    kinesis = ingest.kinesis
    record_codes = (400, 404, 413, 415, 422, 503)
    for table, stream in ingest.settings.streams.items():
        info = RouteInfo(
            media_types=KINESIS_MEDIA_TYPES, sink="kinesis", table=table, uses_sink=True
        )
        route(
            "put",
            f"/streams/{stream}/record",
            _put_record_view(ingest, table, stream),
            info=info,
            codes=record_codes,
            ok=PutRecordResponse,
            tags=[TAG_KINESIS],
            media_types=KINESIS_MEDIA_TYPES,
        )
        route(
            "put",
            f"/streams/{stream}/records",
            _put_records_view(ingest, table, stream),
            info=info,
            codes=record_codes,
            ok=PutRecordsResponse,
            tags=[TAG_KINESIS],
            media_types=KINESIS_MEDIA_TYPES,
        )

    def put_unknown_stream_record(path: StreamPath) -> Any:
        _known_stream(ingest, path.stream)

    def put_unknown_stream_records(path: StreamPath) -> Any:
        _known_stream(ingest, path.stream)

    for name, view, suffix in (
        ("put_unknown_stream_record", put_unknown_stream_record, "record"),
        ("put_unknown_stream_records", put_unknown_stream_records, "records"),
    ):
        route(
            "put",
            f"/streams/<stream>/{suffix}",
            _named(name, view, "Any other stream: 404 (error_code 40404)", {"path": StreamPath}),
            info=RouteInfo(),
            codes=(404,),
            tags=[TAG_KINESIS],
        )

    def list_streams() -> Any:
        return kinesis.list_streams()

    def describe_stream(path: StreamPath) -> Any:
        return kinesis.describe(_known_stream(ingest, path.stream))

    def create_stream(path: StreamPath) -> Any:
        stream = _known_stream(ingest, path.stream)
        body = parse_body(CreateStreamRequest)
        kinesis.create(stream, body.ShardCount or ingest.settings.kinesis_shards)
        return {}

    def delete_stream(path: StreamPath) -> Any:
        kinesis.delete(_known_stream(ingest, path.stream))
        return {}

    route(
        "get",
        "/streams",
        _named("list_streams", list_streams, "List Kinesis streams (ListStreams)", {}),
        info=RouteInfo(uses_sink=True),
        codes=(503,),
        ok=ListStreamsResponse,
        tags=[TAG_KINESIS],
    )
    route(
        "get",
        "/streams/<stream>",
        _named(
            "describe_stream",
            describe_stream,
            "Describe a stream (DescribeStream)",
            {"path": StreamPath},
        ),
        info=RouteInfo(uses_sink=True),
        codes=(404, 503),
        ok=DescribeStreamResponse,
        tags=[TAG_KINESIS],
    )
    route(
        "post",
        "/streams/<stream>",
        _named(
            "create_stream",
            create_stream,
            'Create a configured stream (CreateStream)\nBody `{}` or `{"ShardCount": n}`; '
            "409 if it exists.",
            {"path": StreamPath, "body": CreateStreamRequest},
        ),
        info=RouteInfo(media_types=KINESIS_MEDIA_TYPES, uses_sink=True),
        codes=(400, 404, 409, 413, 415, 422, 503),
        ok=EmptyResponse,
        tags=[TAG_KINESIS],
        media_types=KINESIS_MEDIA_TYPES,
    )
    route(
        "delete",
        "/streams/<stream>",
        _named(
            "delete_stream",
            delete_stream,
            "Delete a configured stream (DeleteStream)",
            {"path": StreamPath},
        ),
        info=RouteInfo(uses_sink=True),
        codes=(404, 409, 503),
        ok=EmptyResponse,
        tags=[TAG_KINESIS],
    )


def _check_kinesis_sizes(ingest: Ingest, table: str, records: list[tuple[bytes, str]]) -> None:
    try:
        check_sizes(records)
    except ApiError:
        ingest.metrics.records.labels("kinesis", table, "rejected").inc(len(records))
        raise


def _put_record_view(ingest: Ingest, table: str, stream: str) -> Any:
    model = PUT_RECORD_REQUESTS[table]

    def put_record() -> Any:
        body: Any = parse_body(model)
        data = _row_json(body.Data)
        _check_kinesis_sizes(ingest, table, [(data, body.PartitionKey)])
        started = time.perf_counter()
        try:
            answer = ingest.kinesis.put_record(stream, data, body.PartitionKey)
        except ApiError:
            ingest.metrics.records.labels("kinesis", table, "failed").inc()
            raise
        ingest.metrics.delivery.labels("kinesis").observe(time.perf_counter() - started)
        ingest.metrics.records.labels("kinesis", table, "written").inc()
        return answer

    return _named(
        f"put_{table}_record",
        put_record,
        f"Put one {table} row into {stream} (PutRecord)\n"
        "`Data` is the row object; it is stored as its JSON bytes.",
        {"body": model},
    )


def _put_records_view(ingest: Ingest, table: str, stream: str) -> Any:
    model = PUT_RECORDS_REQUESTS[table]

    def put_records() -> Any:
        body: Any = parse_body(model)
        records = [(_row_json(record.Data), record.PartitionKey) for record in body.Records]
        _check_kinesis_sizes(ingest, table, records)
        started = time.perf_counter()
        try:
            answer = ingest.kinesis.put_records(stream, records)
        except ApiError:
            ingest.metrics.records.labels("kinesis", table, "failed").inc(len(records))
            raise
        ingest.metrics.delivery.labels("kinesis").observe(time.perf_counter() - started)
        failed = int(answer["FailedRecordCount"])
        ingest.metrics.records.labels("kinesis", table, "written").inc(len(records) - failed)
        if failed:
            ingest.metrics.records.labels("kinesis", table, "failed").inc(failed)
        return answer

    return _named(
        f"put_{table}_records",
        put_records,
        f"Put up to 500 {table} rows into {stream} (PutRecords)\n"
        "Kinesis may fail single records (throttling): those carry `ErrorCode` and count in "
        "`FailedRecordCount`, as PutRecords reports them; the client retries them.",
        {"body": model},
    )


# -- operations ------------------------------------------------------------------------------------


def _caller_has_key(ingest: Ingest) -> bool:
    """True when no keys are configured (local/docker default) or the request carries one."""
    keys = [key.encode() for key in ingest.settings.api_keys if key]
    given = request.headers.get(API_KEY_HEADER, "").encode()
    return not keys or any(hmac.compare_digest(given, key) for key in keys)


class ApiIndex(BaseModel):
    """`GET /`: what this server is and where to go next."""

    name: str
    links: dict[str, str]


def _index_links(app: IngestOpenAPI) -> dict[str, str]:
    docs = app.doc_prefix
    return {
        "docs": f"{docs}/swagger",
        "openapi": f"{docs}/openapi.json",
        "health": "/healthz",
        "ready": "/readyz",
        "metrics": "/metrics",
    }


def _index_html(index: ApiIndex) -> str:
    name = escape(index.name)
    items = "".join(
        f'<li><a href="{escape(url)}">{escape(what)}</a>: {escape(url)}</li>'
        for what, url in index.links.items()
    )
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{name}</title></head>"
        f"<body><h1>{name}</h1><ul>{items}</ul></body></html>"
    )


def _register_operations(app: IngestOpenAPI, ingest: Ingest, route: Register) -> None:
    def index() -> Any:
        body = ApiIndex(name=API_TITLE, links=_index_links(app))
        # a browser asking for the root gets the links as a page; any other client, JSON
        if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
            return Response(_index_html(body), mimetype="text/html")
        return body.model_dump()

    def healthz() -> Any:
        return {"status": "ok"}

    def readyz() -> Any:
        checks: dict[str, Check] = {}
        for name, probe in (("kafka", ingest.kafka.check), ("kinesis", ingest.kinesis.check)):
            try:
                checks[name] = Check(ok=True, detail=probe())
            # whatever a probe raises (a bad bootstrap address too) means "not ready", never a 500
            except Exception as error:
                detail = error.message if isinstance(error, ApiError) else str(error)
                if isinstance(error, TopicNotFound):
                    detail = f"topics missing: {detail}"
                checks[name] = Check(ok=False, detail=detail)
        ready = all(check.ok for check in checks.values())
        if not _caller_has_key(ingest):
            # the details name brokers and endpoints: only for callers holding a key
            checks = {name: Check(ok=check.ok, detail="") for name, check in checks.items()}
        body = Readiness(status="ready" if ready else "not ready", checks=checks)
        return body.model_dump(), 200 if ready else 503

    def metrics() -> Any:
        return Response(
            ingest.metrics.render(), mimetype=None, content_type=ingest.metrics.content_type
        )

    ops = RouteInfo(protected=False)
    route(
        "get",
        "/",
        _named("index", index, "Links to the API docs, health, readiness and metrics", {}),
        info=ops,
        ok=ApiIndex,
        tags=[TAG_OPS],
    )
    route(
        "get",
        "/healthz",
        _named("healthz", healthz, "Liveness: the process answers", {}),
        info=ops,
        ok=Health,
        tags=[TAG_OPS],
    )
    route(
        "get",
        "/readyz",
        _named(
            "readyz", readyz, "Readiness: Kafka and Kinesis answer, topics and streams exist", {}
        ),
        info=ops,
        codes=(503,),
        ok=Readiness,
        tags=[TAG_OPS],
    )
    route(
        "get",
        "/metrics",
        _named("metrics", metrics, "Prometheus metrics (text exposition format)", {}),
        info=ops,
        ok={
            "description": "Prometheus text format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        tags=[TAG_OPS],
    )


# -- request hooks and error handlers --------------------------------------------------------------


def _media_type_problem(accepted: tuple[str, ...]) -> str | None:
    mimetype = request.mimetype
    if mimetype not in accepted:
        shown = f"'{request.content_type}'" if request.content_type else "none"
        return f"Content-Type {shown} is not supported; use {' or '.join(accepted)}"
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        return f"charset {charset} is not supported; send UTF-8"
    return None


def _register_hooks(app: IngestOpenAPI, ingest: Ingest) -> None:
    @app.before_request
    def check_request() -> None:
        g.started = time.perf_counter()
        info = ingest.routes.get(request.endpoint or "")
        if info is None:
            return
        if info.protected and not _caller_has_key(ingest):
            raise ApiError(
                403, ErrorCode.FORBIDDEN, f"Forbidden: missing or wrong {API_KEY_HEADER}"
            )
        stream = (request.view_args or {}).get("stream")
        if stream is not None:  # generic stream routes: 404 before looking at the body
            _known_stream(ingest, stream)
        if info.media_types:
            problem = _media_type_problem(info.media_types)
            if problem:
                raise ApiError(415, ErrorCode.UNSUPPORTED_MEDIA_TYPE, problem)
        if info.uses_sink:
            # Never queue for a slot: a waiting request would hold a server thread too.
            if not ingest.take_sink_slot():
                raise ApiError(
                    503,
                    ErrorCode.API_BUSY,
                    f"{ingest.sink_slots} requests are already waiting for Kafka/Kinesis "
                    "(a slow or stuck broker, or more concurrent clients than the API's "
                    "threads); retry later",
                    headers={"Retry-After": "1"},
                )
            g.sink_slot = True

    @app.teardown_request
    def release_sink_slot(_error: BaseException | None) -> None:
        if g.pop("sink_slot", False):
            ingest.release_sink_slot()

    @app.after_request
    def observe(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else "unmatched"
        ingest.metrics.requests.labels(route, request.method, str(response.status_code)).inc()
        started = g.get("started")
        if started is not None:
            ingest.metrics.latency.labels(route, request.method).observe(
                time.perf_counter() - started
            )
        if response.status_code >= 400 and response.is_json:
            code = (response.get_json(silent=True) or {}).get("error_code", response.status_code)
            ingest.metrics.errors.labels(route, str(code)).inc()
        return response

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        if error.status >= 500:
            log.warning("%s %s -> %d %s", request.method, request.path, error.status, error.message)
        return error.response()

    @app.errorhandler(KafkaUnavailable)
    def kafka_unavailable(error: KafkaUnavailable) -> Response:
        log.warning("%s %s -> 503 %s", request.method, request.path, error)
        return ApiError(503, ErrorCode.KAFKA_UNAVAILABLE, str(error)).response()

    @app.errorhandler(KafkaFailed)
    def kafka_failed(error: KafkaFailed) -> Response:
        log.error("%s %s -> 500 %s", request.method, request.path, error)
        return ApiError(500, ErrorCode.KAFKA_ERROR, str(error)).response()

    @app.errorhandler(KeyReused)
    def key_reused(error: KeyReused) -> Response:
        return ApiError(422, ErrorCode.IDEMPOTENCY_KEY_REUSED, str(error)).response()

    @app.errorhandler(AnswersUnavailable)
    def answers_unavailable(error: AnswersUnavailable) -> Response:
        log.warning("%s %s -> 503 %s", request.method, request.path, error)
        return ApiError(
            503,
            ErrorCode.KAFKA_UNAVAILABLE,
            f"Idempotency-Key answers cannot be read yet ({error}); retry later "
            "(nothing of this request was written)",
        ).response()

    @app.errorhandler(RecordTooLarge)
    def record_too_large(error: RecordTooLarge) -> Response:
        log.warning("%s %s -> 413 %s", request.method, request.path, error)
        return ApiError(413, ErrorCode.RECORD_TOO_LARGE, str(error)).response()

    @app.errorhandler(TopicNotFound)
    def topic_not_found(error: TopicNotFound) -> Response:
        return ApiError(
            404, ErrorCode.TOPIC_NOT_FOUND, f"Topic {error} not found in the Kafka cluster"
        ).response()

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        if error.response is not None:  # flask-openapi3 aborts with our 422 response
            return error.response  # type: ignore[return-value]
        code = error.code or 500
        message = error.description or error.name
        if isinstance(error, RequestEntityTooLarge):
            message = f"Request body larger than {ingest.settings.api_max_body_bytes} bytes"
        response = ApiError(code, code, message).response()
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.path)
        return ApiError(500, 50001, f"internal error: {type(error).__name__}").response()
