"""The landing contract: where the S3 sink puts records, and what has landed.

The one definition of the landing zone's layout, read by the batch job's bronze listing, the DAG's
sensor, the quality checks' windows, the report, `pinpipe demo` and the tests. The sink
(`jvm/s3-sink`, Java) cannot import it: its `s3.prefix` is rendered from `LANDING_PREFIX`
(`pipeline.land.connector`), and tests check the rendered config
(tests/unit/test_landing_contract.py) and the keys a real worker writes
(tests/integration/test_landing.py) against these functions.

The sink writes `topics/<topic>/partition=<p>/<topic>+<p>+<start>.json`, one JSON line per record,
each object covering the aligned offset window `[start, start + flush_max_records)`, or, for a
window past `flush_max_bytes`, a part of it named by its own first offset. A record at `offset`
is in the last object of its partition starting at or before it (within its window), and has
landed once that object's last record (its `pinpipe-last-offset` metadata) is at or after it.
Offsets hold no line when they are no record (the commit markers of the API's transactions), so
an object's lines alone do not say which offsets it covers.

Also here: per-topic object counts (the DAG's sensor) and, for a ledger of acknowledged records,
which of them are in the lake yet (`pinpipe demo`, end-to-end tests).
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3

from pipeline.config import Settings

LedgerEntry = Mapping[str, Any]  # {"table", "id", "topic", "partition", "offset", ...}

# The landing zone's folder in the lake bucket: the sink's `s3.prefix` (connectors/s3-sink.json).
LANDING_PREFIX = "topics"
PARTITION_FOLDER = "partition="
# `<topic>+<partition>+<start, 20 digits>.json`, the start being the first offset it holds
# S3 metadata the sink writes on every object: the offset of the object's last record.
LAST_OFFSET_METADATA = "pinpipe-last-offset"
_OBJECT_NAME = re.compile(r"^(?P<topic>.+)\+(?P<partition>\d+)\+(?P<start>\d{20})\.json$")


def topic_prefix(topic: str) -> str:
    """The key prefix of every object landed from `topic`: `topics/<topic>/`."""
    return f"{LANDING_PREFIX}/{topic}/"


def partition_prefix(topic: str, partition: int) -> str:
    """The folder of one partition's objects: `topics/<topic>/partition=<p>/`."""
    return f"{topic_prefix(topic)}{PARTITION_FOLDER}{partition}/"


def window_start(offset: int, window_size: int) -> int:
    """The first offset of the aligned window (`flush_max_records` long) holding `offset`."""
    return offset - offset % window_size


def object_key(topic: str, partition: int, start: int) -> str:
    """The key of the object whose first record is at offset `start`."""
    return f"{partition_prefix(topic, partition)}{topic}+{partition}+{start:020d}.json"


def window_object_key(topic: str, partition: int, offset: int, window_size: int) -> str:
    """The key of the window's first object: where `offset` lands unless its window is split
    into parts by `flush_max_bytes`."""
    return object_key(topic, partition, window_start(offset, window_size))


def parse_object_key(key: str) -> tuple[str, int, int] | None:
    """(topic, partition, start) of a landed object's key (relative to the bucket), or None."""
    folder, _, name = key.rpartition("/")
    found = _OBJECT_NAME.match(name)
    if found is None:
        return None
    topic, partition = found["topic"], int(found["partition"])
    if folder + "/" != partition_prefix(topic, partition):
        return None
    return topic, partition, int(found["start"])


@dataclass(frozen=True)
class LandedTopic:
    topic: str
    objects: int
    bytes: int
    newest: datetime | None = None  # the latest LastModified among them


@dataclass(frozen=True)
class Window:
    """A run's data interval `[start, end)`, by landing time (the objects' LastModified)."""

    start: datetime
    end: datetime

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def _s3(settings: Settings) -> Any:
    return boto3.client("s3", **settings.boto3_kwargs("s3"))


def landed_topics(settings: Settings, window: Window | None = None) -> dict[str, LandedTopic]:
    """Objects and bytes landed under `topics/<topic>/`, per table (pin, geo, user): all of
    them, or those last written within `window` (a rewritten object counts when rewritten)."""
    s3 = _s3(settings)
    paginator = s3.get_paginator("list_objects_v2")
    landed = {}
    for table, topic in settings.topics.items():
        objects = size = 0
        newest: datetime | None = None
        for page in paginator.paginate(Bucket=settings.lake_bucket, Prefix=topic_prefix(topic)):
            for item in page.get("Contents", []):
                modified: datetime = item["LastModified"]
                if window is not None and modified not in window:
                    continue
                objects += 1
                size += int(item["Size"])
                newest = modified if newest is None else max(newest, modified)
        landed[table] = LandedTopic(topic, objects, size, newest)
    return landed


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """The emulator's ledger: one JSON line per acknowledged record."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _object_starts(s3: Any, bucket: str, topic: str, partition: int) -> list[int]:
    """The start offsets of a partition's objects, ascending (zero-padded names sort so)."""
    starts = []
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=partition_prefix(topic, partition)
    )
    for page in pages:
        for item in page.get("Contents", []):
            parsed = parse_object_key(item["Key"])
            if parsed is not None and parsed[:2] == (topic, partition):
                starts.append(parsed[2])
    return sorted(starts)


def not_landed(settings: Settings, ledger: Iterable[LedgerEntry]) -> list[LedgerEntry]:
    """The ledger entries whose record is not in the lake yet (lists their partitions, reads only
    the objects that should hold them)."""
    window = settings.landing_flush_max_records
    by_partition: dict[tuple[str, int], list[LedgerEntry]] = defaultdict(list)
    for entry in ledger:
        by_partition[(entry["topic"], int(entry["partition"]))].append(entry)
    s3 = _s3(settings)
    missing: list[LedgerEntry] = []
    for (topic, partition), entries in by_partition.items():
        starts = _object_starts(s3, settings.lake_bucket, topic, partition)
        by_object: dict[int, list[LedgerEntry]] = defaultdict(list)
        for entry in entries:
            offset = int(entry["offset"])
            index = bisect_right(starts, offset) - 1
            if index < 0 or starts[index] < window_start(offset, window):
                missing.append(entry)  # no object of its window starts at or before it yet
            else:
                by_object[starts[index]].append(entry)
        for start, holders in by_object.items():
            last = _last_offset(
                s3, settings.lake_bucket, object_key(topic, partition, start), start
            )
            missing += [entry for entry in holders if last is None or int(entry["offset"]) > last]
    return missing


def _last_offset(s3: Any, bucket: str, key: str, start: int) -> int | None:
    """The offset of an object's last record (None: no such object). From the sink's metadata;
    for an object written without it (an older sink), from its lines, which then were one per
    offset."""
    from botocore.exceptions import ClientError

    try:
        metadata: dict[str, str] = s3.head_object(Bucket=bucket, Key=key)["Metadata"]
        if LAST_OFFSET_METADATA in metadata:
            return int(metadata[LAST_OFFSET_METADATA])
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response["Error"]["Code"] in ("404", "NoSuchKey"):
            return None  # listed, then gone: rewritten as parts, or the lake was emptied
        raise
    lines = body.count(b"\n") + (0 if body.endswith(b"\n") or not body else 1)
    return start + lines - 1
