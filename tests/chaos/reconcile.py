"""Reconciling the emulator's ledger of acknowledged records with what each stage holds.

Identity of a record:
- batch layer: `(topic, partition, offset)`, the position the API acknowledged. Kafka must hold
  the record there (with the ledger's id); the lake must hold it exactly once (object
  `<topic>+<p>+<start>.json`, line `offset - start`), byte for byte as Kafka holds it. A copy of
  an acknowledged record at another offset of the same fault (an HTTP retry whose first attempt
  did reach Kafka) counts as a duplicate, in Kafka and wherever it lands.
- silver and the stream Delta tables keep one row per `ind`: they are reconciled by the set of
  `(table, id)` the ledger acknowledged; an id with more than one row is a duplicate.
"""

from __future__ import annotations

import bisect
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import boto3
from confluent_kafka import Consumer, KafkaError, TopicPartition

from pipeline.config import Settings
from pipeline.landing import parse_object_key, topic_prefix, window_object_key

Position = tuple[str, int, int]  # topic, partition, offset
LedgerEntry = Mapping[str, Any]


@dataclass
class StageResult:
    """One stage's reconciliation of one fault (the row of the results table)."""

    stage: str
    acknowledged: int
    landed: int
    missing: int
    duplicated: int
    recover_s: float | None = None
    extra: int = 0  # unacknowledged records (an answer lost to the fault), not duplicates

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_id(table: str, value: bytes) -> int | None:
    """The row id a posted value carries: `index` for pin rows, `ind` for geo and user."""
    try:
        document = json.loads(value)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    found = document.get("index" if table == "pin" else "ind")
    return found if isinstance(found, int) else None


# -- Kafka ---------------------------------------------------------------------------------------


def watermarks(settings: Settings) -> dict[tuple[str, int], int]:
    """The high watermark (next offset) of every partition of the three topics."""
    consumer = _consumer(settings)
    try:
        marks = {}
        for topic in settings.topics.values():
            metadata = consumer.list_topics(topic, timeout=30).topics[topic]
            for partition in metadata.partitions:
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=30
                )
                marks[(topic, partition)] = high
        return marks
    finally:
        consumer.close()


def read_kafka(
    settings: Settings, start: Mapping[tuple[str, int], int], end: Mapping[tuple[str, int], int]
) -> dict[Position, bytes]:
    """Every committed record of the three topics between two watermark snapshots."""
    consumer = _consumer(settings)
    wanted = {
        key: (start.get(key, 0), high) for key, high in end.items() if high > start.get(key, 0)
    }
    found: dict[Position, bytes] = {}
    try:
        if not wanted:
            return found
        consumer.assign([TopicPartition(t, p, low) for (t, p), (low, _high) in wanted.items()])
        remaining = {key for key in wanted}
        idle = 0
        while remaining and idle < 30:
            messages = consumer.consume(num_messages=5000, timeout=1.0)
            idle = idle + 1 if not messages else 0
            for message in messages:
                key = (message.topic(), message.partition())
                error = message.error()
                if error is not None:
                    # read_committed ends at the last stable offset; the last offsets of a
                    # partition are transaction markers, never delivered: its end is this event
                    if (
                        error.code() == KafkaError._PARTITION_EOF
                        and key in wanted
                        and message.offset() >= wanted[key][1]
                    ):
                        remaining.discard(key)
                    continue
                if key not in wanted or message.offset() >= wanted[key][1]:
                    continue
                found[(key[0], key[1], message.offset())] = message.value() or b""
                if message.offset() >= wanted[key][1] - 1:
                    remaining.discard(key)
        if remaining:
            raise RuntimeError(f"could not read Kafka partitions {sorted(remaining)} to the end")
        return found
    finally:
        consumer.close()


def _consumer(settings: Settings) -> Any:
    return Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": "pinpipe-chaos-reconcile",
            "enable.auto.commit": False,
            # only what committed counts: records of an aborted transaction (a request answered
            # 503, or an API killed before its commit) are not there for the S3 sink either
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "log_level": 0,
        }
    )


def _position(entry: LedgerEntry) -> Position:
    return (str(entry["topic"]), int(entry["partition"]), int(entry["offset"]))


def reconcile_kafka(
    ledger: Sequence[LedgerEntry], topic_tables: Mapping[str, str], kafka: Mapping[Position, bytes]
) -> tuple[StageResult, set[Position]]:
    """Kafka against the fault's batch ledger; also returns the duplicate copies' positions."""
    acknowledged = {_position(entry): entry for entry in ledger}
    missing = 0
    for position, entry in acknowledged.items():
        value = kafka.get(position)
        if value is None or record_id(str(entry["table"]), value) != int(entry["id"]):
            missing += 1
    acked_values = Counter(kafka[p] for p in acknowledged if p in kafka)
    duplicates: set[Position] = set()
    extra = 0
    for position, value in kafka.items():
        if position in acknowledged or topic_tables.get(position[0]) is None:
            continue
        if acked_values[value]:
            duplicates.add(position)
        else:
            extra += 1
    result = StageResult(
        "kafka",
        acknowledged=len(acknowledged),
        landed=len(acknowledged) - missing,
        missing=missing,
        duplicated=len(duplicates),
        extra=extra,
    )
    return result, duplicates


# -- the lake (landed JSON lines) ------------------------------------------------------------------


def read_lake(settings: Settings, keys: Iterable[str] | None = None) -> dict[Position, list[bytes]]:
    """Every landed line by its offset (the n-th committed offset from the object's start); all
    objects, or `keys`."""
    s3 = boto3.client("s3", **settings.boto3_kwargs("s3"))
    if keys is None:
        listed: list[str] = []
        paginator = s3.get_paginator("list_objects_v2")
        for topic in settings.topics.values():
            for page in paginator.paginate(Bucket=settings.lake_bucket, Prefix=topic_prefix(topic)):
                listed += [item["Key"] for item in page.get("Contents", [])]
        keys = listed
    lines: dict[Position, list[bytes]] = defaultdict(list)
    for key in keys:
        landed = parse_object_key(key)
        if landed is None:
            continue
        try:
            body = s3.get_object(Bucket=settings.lake_bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            continue
        topic, partition, start = landed
        found = body.splitlines()
        # A window holds the partition's committed records from its start offset, in order; the
        # offsets between them (transaction markers, aborted records) hold no line.
        offsets = committed_offsets(settings, topic, partition, start, len(found))
        for offset, line in zip(offsets, found, strict=False):
            lines[(topic, partition, offset)].append(line)
    return lines


# committed data offsets read so far, per broker and partition, from offset 0 (they never change
# while the broker keeps its log; a run's fresh stack starts them anew: forget_committed_offsets)
_COMMITTED: dict[tuple[str, str, int], list[int]] = {}


def forget_committed_offsets() -> None:
    """Drop the cache: a new stack's broker, on the same address, numbers its offsets anew (its
    transaction markers sit elsewhere, so the cache would map lines to the wrong offsets)."""
    _COMMITTED.clear()


def committed_offsets(
    settings: Settings, topic: str, partition: int, start: int, count: int
) -> list[int]:
    """The offsets of the first `count` committed records at or after `start` (fewer when the
    partition holds fewer), read read_committed and cached."""
    known = _COMMITTED.setdefault((settings.kafka_bootstrap_servers, topic, partition), [])
    if len(known) - bisect.bisect_left(known, start) < count:
        consumer = _consumer(settings)
        try:
            consumer.assign([TopicPartition(topic, partition, known[-1] + 1 if known else 0)])
            idle = 0
            while idle < 30:
                message = consumer.poll(1.0)
                if message is None:
                    idle += 1
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        break
                    continue
                offset = message.offset()
                if offset is not None and (not known or offset > known[-1]):
                    known.append(offset)
        finally:
            consumer.close()
    first = bisect.bisect_left(known, start)
    return known[first : first + count]


def window_keys(settings: Settings, positions: Iterable[Position]) -> set[str]:
    """The objects the sink writes the given offsets to (aligned windows of N records)."""
    window = settings.landing_flush_max_records
    return {window_object_key(t, p, o, window) for t, p, o in positions}


def reconcile_lake(
    ledger: Sequence[LedgerEntry],
    kafka: Mapping[Position, bytes],
    kafka_duplicates: set[Position],
    lake: Mapping[Position, list[bytes]],
) -> StageResult:
    """The lake against the ledger: each acknowledged record once, as Kafka holds it."""
    missing = duplicated = 0
    acknowledged = [_position(entry) for entry in ledger]
    for position in acknowledged:
        copies = [line for line in lake.get(position, []) if line == kafka.get(position)]
        if not copies:
            missing += 1
        duplicated += max(0, len(lake.get(position, [])) - 1)
    duplicated += sum(1 for position in kafka_duplicates if lake.get(position))
    return StageResult(
        "lake",
        acknowledged=len(acknowledged),
        landed=len(acknowledged) - missing,
        missing=missing,
        duplicated=duplicated,
    )


# -- tables with one row per id (silver, the stream layer) ----------------------------------------


def ids_of(ledger: Iterable[LedgerEntry]) -> set[tuple[str, int]]:
    return {(str(entry["table"]), int(entry["id"])) for entry in ledger}


def reconcile_ids(
    stage: str, wanted: set[tuple[str, int]], rows: Mapping[str, Counter[int]]
) -> StageResult:
    """A table keeping one row per id: every wanted id present, none more than once."""
    missing = sum(1 for table, ind in wanted if not rows.get(table, Counter())[ind])
    duplicated = sum(1 for table, ind in wanted if rows.get(table, Counter())[ind] > 1)
    return StageResult(
        stage,
        acknowledged=len(wanted),
        landed=len(wanted) - missing,
        missing=missing,
        duplicated=duplicated,
    )


def delta_ids(settings: Settings, uris: Mapping[str, str]) -> dict[str, Counter[int]]:
    """Rows per `ind` of a Delta table per contract table, read with delta-rs (no Spark session
    to poll with); a table not created yet has none."""
    from pipeline.report.lake import LakeReader

    reader = LakeReader(settings)
    counts: dict[str, Counter[int]] = {}
    for table, uri in uris.items():
        data = reader.arrow(uri, ["ind"])
        counts[table] = Counter() if data is None else Counter(data.column("ind").to_pylist())
    return counts
