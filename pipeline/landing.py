"""What the S3 sink has landed: per-topic object counts (the DAG's sensor) and, for a ledger of
acknowledged records, which of them are in the lake yet (`pinpipe demo`, end-to-end tests).

The sink writes `topics/<topic>/partition=<p>/<topic>+<p>+<start>.json`, one JSON line per record,
each object covering the aligned offset window `[start, start + flush_max_records)`, or, for a
window past `flush_max_bytes`, a part of it named by its own first offset. A record at `offset`
is in the last object of its partition starting at or before it (within its window), and has
landed once that object holds more than `offset - start` lines.
"""

from __future__ import annotations

import json
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
        for page in paginator.paginate(Bucket=settings.lake_bucket, Prefix=f"topics/{topic}/"):
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


def window_key(topic: str, partition: int, start: int) -> str:
    return f"topics/{topic}/partition={partition}/{topic}+{partition}+{start:020d}.json"


def _object_starts(s3: Any, bucket: str, topic: str, partition: int) -> list[int]:
    """The start offsets of a partition's objects, ascending (zero-padded names sort so)."""
    prefix = f"topics/{topic}/partition={partition}/{topic}+{partition}+"
    starts = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            number = item["Key"][len(prefix) :].removesuffix(".json")
            if number.isdigit():
                starts.append(int(number))
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
            if index < 0 or starts[index] < offset - offset % window:
                missing.append(entry)  # no object of its window starts at or before it yet
            else:
                by_object[starts[index]].append(entry)
        for start, holders in by_object.items():
            key = window_key(topic, partition, start)
            try:
                body = s3.get_object(Bucket=settings.lake_bucket, Key=key)["Body"].read()
            except s3.exceptions.NoSuchKey:
                missing += holders
                continue
            lines = body.count(b"\n") + (0 if body.endswith(b"\n") or not body else 1)
            missing += [entry for entry in holders if int(entry["offset"]) - start >= lines]
    return missing
