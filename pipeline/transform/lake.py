"""The Delta Lake writes of both jobs, each committing only real changes, so re-running a job (or
replaying a micro-batch) leaves tables untouched.

The batch job's, which create their table on first use, even from an empty DataFrame, so readers
downstream always find a table:

- `append_absent`: append the rows whose key is not in the table yet (bronze, rejected);
- `merge_changed`: MERGE on a key, sending only rows that differ from the table (silver);
- `replace_if_changed`: overwrite a small derived table only when its content changed (gold).

The stream job's, on tables created up front (`create_empty`, `add_column_if_absent`):

- `upsert`: MERGE on a key, a held row replaced only where a condition holds (stream tables);
- `insert_absent`: MERGE inserting the rows whose key is not in the table (stream rejected);
- `retry_write_conflicts`: retry such an idempotent write after a concurrent commit conflict.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql.types import StructType
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random_exponential

from pipeline.lake import is_delta_table


def read_delta(spark: SparkSession, path: str) -> DataFrame:
    return spark.read.format("delta").load(path)


def table_version(spark: SparkSession, path: str) -> int:
    """The latest commit version of a Delta table."""
    from delta.tables import DeltaTable

    latest = DeltaTable.forPath(spark, path).history(1).select("version").first()
    if latest is None:
        raise ValueError(f"{path} has no Delta history")
    return int(latest["version"])


def _create(df: DataFrame, path: str) -> None:
    df.write.format("delta").mode("errorifexists").save(path)


def create_empty(
    spark: SparkSession, schema: StructType, path: str, partitioned_by: Sequence[str] = ()
) -> None:
    """An empty table unless one is there: one commit, no Spark job (unlike writing an empty
    DataFrame)."""
    from delta.tables import DeltaTable

    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(schema)
    if partitioned_by:
        builder = builder.partitionedBy(*partitioned_by)
    builder.execute()


def add_column_if_absent(spark: SparkSession, path: str, name: str, sql_type: str) -> None:
    """A table written before a column existed gains it (null in the rows it holds)."""
    if name not in read_delta(spark, path).columns:
        spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS (`{name}` {sql_type})")


def is_write_conflict(error: BaseException) -> bool:
    text = str(error)
    return "Concurrent" in text or "DELTA_CONCURRENT" in text


# For writers committing concurrently to one table (the stream's queries, to different partitions
# of the rejected table): a rare conflict is retried. Only for idempotent writes (a MERGE).
retry_write_conflicts = retry(
    retry=retry_if_exception(is_write_conflict),
    stop=stop_after_attempt(5),
    wait=wait_random_exponential(multiplier=0.2, max=5),
    reraise=True,
)


def _key_matches(key: Sequence[str]) -> list[str]:
    return [f"target.`{name}` = source.`{name}`" for name in key]


def upsert(
    spark: SparkSession, rows: DataFrame, path: str, key: str, replace_when: Column | None = None
) -> None:
    """MERGE `rows` (unique on `key`): insert new keys; replace a held row, only where
    `replace_when` holds if given (its columns named `source.<c>` and `target.<c>`)."""
    from delta.tables import DeltaTable

    (
        DeltaTable.forPath(spark, path)
        .alias("target")
        .merge(rows.alias("source"), " AND ".join(_key_matches([key])))
        .whenMatchedUpdateAll(condition=replace_when)
        .whenNotMatchedInsertAll()
        .execute()
    )


def insert_absent(
    spark: SparkSession,
    rows: DataFrame,
    path: str,
    key: Sequence[str],
    target_filter: str | None = None,
) -> None:
    """MERGE inserting the rows whose `key` is not in the table yet; `target_filter` (SQL on
    `target.<c>`) keeps the comparison to part of the table, e.g. one partition."""
    from delta.tables import DeltaTable

    condition = " AND ".join([*([target_filter] if target_filter else []), *_key_matches(key)])
    (
        DeltaTable.forPath(spark, path)
        .alias("target")
        .merge(rows.alias("source"), condition)
        .whenNotMatchedInsertAll()
        .execute()
    )


def append_absent(spark: SparkSession, df: DataFrame, path: str, key: Sequence[str]) -> int:
    """Append the rows of `df` whose `key` is not in the table yet; return how many."""
    if not is_delta_table(spark, path):
        rows = df.persist()
        try:
            count = rows.count()
            if count:
                _create(rows, path)
            else:
                create_empty(spark, df.schema, path)
        finally:
            rows.unpersist()
        return count
    present = read_delta(spark, path).select(*key).distinct()
    new_rows = df.join(present, list(key), "left_anti").select(*df.columns).persist()
    try:
        count = new_rows.count()
        if count:
            # mergeSchema: a table written before a lineage column was added gains it
            new_rows.write.format("delta").mode("append").option("mergeSchema", "true").save(path)
    finally:
        new_rows.unpersist()
    return count


def merge_changed(
    spark: SparkSession, df: DataFrame, path: str, key: str, among: DataFrame | None = None
) -> int:
    """Upsert `df` (unique on `key`) by MERGE, sending only rows not already in the table as
    they are; return how many rows were inserted or updated (0 means no commit).

    `among`: the `key` values `df` can hold (one column named `key`), so that only those rows of
    the table are compared, not all of it.
    """
    if not is_delta_table(spark, path):
        return append_absent(spark, df, path, [key])
    current = read_delta(spark, path).select(*df.columns)
    if among is not None:
        current = current.join(among, key, "left_semi")
    changed = df.exceptAll(current).persist()
    try:
        count = changed.count()
        if count:
            upsert(spark, changed, path, key)
    finally:
        changed.unpersist()
    return count


def _shape(df: DataFrame) -> list[tuple[str, str]]:
    """Column names and types, ignoring nullability (Delta may store it differently)."""
    return [(field.name, field.dataType.simpleString()) for field in df.schema.fields]


def _row_keys(rows: Sequence[Row]) -> Counter[str]:
    return Counter(json.dumps(row.asDict(recursive=True), default=str) for row in rows)


def replace_if_changed(spark: SparkSession, df: DataFrame, path: str) -> bool:
    """Overwrite the table with `df` unless it already holds exactly these rows; True if written.

    For small derived tables (gold): the result is computed once and compared on the driver.
    """
    rows = df.collect()
    exists = is_delta_table(spark, path)
    if not rows and not exists:
        create_empty(spark, df.schema, path)
        return True
    if exists:
        current = read_delta(spark, path)
        if _shape(current) == _shape(df) and _row_keys(current.collect()) == _row_keys(rows):
            return False
    result = spark.createDataFrame(rows, df.schema)
    result.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
    return True
