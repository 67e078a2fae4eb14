"""Explicit schemas of the rows the emulator sends (data contract §1), as they arrive in JSON.

Datetimes travel as ISO 8601 text, so they are strings here and become timestamps in silver.
`follower_count` is text in the source (`15k`, `User Info Error`). Every schema can carry the
JSON reader's corrupt-record column, which keeps the raw text of a line that does not parse.
"""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

CORRUPT_RECORD = "_corrupt_record"

PIN_SCHEMA = StructType(
    [
        StructField("index", IntegerType()),
        StructField("unique_id", StringType()),
        StructField("title", StringType()),
        StructField("description", StringType()),
        StructField("poster_name", StringType()),
        StructField("follower_count", StringType()),
        StructField("tag_list", StringType()),
        StructField("is_image_or_video", StringType()),
        StructField("image_src", StringType()),
        StructField("downloaded", IntegerType()),
        StructField("save_location", StringType()),
        StructField("category", StringType()),
    ]
)

GEO_SCHEMA = StructType(
    [
        StructField("ind", IntegerType()),
        StructField("timestamp", StringType()),
        StructField("latitude", DoubleType()),
        StructField("longitude", DoubleType()),
        StructField("country", StringType()),
    ]
)

USER_SCHEMA = StructType(
    [
        StructField("ind", IntegerType()),
        StructField("first_name", StringType()),
        StructField("last_name", StringType()),
        StructField("age", IntegerType()),
        StructField("date_joined", StringType()),
    ]
)

# Landed schema per table, and the column holding the row id in it (pin rows call it `index`).
SOURCE_SCHEMAS: dict[str, StructType] = {"pin": PIN_SCHEMA, "geo": GEO_SCHEMA, "user": USER_SCHEMA}
SOURCE_ID_COLUMNS: dict[str, str] = {"pin": "index", "geo": "ind", "user": "ind"}

# Silver tables (data contract §3), columns in contract order.
SILVER_PIN_SCHEMA = StructType(
    [
        StructField("ind", IntegerType()),
        StructField("unique_id", StringType()),
        StructField("title", StringType()),
        StructField("description", StringType()),
        StructField("follower_count", LongType()),
        StructField("poster_name", StringType()),
        StructField("tag_list", StringType()),
        StructField("is_image_or_video", StringType()),
        StructField("image_src", StringType()),
        StructField("save_location", StringType()),
        StructField("category", StringType()),
    ]
)

SILVER_GEO_SCHEMA = StructType(
    [
        StructField("ind", IntegerType()),
        StructField("country", StringType()),
        StructField("coordinates", ArrayType(DoubleType())),
        StructField("timestamp", TimestampType()),
    ]
)

SILVER_USER_SCHEMA = StructType(
    [
        StructField("ind", IntegerType()),
        StructField("user_name", StringType()),
        StructField("age", IntegerType()),
        StructField("date_joined", TimestampType()),
    ]
)

SILVER_SCHEMAS: dict[str, StructType] = {
    "pin": SILVER_PIN_SCHEMA,
    "geo": SILVER_GEO_SCHEMA,
    "user": SILVER_USER_SCHEMA,
}


def with_corrupt_record(schema: StructType) -> StructType:
    """`schema` plus the string column where PERMISSIVE JSON parsing keeps unreadable lines."""
    if CORRUPT_RECORD in schema.fieldNames():
        return schema
    return StructType([*schema.fields, StructField(CORRUPT_RECORD, StringType())])
