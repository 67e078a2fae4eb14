"""Silver cleaning of data contract §3 as pure DataFrame → DataFrame functions (Spark only).

The steps are separate so batch and streaming can share them:

1. `parse_json_column` (streams) or the JSON file reader (batch) turns text into typed rows plus
   the corrupt-record column;
2. `split_rejected` sets aside rows that cannot be read, each with a reason;
3. `clean_pin` / `clean_geo` / `clean_user` clean one row at a time (no shuffle, stream-safe);
4. `latest_arrival` keeps the latest arrival of an `ind` (data contract §3.4), the one rule of
   both layers: the batch job over bronze, the stream job within a micro-batch and, with
   `is_later_arrival`, in its MERGE.

`bronze_to_silver` chains 2-4 for the batch job. Extra columns whose names start with `_`
(lineage such as `_source_file`, `_ingested_at`) pass through steps 2 and 3 untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType, StructType

from pipeline.transform.bronze import INGESTED_AT, SOURCE_FILE, SOURCE_LINE, SOURCE_MODIFIED
from pipeline.transform.schemas import (
    CORRUPT_RECORD,
    SILVER_SCHEMAS,
    SOURCE_ID_COLUMNS,
    SOURCE_SCHEMAS,
    with_corrupt_record,
)

# Data contract §1 placeholders; each one is only a placeholder in its own column.
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "title": ("No Title Data Available",),
    "description": ("No description available Story format", "No description available"),
    "poster_name": ("User Info Error",),
    "follower_count": ("User Info Error",),
    "tag_list": ("N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e",),
    "image_src": ("Image src error.",),
}

# Rejection reasons (the `reason` column of the rejected table).
REASON_MALFORMED_JSON = "malformed JSON"
REASON_SCHEMA_MISMATCH = "fields do not match the schema"
REASON_MISSING_ID = "missing ind"

REJECTED_COLUMNS: tuple[str, ...] = ("source", "reason", "record")

# Digits with an optional decimal part and k/M/B suffix; bounded so the arithmetic cannot overflow.
_FOLLOWER_COUNT = r"^\s*(\d{1,18}(?:\.\d{1,9})?)\s*([kKmMbB]?)\s*$"
_SUFFIX_FACTORS: dict[str, int] = {"k": 1_000, "m": 1_000_000, "b": 1_000_000_000}
_LONG_MAX = 2**63 - 1

# A time of day followed by a zone: `Z`, `UTC`, `GMT`, `+02`, `+0200` or `+02:00`.
_HAS_ZONE = r":\d{2}(\.\d*)?\s*(Z|UTC|GMT|[+-]\d{1,2}(:?\d{2}){0,2})$"
_DATE_ONLY = r"^\d{4}-\d{1,2}-\d{1,2}$"
_SURROUNDING_SPACE = r"^\s+|\s+$"

_LATITUDE_RANGE = (-90.0, 90.0)
_LONGITUDE_RANGE = (-180.0, 180.0)


def is_lineage(column: str) -> bool:
    """Lineage columns (`_source_file`, ...) travel with the data; the corrupt record does not."""
    return column.startswith("_") and column != CORRUPT_RECORD


def lineage_columns(df: DataFrame) -> list[str]:
    return [name for name in df.columns if is_lineage(name)]


# -- column-level rules -----------------------------------------------------------------------


def clean_text(column: Column, placeholders: Sequence[str] = ()) -> Column:
    """Trim surrounding whitespace; empty text and the column's placeholders become null."""
    trimmed = F.regexp_replace(column, _SURROUNDING_SPACE, "")
    unusable = trimmed == ""
    if placeholders:
        unusable = unusable | trimmed.isin(*placeholders)
    return F.when(~unusable, trimmed)


def parse_follower_count(column: Column) -> Column:
    """`437`, `15k`, `1.5M`, ` 2 b ` → whole number (half-up rounding); anything else → null."""
    # The pattern bounds the digits, so the decimal cast cannot fail, and the range check keeps
    # the final cast from overflowing: plain casts, which Spark 3.5 (no `try_cast`) also runs.
    number = F.when(column.rlike(_FOLLOWER_COUNT), F.regexp_extract(column, _FOLLOWER_COUNT, 1))
    suffix = F.lower(F.regexp_extract(column, _FOLLOWER_COUNT, 2))
    factor = F.lit(1)
    for letter, multiplier in _SUFFIX_FACTORS.items():
        factor = F.when(suffix == letter, F.lit(multiplier)).otherwise(factor)
    whole = F.round(number.cast(DecimalType(27, 9)) * factor.cast(DecimalType(10, 0)), 0)
    return F.when(whole <= F.lit(_LONG_MAX).cast(DecimalType(38, 0)), whole.cast("bigint"))


def parse_timestamp(column: Column) -> Column:
    """ISO 8601 text → UTC instant; `T` or space, fractional seconds, `Z` or offsets.

    Text without a zone is UTC, whatever the session time zone: we append `Z` before parsing.
    """
    # Upper case so a lower-case `t`, `z` or `utc` reads like its ISO spelling.
    text = F.upper(F.regexp_replace(column, _SURROUNDING_SPACE, ""))
    zoned = (
        F.when(text.rlike(_HAS_ZONE), text)
        .when(text.rlike(_DATE_ONLY), F.concat(text, F.lit("T00:00:00Z")))
        .otherwise(F.concat(text, F.lit("Z")))
    )
    return F.try_to_timestamp(zoned)  # no format: Spark's cast rules, null when unreadable


def save_location_path(column: Column) -> Column:
    """`Local save in /data/travel` → `/data/travel`; a bare path stays as it is."""
    path = F.regexp_replace(clean_text(column), r"(?i)^local save in\s*", "")
    return clean_text(path)


def coordinates(latitude: Column, longitude: Column) -> Column:
    """`[latitude, longitude]`, or null unless both are present and within range."""
    usable = latitude.between(*_LATITUDE_RANGE) & longitude.between(*_LONGITUDE_RANGE)
    return F.when(usable, F.array(latitude.cast("double"), longitude.cast("double")))


def full_name(first_name: Column, last_name: Column) -> Column:
    """`first last`; one name alone if the other is missing; null if both are."""
    joined = F.concat_ws(" ", clean_text(first_name), clean_text(last_name))
    return F.when(joined != "", joined)


# -- row-level cleaning per table ---------------------------------------------------------------


def _carried(df: DataFrame, names: Sequence[str] | None) -> list[Column]:
    return [F.col(name) for name in (lineage_columns(df) if names is None else names)]


def clean_pin(df: DataFrame, carry: Sequence[str] | None = None) -> DataFrame:
    """Landed pin rows → silver pin columns (data contract §3.1), plus lineage (all by default)."""
    return df.select(
        F.col("index").alias("ind"),
        clean_text(F.col("unique_id")).alias("unique_id"),
        clean_text(F.col("title"), PLACEHOLDERS["title"]).alias("title"),
        clean_text(F.col("description"), PLACEHOLDERS["description"]).alias("description"),
        parse_follower_count(
            clean_text(F.col("follower_count"), PLACEHOLDERS["follower_count"])
        ).alias("follower_count"),
        clean_text(F.col("poster_name"), PLACEHOLDERS["poster_name"]).alias("poster_name"),
        clean_text(F.col("tag_list"), PLACEHOLDERS["tag_list"]).alias("tag_list"),
        clean_text(F.col("is_image_or_video")).alias("is_image_or_video"),
        clean_text(F.col("image_src"), PLACEHOLDERS["image_src"]).alias("image_src"),
        save_location_path(F.col("save_location")).alias("save_location"),
        clean_text(F.col("category")).alias("category"),
        *_carried(df, carry),
    )


def clean_geo(df: DataFrame, carry: Sequence[str] | None = None) -> DataFrame:
    """Landed geo rows → `ind, country, coordinates, timestamp`, plus lineage columns."""
    return df.select(
        F.col("ind"),
        clean_text(F.col("country")).alias("country"),
        coordinates(F.col("latitude"), F.col("longitude")).alias("coordinates"),
        parse_timestamp(F.col("timestamp")).alias("timestamp"),
        *_carried(df, carry),
    )


def clean_user(df: DataFrame, carry: Sequence[str] | None = None) -> DataFrame:
    """Landed user rows → `ind, user_name, age, date_joined`, plus lineage columns."""
    return df.select(
        F.col("ind"),
        full_name(F.col("first_name"), F.col("last_name")).alias("user_name"),
        F.col("age"),
        parse_timestamp(F.col("date_joined")).alias("date_joined"),
        *_carried(df, carry),
    )


CLEANERS: dict[str, Callable[..., DataFrame]] = {
    "pin": clean_pin,
    "geo": clean_geo,
    "user": clean_user,
}


# -- reading and rejecting ----------------------------------------------------------------------


def parse_json_column(df: DataFrame, column: str, schema: StructType) -> DataFrame:
    """Parse a JSON text column with `schema` (PERMISSIVE): its fields, the corrupt record, and
    every other column of `df` kept as is. The streaming counterpart of the JSON file reader."""
    parsed = F.from_json(
        F.col(column),
        with_corrupt_record(schema),
        {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT_RECORD},
    )
    others = [F.col(name) for name in df.columns if name != column]
    return df.select(*others, parsed.alias("_parsed")).select(*others, "_parsed.*")


def split_rejected(df: DataFrame, table: str) -> tuple[DataFrame, DataFrame]:
    """(readable rows without the corrupt-record column, rejected rows with a reason).

    A row is rejected when its JSON did not parse or did not fit the schema, or when it has no
    id. Rejected rows keep the raw text (`record`) and the lineage columns.
    """
    schema = SOURCE_SCHEMAS[table]
    id_column = F.col(SOURCE_ID_COLUMNS[table])
    corrupt = F.col(CORRUPT_RECORD) if CORRUPT_RECORD in df.columns else F.lit(None).cast("string")
    readable = corrupt.isNull() & id_column.isNotNull()

    good = df.where(readable)
    if CORRUPT_RECORD in df.columns:
        good = good.drop(CORRUPT_RECORD)

    as_object = F.from_json(corrupt, "map<string,string>")
    reason = (
        F.when(corrupt.isNotNull() & as_object.isNull(), F.lit(REASON_MALFORMED_JSON))
        .when(corrupt.isNotNull(), F.lit(REASON_SCHEMA_MISMATCH))
        .otherwise(F.lit(REASON_MISSING_ID))
    )
    record = F.coalesce(corrupt, F.to_json(F.struct(*[F.col(n) for n in schema.fieldNames()])))
    rejected = df.where(~readable).select(
        F.lit(table).alias("source"),
        reason.alias("reason"),
        record.alias("record"),
        *_carried(df, None),
    )
    return good, rejected


# -- duplicates -----------------------------------------------------------------------------------


# Data contract §3.4: when one `ind` arrives more than once, the latest arrival wins, in both
# layers. With records keyed by id, one id keeps to one Kafka partition and one Kinesis shard, where
# the record's position is arrival order: its offset (batch) or sequence number (stream). Each layer
# puts that position in ARRIVAL_ORDER, as decimal digits (sequence numbers exceed 64 bits).
ARRIVAL_ORDER = "_arrival_order"


def arrival_sort_keys(order: Column) -> list[Column]:
    """Sort keys putting decimal digit strings (no leading zeros) in numeric order, latest first."""
    return [F.length(order).desc_nulls_last(), order.desc_nulls_last()]


def is_later_arrival(new: Column, old: Column) -> Column:
    """True when position `new` came after `old` (numeric order of decimal digit strings); a row
    without a known position is overtaken by any later arrival that has one."""
    return (
        old.isNull()
        | (F.length(new) > F.length(old))
        | ((F.length(new) == F.length(old)) & (new > old))
    )


def latest_arrival(df: DataFrame, key: str = "ind", tie_break: Sequence[Column] = ()) -> DataFrame:
    """The rule for repeated ids, shared by the batch and the stream job: one row per `key`, the
    one with the greatest `ARRIVAL_ORDER`. Rows tying on it are one record read twice (a replay,
    a rewritten object): `tie_break`, then a hash of the content, picks the same one every run."""
    from pyspark.sql.window import Window

    content = F.xxhash64(*[F.col(name) for name in df.columns])
    order = [*arrival_sort_keys(F.col(ARRIVAL_ORDER)), *tie_break, content.desc()]
    window = Window.partitionBy(key).orderBy(*order)
    return df.withColumn("_rank", F.row_number().over(window)).where("_rank = 1").drop("_rank")


# Landed object names end with the offset of their first record (`<topic>+<p>+<offset>.json`).
_START_OFFSET = r"\+(\d+)\.json$"


def landed_offset(source_file: Column, line: Column) -> Column:
    """The Kafka offset of a landed line: its object's start offset plus its line number (the S3
    sink writes one record per line, in offset order); null for a name without an offset. Where
    commit markers of the API's transactions took offsets in its window (no line), a number below
    the offset, still in the partition's order: what arrival order needs."""
    start = F.regexp_extract(source_file, _START_OFFSET, 1)
    offset = F.when(start != "", start.cast("bigint") + F.coalesce(line, F.lit(0)))
    return offset.cast("string")


def bronze_to_silver(bronze: DataFrame, table: str) -> tuple[DataFrame, DataFrame]:
    """Bronze rows of one table → (silver rows, one per `ind`, in contract order; rejected rows).

    Among duplicates of an `ind` the latest arrival wins (`latest_arrival`: the greatest Kafka
    offset); copies of one record (a rewritten object) prefer the newest object version.
    """
    good, rejected = split_rejected(bronze, table)
    line = F.col(SOURCE_LINE) if SOURCE_LINE in good.columns else F.lit(None)
    cleaned = CLEANERS[table](
        good.withColumn(ARRIVAL_ORDER, landed_offset(F.col(SOURCE_FILE), line))
    )
    tie_break = [
        F.col(name).desc_nulls_last()
        for name in (SOURCE_MODIFIED, INGESTED_AT)
        if name in cleaned.columns
    ]
    deduplicated = latest_arrival(cleaned, "ind", tie_break)
    return deduplicated.select(*SILVER_SCHEMAS[table].fieldNames()), rejected
