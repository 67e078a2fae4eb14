"""Bronze: the landed JSON lines of each topic as Delta tables, append-only and idempotent.

The landing zone (data contract §2.6; its layout is `pipeline.landing`) holds
`<root>/topics/<topic>/partition=<p>/<object>` with one JSON object per line. The S3 sink names an
object after the offsets it holds, so a replay rewrites the same name with the same lines; an
offset window still open at a flush is written early and rewritten, under the same name, once it
has grown. The unit of ingestion is therefore one version of one object: its path, size and
modification time. A run appends only the lines of object
versions not ingested before, with that lineage and the ingestion time, so re-running over the
same objects adds nothing, while a grown object is read again in full (silver keeps one row per
`ind`, so its earlier lines do not duplicate anything downstream).

Finding new object versions costs neither a listing of the whole landing zone nor a scan of
bronze: a manifest table (`<lake>/ingested/<table>`) records each ingested object version, and a
run lists each partition folder only from its last ingested object on (S3 `StartAfter`). Names
are a pure function of offsets and only a partition's last object (its open window) is ever
rewritten with new lines, so earlier objects need no second look. A replay rewrites earlier
names with the same lines, which adds nothing to read.

Lines that do not parse stay in bronze with their raw text in `_corrupt_record`; silver routes them
to the rejected table.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType, TimestampType
from pyspark.sql.window import Window

from pipeline.lake import is_delta_table
from pipeline.landing import PARTITION_FOLDER, topic_prefix
from pipeline.transform.lake import create_empty, read_delta, table_version
from pipeline.transform.schemas import CORRUPT_RECORD, with_corrupt_record

SOURCE_FILE = "_source_file"
SOURCE_SIZE = "_source_size"
SOURCE_MODIFIED = "_source_modified"
INGESTED_AT = "_ingested_at"
# The line's number within its object (0-based): with the object's start offset, its place in
# the partition (`silver.landed_offset`).
SOURCE_LINE = "_source_line"
LINEAGE_FIELDS = (
    StructField(SOURCE_FILE, StringType()),
    StructField(SOURCE_LINE, LongType()),
    StructField(SOURCE_SIZE, LongType()),
    StructField(SOURCE_MODIFIED, TimestampType()),
    StructField(INGESTED_AT, TimestampType()),
)
# One version of one landed object: what "already ingested" means.
OBJECT_VERSION: tuple[str, ...] = (SOURCE_FILE, SOURCE_SIZE, SOURCE_MODIFIED)

# One row per ingested object version, in the listing's terms (see `LandedObject`).
MANIFEST_SCHEMA = StructType(
    [
        StructField("path", StringType(), nullable=False),
        StructField("size", LongType(), nullable=False),
        StructField("modified_ms", LongType(), nullable=False),
        # The bronze version holding its lines: a manifest behind bronze (a run stopped between
        # the two commits) is rebuilt from bronze.
        StructField("bronze_version", LongType(), nullable=False),
    ]
)
S3_SCHEMES = ("s3", "s3a", "s3n")


@dataclass(frozen=True)
class LandedObject:
    """One version of a landed object: its path as Spark reads it, size and modification time."""

    path: str
    size: int
    modified_ms: int

    @property
    def folder(self) -> str:
        return self.path.rsplit("/", 1)[0]


def bronze_schema(source_schema: StructType) -> StructType:
    return StructType([*with_corrupt_record(source_schema).fields, *LINEAGE_FIELDS])


# -- listing ---------------------------------------------------------------------------------------


def _visible(name: str) -> bool:
    """Spark's file sources skip names starting with `_` or `.`; so do we."""
    return bool(name) and not name.startswith(("_", "."))


def _just_before(key: str) -> str:
    """A key sorting immediately before `key` among the sink's names (all end in `.json`), so that
    `StartAfter` lists `key` itself again (it may have grown)."""
    return key[:-1] + chr(ord(key[-1]) - 1)


def s3_client_kwargs(spark: SparkSession) -> dict[str, Any]:
    """boto3 arguments reaching the S3 that the session's s3a reads: its endpoint, region and
    keys where they are set (local, docker), else boto3's own chain (aws: the instance role)."""
    kwargs: dict[str, Any] = {}
    for key, option in (
        ("endpoint_url", "fs.s3a.endpoint"),
        ("region_name", "fs.s3a.endpoint.region"),
        ("aws_access_key_id", "fs.s3a.access.key"),
        ("aws_secret_access_key", "fs.s3a.secret.key"),
    ):
        value = spark.conf.get(f"spark.hadoop.{option}", None)
        if value:
            kwargs[key] = value
    return kwargs


def _list_s3(
    input_root: str, topic: str, last: Mapping[str, str], client_kwargs: Mapping[str, Any]
) -> Iterator[LandedObject]:
    import boto3

    parsed = urlparse(input_root)
    bucket, base = parsed.netloc, parsed.path.strip("/")
    topic_folder = f"{base}/{topic_prefix(topic)}" if base else topic_prefix(topic)
    s3 = boto3.client("s3", **client_kwargs)
    pages = s3.get_paginator("list_objects_v2")
    folders = [
        common["Prefix"]
        for page in pages.paginate(Bucket=bucket, Prefix=topic_folder, Delimiter="/")
        for common in page.get("CommonPrefixes", [])
        if common["Prefix"][len(topic_folder) :].startswith(PARTITION_FOLDER)
    ]
    uri = f"{parsed.scheme}://{bucket}/"
    for folder in folders:
        extra: dict[str, Any] = {}
        ingested = last.get(uri + folder.rstrip("/"))
        if ingested is not None:
            extra["StartAfter"] = _just_before(ingested[len(uri) :])
        for page in pages.paginate(Bucket=bucket, Prefix=folder, **extra):
            for item in page.get("Contents", []):
                name = item["Key"][len(folder) :]
                if "/" not in name and _visible(name):
                    modified = item["LastModified"].timestamp()
                    yield LandedObject(uri + item["Key"], int(item["Size"]), round(modified * 1000))


def _list_folder(input_root: str, topic: str, last: Mapping[str, str]) -> Iterator[LandedObject]:
    root = Path(input_root.removeprefix("file://").removeprefix("file:"))
    topic_folder = root / topic_prefix(topic)
    if not topic_folder.is_dir():
        return
    for folder in sorted(topic_folder.glob(f"{PARTITION_FOLDER}*")):
        ingested = last.get(str(folder))
        for entry in os.scandir(folder):
            path = str(folder / entry.name)
            if entry.is_file() and _visible(entry.name) and (ingested is None or path >= ingested):
                stat = entry.stat()
                yield LandedObject(path, stat.st_size, stat.st_mtime_ns // 1_000_000)


def list_landed(
    input_root: str,
    topic: str,
    last: Mapping[str, str] | None = None,
    s3_kwargs: Mapping[str, Any] | None = None,
) -> list[LandedObject]:
    """The landed objects of `topic`, without Spark; in a partition folder found in `last`
    (folder → its last ingested object), only that object and the ones after it. An S3 root is
    listed with boto3 (`s3_kwargs`: endpoint and credentials, see `s3_client_kwargs`), any other
    as a local folder; a topic with nothing landed yet gives an empty list."""
    last = last or {}
    if urlparse(input_root).scheme in S3_SCHEMES:
        return list(_list_s3(input_root, topic, last, s3_kwargs or {}))
    return list(_list_folder(input_root, topic, last))


# -- the manifest of ingested object versions ------------------------------------------------------


def _canonical_path(path: Column) -> Column:
    """Spark's `file:` URIs as the plain folder paths the listing gives."""
    return F.regexp_replace(path, r"^file:(//)?", "")


def rebuild_manifest(spark: SparkSession, table_path: str, manifest_path: str) -> None:
    """The manifest from bronze itself (a lake written before the manifest, or a run stopped
    between its bronze and manifest commits): one full scan of bronze's lineage columns."""
    version = table_version(spark, table_path)
    versions = (
        read_delta(spark, table_path)
        .select(
            _canonical_path(F.col(SOURCE_FILE)).alias("path"),
            F.col(SOURCE_SIZE).alias("size"),
            F.floor(F.unix_micros(F.col(SOURCE_MODIFIED)) / 1000)
            .cast("bigint")
            .alias("modified_ms"),
            F.lit(version).cast("bigint").alias("bronze_version"),
        )
        .where(F.col("path").isNotNull())
        .distinct()
    )
    versions.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(
        manifest_path
    )


def _last_per_folder(
    spark: SparkSession, manifest_path: str
) -> tuple[dict[str, LandedObject], int]:
    """(per partition folder its last ingested object version by name, the bronze version the
    manifest covers, -1 if it is empty)."""
    manifest = read_delta(spark, manifest_path)
    folder = F.regexp_extract(F.col("path"), r"^(.*)/[^/]*$", 1)
    rows = (
        manifest.groupBy(folder.alias("folder"))
        .agg(
            F.max_by(F.struct("path", "size", "modified_ms"), F.col("path")).alias("last"),
            F.max("bronze_version").alias("bronze_version"),
        )
        .collect()
    )
    last = {
        row["folder"]: LandedObject(
            row["last"]["path"], row["last"]["size"], row["last"]["modified_ms"]
        )
        for row in rows
    }
    return last, max((int(row["bronze_version"]) for row in rows), default=-1)


def last_ingested(
    spark: SparkSession, table_path: str, manifest_path: str
) -> dict[str, LandedObject]:
    """Per partition folder, the last object version ingested (by name), from the manifest;
    empty when bronze does not exist yet."""
    if not is_delta_table(spark, table_path):
        return {}
    if not is_delta_table(spark, manifest_path):
        rebuild_manifest(spark, table_path, manifest_path)
    last, covered = _last_per_folder(spark, manifest_path)
    # Bronze is created empty at version 0; any later version holds lines the manifest must cover.
    version = table_version(spark, table_path)
    if covered < version and (last or version > 0):
        rebuild_manifest(spark, table_path, manifest_path)
        last, _ = _last_per_folder(spark, manifest_path)
    return last


def record_ingested(
    spark: SparkSession, objects: list[LandedObject], bronze_version: int, manifest_path: str
) -> None:
    rows = [(item.path, item.size, item.modified_ms, bronze_version) for item in objects]
    frame = spark.createDataFrame(rows, MANIFEST_SCHEMA)
    frame.write.format("delta").mode("append").save(manifest_path)


# -- reading -------------------------------------------------------------------------------------


def _positioned(landed: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(rows with lineage, the persisted frame they are computed from).

    The reader yields a split's lines in order, under consecutive ids
    (`monotonically_increasing_id` counts rows within a Spark partition, which reads a split
    whole); splits of one object are ordered by their start. So a line's number is its id minus
    its split's first id plus the lines of the object's earlier splits: a small aggregate per
    split, joined back, instead of sorting every row by its object. Lines skipped as blank are
    not counted.
    """
    spark = landed.sparkSession
    positioned = landed.select(
        "*",
        F.col("_metadata.file_path").alias(SOURCE_FILE),
        F.col("_metadata.file_size").alias(SOURCE_SIZE),
        F.col("_metadata.file_modification_time").alias(SOURCE_MODIFIED),
        F.col("_metadata.file_block_start").alias("_block_start"),
        F.monotonically_increasing_id().alias("_read_order"),
    ).persist()
    in_object = Window.partitionBy(SOURCE_FILE).orderBy("_block_start")
    splits = (
        positioned.groupBy(SOURCE_FILE, "_block_start")
        .agg(F.min("_read_order").alias("_first"), F.count(F.lit(1)).alias("_lines"))
        .select(
            SOURCE_FILE,
            "_block_start",
            "_first",
            (F.sum("_lines").over(in_object) - F.col("_lines")).alias("_before"),
        )
    )
    # A few rows per object: on the driver, then broadcast, so the lines themselves never move.
    split_rows = spark.createDataFrame(splits.collect(), splits.schema)
    line = F.col("_read_order") - F.col("_first") + F.col("_before")
    # One ingestion time for the whole run, the same in every query over these rows.
    ingested_at = F.lit(datetime.now(UTC)).cast("timestamp")
    with_lines = positioned.join(F.broadcast(split_rows), [SOURCE_FILE, "_block_start"]).select(
        *landed.columns,
        F.col(SOURCE_FILE),
        line.cast("bigint").alias(SOURCE_LINE),
        F.col(SOURCE_SIZE),
        F.col(SOURCE_MODIFIED),
        ingested_at.alias(INGESTED_AT),
    )
    return with_lines, positioned


def with_lineage(landed: DataFrame) -> DataFrame:
    """Add the source object's path, each line's number in it, the object's size and
    modification time, and the ingestion time (see `_positioned`)."""
    return _positioned(landed)[0]


def _parsed(spark: SparkSession, paths: list[str], source_schema: StructType) -> DataFrame:
    return (
        spark.read.schema(with_corrupt_record(source_schema))
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
        .json(list(paths))
    )


def read_landed(spark: SparkSession, paths: list[str], source_schema: StructType) -> DataFrame:
    """The lines of the given landed objects, parsed with the explicit schema (PERMISSIVE), with
    lineage columns."""
    return with_lineage(_parsed(spark, paths, source_schema))


@dataclass
class Ingested:
    """What one topic's ingestion appended: a line count and, when non-zero, the appended rows
    (cached, so silver works on only the ids they touch): `release` them when done."""

    appended: int
    rows: DataFrame | None = None
    cached: DataFrame | None = None
    # Bronze was created empty by this run: nothing landed yet, so silver has nothing to read.
    created_empty: bool = False

    def release(self) -> None:
        if self.cached is not None:
            self.cached.unpersist()
        self.rows = self.cached = None


def ingest_topic(
    spark: SparkSession,
    input_root: str,
    topic: str,
    source_schema: StructType,
    table_path: str,
    manifest_path: str,
) -> Ingested:
    """Append the lines of not-yet-ingested object versions of `topic` to the bronze table and
    record those versions in the manifest.

    Only new object versions are listed again and parsed: a run over an unchanged landing zone
    reads no JSON and runs no Spark job on the landed data. Bronze is created (empty) on first use.
    """
    last = last_ingested(spark, table_path, manifest_path)
    listed = list_landed(
        input_root,
        topic,
        {folder: item.path for folder, item in last.items()},
        s3_client_kwargs(spark),
    )
    known = set(last.values())
    new = sorted((item for item in listed if item not in known), key=lambda item: item.path)
    if not new:
        if not is_delta_table(spark, table_path):
            create_empty(spark, bronze_schema(source_schema), table_path)
            create_empty(spark, MANIFEST_SCHEMA, manifest_path)
            return Ingested(0, created_empty=True)
        return Ingested(0)
    rows, cached = _positioned(_parsed(spark, [item.path for item in new], source_schema))
    appended = cached.count()
    # mergeSchema: a table written before a lineage column was added gains it
    rows.write.format("delta").mode("append").option("mergeSchema", "true").save(table_path)
    record_ingested(spark, new, table_version(spark, table_path), manifest_path)
    ingested = Ingested(appended, rows, cached)
    if not appended:
        ingested.release()
    return ingested
