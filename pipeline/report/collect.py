"""Gather what the report shows from a lake (delta-rs, no JVM) into one plain `ReportData`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from pipeline.config import Settings
from pipeline.config.settings import topic_names
from pipeline.lake import QUERY_COLUMNS, LakePaths, StreamPaths, sort_columns
from pipeline.landing import topic_prefix
from pipeline.report.lake import LakeReader, Row, is_s3, s3_location
from pipeline.transform.job import TABLES


@dataclass(frozen=True)
class Landed:
    """What the S3 sink landed for one topic."""

    topic: str
    objects: int
    bytes: int


@dataclass(frozen=True)
class QualityRun:
    """One run of the quality job: when, and which of its checks failed."""

    run_id: str
    run_at: datetime
    passed: int
    failed: int
    failed_checks: list[str]


@dataclass
class Counts:
    records_posted: dict[str, int] | None = None  # per table, from a ledger when given
    landed: dict[str, Landed | None] = field(default_factory=dict)  # None: could not list
    bronze: dict[str, int | None] = field(default_factory=dict)
    silver: dict[str, int | None] = field(default_factory=dict)
    rejected: dict[tuple[str, str], int] | None = None  # (source table, reason) → rows
    stream: dict[str, int | None] = field(default_factory=dict)
    stream_rejected: dict[tuple[str, str], int] | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class ReportData:
    lake: str
    generated_at: datetime
    run_date: date | None
    gold: dict[str, list[Row] | None]  # None: no table
    quality: list[Row]  # the latest run's checks
    quality_runs: list[QualityRun]  # oldest first
    counts: Counts


def _sort_key(row: Row, columns: tuple[str, ...]) -> tuple[Any, ...]:
    # nulls last, as Spark's ascending order puts them first; a report reads better this way
    return tuple((row.get(c) is None, row.get(c)) for c in columns)


def read_gold(reader: LakeReader, lake: str) -> dict[str, list[Row] | None]:
    """Every gold table's rows with the data contract columns, sorted by the leading columns."""
    paths = LakePaths(lake)
    results: dict[str, list[Row] | None] = {}
    for query_id, columns in QUERY_COLUMNS.items():
        rows = reader.rows(paths.gold(query_id), list(columns))
        if rows is not None:
            rows.sort(key=lambda row, q=query_id: _sort_key(row, sort_columns(q)))  # type: ignore[misc]
        results[query_id] = rows
    return results


def read_quality(reader: LakeReader, lake: str) -> tuple[list[Row], list[QualityRun]]:
    """The latest run's checks and a summary of every run, from `<lake>/quality/checks`."""
    rows = reader.rows(LakePaths(lake).quality_checks) or []
    by_run: dict[str, list[Row]] = {}
    for row in rows:
        by_run.setdefault(row["run_id"], []).append(row)
    runs = [
        QualityRun(
            run_id=run_id,
            run_at=checks[0]["run_at"],
            passed=sum(1 for c in checks if c["passed"]),
            failed=sum(1 for c in checks if not c["passed"]),
            failed_checks=[f"{c['table']}: {c['check']}" for c in checks if not c["passed"]],
        )
        for run_id, checks in by_run.items()
    ]
    runs.sort(key=lambda run: run.run_at)
    latest = by_run[runs[-1].run_id] if runs else []
    return latest, runs


def _reasons(reader: LakeReader, uri: str) -> dict[tuple[str, str], int] | None:
    data = reader.rows(uri, ["source", "reason"])
    if data is None:
        return None
    return dict(sorted(Counter((row["source"], row["reason"]) for row in data).items()))


def landed_objects(settings: Settings, landing: str, topic: str) -> Landed | None:
    """Objects and bytes under `<landing>/topics/<topic>/` (an S3 URI or a folder); None when
    S3 cannot be listed: the rest of the report is still worth writing."""
    if is_s3(landing):
        bucket, key = s3_location(landing)
        prefix = "/".join(part for part in (key.rstrip("/"), topic_prefix(topic)) if part)
        paginator = boto3.client("s3", **settings.boto3_kwargs("s3")).get_paginator(
            "list_objects_v2"
        )
        try:
            sizes = [
                int(item["Size"])
                for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
                for item in page.get("Contents", [])
            ]
        except (BotoCoreError, ClientError):
            return None
    else:
        folder = Path(landing) / topic_prefix(topic)
        sizes = [p.stat().st_size for p in folder.rglob("*") if p.is_file()]
    return Landed(topic, len(sizes), sum(sizes))


def ledger_counts(ledger: Path) -> dict[str, int]:
    """Records the API acknowledged per table, from the emulator's ledger (JSON lines)."""
    from pipeline.landing import read_ledger

    return dict(Counter(entry["table"] for entry in read_ledger(ledger)))


def collect(
    settings: Settings,
    lake: str | None = None,
    *,
    landing: str | None = None,
    prefix: str | None = None,
    ledger: Path | None = None,
    stage_seconds: Mapping[str, float] | None = None,
    run_date: date | None = None,
) -> ReportData:
    """Everything the report shows about the lake at `lake` (default: the settings')."""
    lake = lake or settings.lake_uri
    landing = landing or settings.landing_uri
    prefix = prefix or settings.topic_prefix
    reader = LakeReader(settings)
    paths, stream_paths = LakePaths(lake), StreamPaths(lake, prefix)
    counts = Counts(
        records_posted=ledger_counts(ledger) if ledger else None,
        bronze={table: reader.count(paths.bronze(table)) for table in TABLES},
        silver={table: reader.count(paths.silver(table)) for table in TABLES},
        rejected=_reasons(reader, paths.rejected),
        stream={table: reader.count(stream_paths.table(table)) for table in TABLES},
        stream_rejected=_reasons(reader, stream_paths.rejected),
        stage_seconds=dict(stage_seconds or {}),
    )
    counts.landed = {
        table: landed_objects(settings, landing, topic)
        for table, topic in topic_names(prefix).items()
    }
    quality, runs = read_quality(reader, lake)
    return ReportData(
        lake=lake,
        generated_at=datetime.now(UTC),
        run_date=run_date,
        gold=read_gold(reader, lake),
        quality=quality,
        quality_runs=runs,
        counts=counts,
    )
