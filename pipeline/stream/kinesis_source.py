"""`spark.readStream.format("kinesis")` where Spark has no Kinesis source (everywhere but
Databricks): a PySpark Python streaming data source with Databricks' options and output schema.

Options (Databricks' names): `streamName` (one or a comma-separated list), `region`, `endpoint`,
`initialPosition` (`latest` (default), `trim_horizon` or `earliest`, or
`{"at_timestamp": "<ISO 8601>"}`), `awsAccessKey` / `awsSecretKey` (else boto3's default
credential chain), `maxRecordsPerFetch` (GetRecords limit, 10000), `maxFetchDuration` (how long
one trigger may read ahead, `10s`), `shardFetchInterval` (how often ListShards looks for new
shards, `1s`), `minFetchPeriod` (pause between GetRecords calls on one shard, `400ms`) and
`failOnDataLoss` (`true`).

How it maps onto Spark's `DataSourceStreamReader`:

- an offset is `{stream: {shardId: position}}`, a position being where the next read starts:
  `TRIM_HORIZON`, `AT_TIMESTAMP` (ms) or `AFTER_SEQUENCE_NUMBER` (the last record delivered),
  with `closed: true` once a closed shard has been read to its end;
- `latestOffset` reads every shard forward from the newest known position with GetRecords (the
  only way Kinesis tells where a shard ends), keeps those records, and returns the new ends;
- `partitions(start, end)` is one partition per shard that moved; it carries the records read by
  `latestOffset` when they cover exactly that range, else the executor reads them again
  (after a restart, when Spark replays a batch from its offset log);
- shards are found with ListShards as the stream changes; a child shard is read only once its
  parents are read to their end, so each partition key keeps its order.

Spark tells a restarted reader where its checkpoint stands by calling `partitions(last, last)`
(`AcceptsLatestSeenOffset`), so reading resumes there rather than at `initialPosition`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.types import (
    BinaryType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

# Databricks' Kinesis source schema, column for column.
KINESIS_SCHEMA = StructType(
    [
        StructField("partitionKey", StringType()),
        StructField("data", BinaryType()),
        StructField("stream", StringType()),
        StructField("shardId", StringType()),
        StructField("sequenceNumber", StringType()),
        StructField("approximateArrivalTimestamp", TimestampType()),
    ]
)

TRIM_HORIZON = "TRIM_HORIZON"
AT_TIMESTAMP = "AT_TIMESTAMP"
AFTER_SEQUENCE_NUMBER = "AFTER_SEQUENCE_NUMBER"

# Records kept on the driver between `latestOffset` and `partitions`, per shard; above this the
# executor reads them again from Kinesis instead.
PREFETCH_BYTES_LIMIT = 16 * 2**20

Position = dict[str, Any]
Offset = dict[str, dict[str, Position]]
ShardKey = tuple[str, str]
KinesisRow = tuple[str, bytes, str, str, str, datetime]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|seconds?|m|min|minutes?)?\s*$", re.I)


class KinesisSourceError(ValueError):
    """A bad option value, or records that can no longer be read."""


def parse_duration(text: str, option: str) -> float:
    """`400ms`, `10s`, `1m`, or a bare number of seconds → seconds."""
    match = _DURATION.match(text)
    if not match:
        raise KinesisSourceError(f"option {option}: {text!r} is not a duration like 10s or 400ms")
    number, unit = float(match.group(1)), (match.group(2) or "s").lower()
    if unit == "ms":
        return number / 1000
    if unit.startswith("m"):
        return number * 60
    return number


def _epoch_ms(moment: datetime) -> int:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)


def parse_initial_position(text: str) -> Position:
    """`initialPosition` → the position every shard known at the first start begins at."""
    value = text.strip()
    lowered = value.lower()
    if lowered in ("trim_horizon", "earliest"):
        return {"iteratorType": TRIM_HORIZON}
    if lowered == "latest":
        # Reproducible stand-in for LATEST: everything that arrives from the first start on.
        return {"iteratorType": AT_TIMESTAMP, "timestamp": _epoch_ms(datetime.now(UTC))}
    if value.startswith("{"):
        try:
            spec = json.loads(value)
            moment = datetime.fromisoformat(str(spec["at_timestamp"]).replace("Z", "+00:00"))
        except (ValueError, KeyError, TypeError) as error:
            raise KinesisSourceError(
                'option initialPosition: expected {"at_timestamp": "<ISO 8601 time>"}, '
                f"got {value!r}"
            ) from error
        return {"iteratorType": AT_TIMESTAMP, "timestamp": _epoch_ms(moment)}
    raise KinesisSourceError(
        "option initialPosition must be latest, trim_horizon, earliest or "
        f'{{"at_timestamp": ...}}, got {value!r}'
    )


def _flag(options: Mapping[str, str], name: str, default: bool) -> bool:
    text = options.get(name)
    if text is None:
        return default
    if text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    raise KinesisSourceError(f"option {name} must be true or false, got {text!r}")


@dataclass(frozen=True)
class KinesisOptions:
    """The reader's options, checked once on the driver."""

    streams: tuple[str, ...]
    initial_position: Position
    region: str | None = None
    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    max_records_per_fetch: int = 10_000
    max_fetch_duration_s: float = 10.0
    shard_fetch_interval_s: float = 1.0
    min_fetch_period_s: float = 0.4
    fail_on_data_loss: bool = True

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> KinesisOptions:
        # Spark passes a case-insensitive map; normalise so lookups do not depend on spelling.
        lowered = {key.lower(): value for key, value in options.items()}

        def get(name: str) -> str | None:
            return lowered.get(name.lower())

        names = (get("streamName") or "").split(",")
        streams = tuple(name.strip() for name in names if name.strip())
        if not streams:
            raise KinesisSourceError("option streamName is required (one or more stream names)")
        access_key, secret_key = get("awsAccessKey"), get("awsSecretKey")
        if bool(access_key) != bool(secret_key):
            raise KinesisSourceError("options awsAccessKey and awsSecretKey go together")
        try:
            max_records = int(get("maxRecordsPerFetch") or 10_000)
        except ValueError as error:
            raise KinesisSourceError("option maxRecordsPerFetch must be a whole number") from error
        if not 1 <= max_records <= 10_000:
            raise KinesisSourceError("option maxRecordsPerFetch must be within 1..10000")
        return cls(
            streams=streams,
            initial_position=parse_initial_position(get("initialPosition") or "latest"),
            region=get("region") or None,
            endpoint=get("endpoint") or None,
            access_key=access_key or None,
            secret_key=secret_key or None,
            max_records_per_fetch=max_records,
            max_fetch_duration_s=parse_duration(
                get("maxFetchDuration") or "10s", "maxFetchDuration"
            ),
            shard_fetch_interval_s=parse_duration(
                get("shardFetchInterval") or "1s", "shardFetchInterval"
            ),
            min_fetch_period_s=parse_duration(get("minFetchPeriod") or "400ms", "minFetchPeriod"),
            fail_on_data_loss=_flag(lowered, "failondataloss", True),
        )

    def client(self) -> KinesisClient:
        import boto3
        from botocore.config import Config

        kwargs: dict[str, Any] = {
            # botocore's standard mode retries throttling and transient errors with backoff.
            "config": Config(
                retries={"mode": "standard", "total_max_attempts": 8},
                connect_timeout=5,
                read_timeout=30,
            ),
        }
        if self.region:
            kwargs["region_name"] = self.region
        if self.endpoint:
            kwargs["endpoint_url"] = self.endpoint
        if self.access_key and self.secret_key:
            kwargs["aws_access_key_id"] = self.access_key
            kwargs["aws_secret_access_key"] = self.secret_key
        return boto3.client("kinesis", **kwargs)


# -- positions and offsets ---------------------------------------------------------------------


def after(sequence_number: str, closed: bool = False) -> Position:
    position: Position = {"iteratorType": AFTER_SEQUENCE_NUMBER, "sequenceNumber": sequence_number}
    if closed:
        position["closed"] = True
    return position


def closed(position: Position) -> Position:
    """The same position, marking its shard as read to the end."""
    return {**position, "closed": True}


def is_closed(position: Position) -> bool:
    return bool(position.get("closed"))


def sequence_of(position: Position) -> int | None:
    sequence = position.get("sequenceNumber")
    return int(sequence) if sequence is not None else None


def is_ahead(candidate: Position, current: Position) -> bool:
    """Whether `candidate` is further along its shard than `current`."""
    new, old = sequence_of(candidate), sequence_of(current)
    if new is not None and (old is None or new > old):
        return True
    return new == old and is_closed(candidate) and not is_closed(current)


def canonical(positions: Mapping[ShardKey, Position]) -> Offset:
    """The offset as JSON-ready dict in a fixed order: Spark compares offsets as JSON text."""
    offset: Offset = {}
    for stream, shard in sorted(positions):
        position = positions[(stream, shard)]
        ordered: Position = {"iteratorType": position["iteratorType"]}
        for key in ("sequenceNumber", "timestamp", "closed"):
            if key in position:
                ordered[key] = position[key]
        offset.setdefault(stream, {})[shard] = ordered
    return offset


def flatten(offset: Mapping[str, Mapping[str, Position]]) -> dict[ShardKey, Position]:
    return {
        (stream, shard): dict(position)
        for stream, shards in offset.items()
        for shard, position in shards.items()
    }


def shard_iterator(client: KinesisClient, key: ShardKey, position: Position) -> str:
    stream, shard = key
    kind = position["iteratorType"]
    kwargs: dict[str, Any] = {"StreamName": stream, "ShardId": shard, "ShardIteratorType": kind}
    if kind == AFTER_SEQUENCE_NUMBER:
        kwargs["StartingSequenceNumber"] = position["sequenceNumber"]
    elif kind == AT_TIMESTAMP:
        kwargs["Timestamp"] = datetime.fromtimestamp(position["timestamp"] / 1000, UTC)
    return client.get_shard_iterator(**kwargs)["ShardIterator"]


def to_row(key: ShardKey, record: Mapping[str, Any]) -> KinesisRow:
    stream, shard = key
    arrival = record["ApproximateArrivalTimestamp"]
    # Spark's TimestampType takes naive datetimes as session-local time; UTC-aware is unambiguous.
    arrival = arrival if arrival.tzinfo else arrival.replace(tzinfo=UTC)
    return (
        record["PartitionKey"],
        bytes(record["Data"]),
        stream,
        shard,
        record["SequenceNumber"],
        arrival,
    )


# -- the data source ---------------------------------------------------------------------------


@dataclass
class ShardInfo:
    parents: tuple[str, ...]
    closed: bool


@dataclass
class Prefetch:
    """Records read by `latestOffset` for one shard, covering (start, end]."""

    start: Position
    end: Position
    rows: list[KinesisRow]
    size: int = 0


class ShardRange(InputPartition):
    """The records of one shard after `start` up to and including sequence number `end`."""

    def __init__(
        self,
        stream: str,
        shard: str,
        start: Position,
        end: str,
        rows: list[KinesisRow] | None,
    ) -> None:
        super().__init__((stream, shard))
        self.stream = stream
        self.shard = shard
        self.start = start
        self.end = end
        self.rows = rows

    def __repr__(self) -> str:
        cached = "cached" if self.rows is not None else "to read"
        return f"ShardRange({self.stream}/{self.shard}, {self.start} → {self.end}, {cached})"


class KinesisStreamReader(DataSourceStreamReader):
    """Offsets per shard, read with GetRecords against the configured endpoint."""

    def __init__(self, options: KinesisOptions) -> None:
        self.options = options
        self._reset()

    def _reset(self) -> None:
        self._client: KinesisClient | None = None
        self._tip: dict[ShardKey, Position] = {}
        self._initial: dict[ShardKey, Position] | None = None
        self._shards: dict[ShardKey, ShardInfo] = {}
        self._iterators: dict[ShardKey, tuple[Position, str]] = {}
        self._prefetched: dict[ShardKey, Prefetch] = {}
        self._last_fetch: dict[ShardKey, float] = {}
        self._last_discovery = float("-inf")

    # The reader travels to executors (pickled with the read function): options only.
    def __getstate__(self) -> dict[str, Any]:
        return {"options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.options = state["options"]
        self._reset()

    @property
    def client(self) -> KinesisClient:
        if self._client is None:
            self._client = self.options.client()
        return self._client

    # -- shards --------------------------------------------------------------------------------
    def _list_shards(self, stream: str) -> list[Mapping[str, Any]]:
        shards: list[Mapping[str, Any]] = []
        answer = self.client.list_shards(StreamName=stream)
        shards += answer["Shards"]
        while answer.get("NextToken"):
            answer = self.client.list_shards(NextToken=answer["NextToken"])
            shards += answer["Shards"]
        return shards

    def _discover(self, start_at: Position) -> None:
        """Learn new shards (they start at `start_at`) and which shards are closed."""
        for stream in self.options.streams:
            for shard in self._list_shards(stream):
                key = (stream, shard["ShardId"])
                parent_fields = ("ParentShardId", "AdjacentParentShardId")
                parents = tuple(shard[name] for name in parent_fields if name in shard)
                is_shard_closed = "EndingSequenceNumber" in shard["SequenceNumberRange"]
                self._shards[key] = ShardInfo(parents, is_shard_closed)
                if key not in self._tip:
                    self._tip[key] = dict(start_at)
                    if self._initial is not None:
                        log.info("kinesis: new shard %s/%s", *key)
        self._last_discovery = time.monotonic()

    def _readable(self, key: ShardKey) -> bool:
        """Open for reading: not yet read to its end, and its parents are (order per key)."""
        if is_closed(self._tip[key]):
            return False
        stream = key[0]
        info = self._shards.get(key)
        parents = info.parents if info else ()
        return all(
            is_closed(self._tip[(stream, parent)])
            for parent in parents
            if (stream, parent) in self._tip
        )

    # -- offsets -------------------------------------------------------------------------------
    def initialOffset(self) -> Offset:
        if self._initial is None:
            self._discover(self.options.initial_position)
            self._initial = {key: dict(position) for key, position in self._tip.items()}
        return canonical(self._initial)

    def latestOffset(self) -> Offset:
        if self._initial is None and not self._tip:
            self.initialOffset()
        if time.monotonic() - self._last_discovery >= self.options.shard_fetch_interval_s:
            # Shards born after the first start (resharding) are read from their beginning.
            self._discover({"iteratorType": TRIM_HORIZON})
        deadline = time.monotonic() + self.options.max_fetch_duration_s
        for key in sorted(self._tip):
            if self._readable(key):
                self._advance(key, deadline)
        return canonical(self._tip)

    def _fetch(self, key: ShardKey, iterator: str) -> Mapping[str, Any]:
        wait = self._last_fetch.get(key, float("-inf")) + self.options.min_fetch_period_s
        pause = wait - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        self._last_fetch[key] = time.monotonic()
        return self.client.get_records(
            ShardIterator=iterator, Limit=self.options.max_records_per_fetch
        )

    def _advance(self, key: ShardKey, deadline: float) -> None:
        """Read `key` from the tip until caught up (or out of time); move the tip there."""
        from botocore.exceptions import ClientError

        start = self._tip[key]
        position = start
        cached = self._iterators.get(key)
        iterator = cached[1] if cached and cached[0] == position else None
        prefetch = self._prefetched.get(key)
        if prefetch is not None and prefetch.end != start:
            prefetch = None
        if prefetch is None:
            prefetch = Prefetch(start=start, end=start, rows=[])
        keep: bool = prefetch.size <= PREFETCH_BYTES_LIMIT
        limit = self.options.max_records_per_fetch
        expired_retries = 0
        while True:
            try:
                if iterator is None:
                    iterator = shard_iterator(self.client, key, position)
                answer = self._fetch(key, iterator)
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code == "ExpiredIteratorException" and expired_retries < 2:
                    expired_retries += 1
                    iterator = None
                    continue
                if code in ("ProvisionedThroughputExceededException", "LimitExceededException"):
                    log.warning("kinesis: %s/%s throttled; reading on next trigger", *key)
                    break
                raise
            records = answer["Records"]
            for record in records:
                row = to_row(key, record)
                if keep:
                    prefetch.rows.append(row)
                    prefetch.size += len(row[1]) + 64
                    keep = prefetch.size <= PREFETCH_BYTES_LIMIT
            if records:
                position = after(records[-1]["SequenceNumber"])
            next_iterator = answer.get("NextShardIterator")
            behind = answer.get("MillisBehindLatest", 0)
            caught_up = not records or (behind == 0 and len(records) < limit)
            if next_iterator is None or (caught_up and self._shard_closed(key)):
                position = closed(position)
                iterator = None
                break
            iterator = next_iterator
            if caught_up or time.monotonic() >= deadline:
                break
        self._tip[key] = position
        if iterator is not None:
            self._iterators[key] = (position, iterator)
        else:
            self._iterators.pop(key, None)
        if keep and position != start:
            prefetch.end = position
            self._prefetched[key] = prefetch
        elif not keep:
            self._prefetched.pop(key, None)

    def _shard_closed(self, key: ShardKey) -> bool:
        info = self._shards.get(key)
        return bool(info and info.closed)

    # -- planning and reading ------------------------------------------------------------------
    def partitions(self, start: dict[str, Any], end: dict[str, Any]) -> Sequence[InputPartition]:
        starts, ends = flatten(start), flatten(end)
        # After a restart Spark announces the checkpointed offset this way: resume there.
        for key, position in ends.items():
            if key not in self._tip or is_ahead(position, self._tip[key]):
                self._tip[key] = dict(position)
        ranges: list[InputPartition] = []
        for key in sorted(ends):
            end_sequence = ends[key].get("sequenceNumber")
            first = starts.get(key, {"iteratorType": TRIM_HORIZON})
            if end_sequence is None or first.get("sequenceNumber") == end_sequence:
                continue
            prefetch = self._prefetched.get(key)
            rows = None
            if prefetch is not None and prefetch.start == first and prefetch.end == ends[key]:
                rows = prefetch.rows
            ranges.append(ShardRange(key[0], key[1], first, end_sequence, rows))
        self._prefetched.clear()
        return ranges

    def read(self, partition: InputPartition) -> Iterator[tuple[Any, ...]]:
        assert isinstance(partition, ShardRange)
        if partition.rows is not None:
            yield from partition.rows
            return
        yield from self._read_range(partition)

    def _read_range(self, part: ShardRange) -> Iterator[KinesisRow]:
        """Read (start, end] of one shard again from Kinesis (a replayed batch)."""
        key = (part.stream, part.shard)
        end = int(part.end)
        iterator: str | None = shard_iterator(self.client, key, part.start)
        while iterator is not None:
            answer = self._fetch(key, iterator)
            for record in answer["Records"]:
                if int(record["SequenceNumber"]) > end:
                    return
                yield to_row(key, record)
                if int(record["SequenceNumber"]) == end:
                    return
            iterator = answer.get("NextShardIterator")
            if not answer["Records"] and answer.get("MillisBehindLatest", 0) == 0:
                break
        message = (
            f"kinesis: records of {part.stream}/{part.shard} up to {part.end} are no longer in "
            "the stream (retention passed?)"
        )
        if self.options.fail_on_data_loss:
            raise KinesisSourceError(message + "; set failOnDataLoss=false to go on without them")
        log.warning(message)

    def commit(self, end: dict[str, Any]) -> None:
        """Nothing to release: Kinesis keeps records for its retention period regardless."""

    def stop(self) -> None:
        self._client = None


class KinesisDataSource(DataSource):
    """`format("kinesis")` with Databricks' options and schema (see module docs)."""

    @classmethod
    def name(cls) -> str:
        return "kinesis"

    def schema(self) -> StructType:
        return KINESIS_SCHEMA

    def streamReader(self, schema: StructType) -> DataSourceStreamReader:
        return KinesisStreamReader(KinesisOptions.parse(dict(self.options)))


# -- registration ------------------------------------------------------------------------------


def builtin_kinesis_exists(spark: SparkSession) -> bool:
    """Whether the JVM already knows a `kinesis` source (Databricks, or a connector jar)."""
    from pipeline.spark_session import on_databricks

    if on_databricks():
        return True
    try:
        jvm: Any = spark._jvm
        jvm.org.apache.spark.sql.execution.datasources.DataSource.lookupDataSource(
            "kinesis",
            spark._jsparkSession.sessionState().conf(),
        )
    except Exception:  # DATA_SOURCE_NOT_FOUND, or no JVM handle (Spark Connect)
        return False
    return True


def ensure_kinesis_source(spark: SparkSession) -> bool:
    """Register the Python `kinesis` source unless a built-in one exists; True if registered."""
    if builtin_kinesis_exists(spark):
        return False
    spark.dataSource.register(KinesisDataSource)
    return True
