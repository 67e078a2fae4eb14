"""Bronze: the landed JSON lines of each topic as Delta tables, append-only and idempotent.

The landing zone (SPEC §2) holds `<root>/topics/<topic>/partition=<p>/<object>` with one JSON
object per line. The S3 sink names an object after the offsets it holds, so a replay rewrites the
same name with the same lines; an offset window still open at a flush is written early and
rewritten, under the same name, once it has grown. The unit of ingestion is therefore one version
of one object: its path, size and modification time. A run appends only the lines of object
versions not ingested before, with that lineage and the ingestion time, so re-running over the
same objects adds nothing, while a grown object is read again in full (silver keeps one row per
`ind`, so its earlier lines do not duplicate anything downstream).

Lines that do not parse stay in bronze with their raw text in `_corrupt_record`; silver routes them
to the rejected table.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType, TimestampType

from pipeline.transform.lake import append_absent, is_delta_table, read_delta
from pipeline.transform.schemas import CORRUPT_RECORD, with_corrupt_record

SOURCE_FILE = "_source_file"
SOURCE_SIZE = "_source_size"
SOURCE_MODIFIED = "_source_modified"
INGESTED_AT = "_ingested_at"
# The line's number within its object (0-based): with the object's start offset, its Kafka offset.
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


def landing_glob(input_root: str, topic: str) -> str:
    """Every landed object of one topic, across its partitions."""
    return f"{input_root.rstrip('/')}/topics/{topic}/partition=*/*"


def bronze_schema(source_schema: StructType) -> StructType:
    return StructType([*with_corrupt_record(source_schema).fields, *LINEAGE_FIELDS])


def with_lineage(landed: DataFrame) -> DataFrame:
    """Add the source object's path, each line's number in it, the object's size and
    modification time, and the ingestion time."""
    from pyspark.sql.window import Window

    # The reader yields a split's lines in order, so this id grows with the line within a split;
    # splits of one object are ordered by their start. Lines skipped as blank are not counted.
    read_order = F.monotonically_increasing_id()
    positioned = landed.select(
        "*",
        F.col("_metadata.file_path").alias(SOURCE_FILE),
        F.col("_metadata.file_size").alias(SOURCE_SIZE),
        F.col("_metadata.file_modification_time").alias(SOURCE_MODIFIED),
        F.col("_metadata.file_block_start").alias("_block_start"),
        read_order.alias("_read_order"),
    )
    in_object = Window.partitionBy(SOURCE_FILE).orderBy("_block_start", "_read_order")
    return positioned.select(
        *landed.columns,
        F.col(SOURCE_FILE),
        (F.row_number().over(in_object) - 1).cast("bigint").alias(SOURCE_LINE),
        F.col(SOURCE_SIZE),
        F.col(SOURCE_MODIFIED),
        F.current_timestamp().alias(INGESTED_AT),
    )


def _object_versions(frame: DataFrame) -> DataFrame:
    return frame.select(
        F.col("_metadata.file_path").alias(SOURCE_FILE),
        F.col("_metadata.file_size").alias(SOURCE_SIZE),
        F.col("_metadata.file_modification_time").alias(SOURCE_MODIFIED),
    )


def list_landed(spark: SparkSession, path_glob: str) -> DataFrame | None:
    """One row per landed object version (path, size, modification time), without reading any
    content (`binaryFile` skips it when `content` is not selected); None when nothing landed."""
    try:
        return _object_versions(spark.read.format("binaryFile").load(path_glob))
    except AnalysisException as error:
        if "PATH_NOT_FOUND" not in str(error):
            raise
        return None


def read_landed(spark: SparkSession, paths: Sequence[str], source_schema: StructType) -> DataFrame:
    """The lines of the given landed objects, parsed with the explicit schema (PERMISSIVE), with
    lineage columns."""
    landed = (
        spark.read.schema(with_corrupt_record(source_schema))
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
        .json(list(paths))
    )
    return with_lineage(landed)


def ingest_topic(
    spark: SparkSession, input_root: str, topic: str, source_schema: StructType, table_path: str
) -> int:
    """Append the lines of not-yet-ingested object versions of `topic` to the bronze table;
    return how many lines were appended (0 means the table was not touched).

    Only new object versions are parsed: a run over an unchanged landing zone reads no JSON.
    """
    empty = spark.createDataFrame([], bronze_schema(source_schema))
    listed = list_landed(spark, landing_glob(input_root, topic))
    if listed is None:
        return append_absent(spark, empty, table_path, OBJECT_VERSION)
    if is_delta_table(spark, table_path):
        known = read_delta(spark, table_path).select(*OBJECT_VERSION).distinct()
        listed = listed.join(known, list(OBJECT_VERSION), "left_anti")
    new_paths = sorted({row[SOURCE_FILE] for row in listed.select(SOURCE_FILE).collect()})
    landed = read_landed(spark, new_paths, source_schema) if new_paths else empty
    # Still keyed on the version: an object rewritten since the listing is read as it is now.
    return append_absent(spark, landed, table_path, OBJECT_VERSION)
