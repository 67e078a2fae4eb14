"""Data contract §3 cleaning rules, one by one, on small hand-built DataFrames."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.transform.bronze import SOURCE_FILE, SOURCE_LINE, read_landed
from pipeline.transform.schemas import (
    CORRUPT_RECORD,
    GEO_SCHEMA,
    PIN_SCHEMA,
    SILVER_SCHEMAS,
    USER_SCHEMA,
    with_corrupt_record,
)
from pipeline.transform.silver import (
    ARRIVAL_ORDER,
    REASON_MALFORMED_JSON,
    REASON_MISSING_ID,
    REASON_SCHEMA_MISMATCH,
    bronze_to_silver,
    clean_geo,
    clean_pin,
    clean_user,
    is_later_arrival,
    landed_offset,
    latest_arrival,
    parse_follower_count,
    parse_json_column,
    parse_timestamp,
    split_rejected,
)

STORY_TAGS = "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e"


def pin_row(index: int | None = 1, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "index": index,
        "unique_id": "8f2c4e1a-0000-4000-8000-000000000001",
        "title": "Easy Watercolor Ideas",
        "description": "Save this pin.",
        "poster_name": "Paint Club",
        "follower_count": "15k",
        "tag_list": "art,painting",
        "is_image_or_video": "image",
        "image_src": "https://i.pinimg.com/a.jpg",
        "downloaded": 1,
        "save_location": "Local save in /data/art",
        "category": "art",
    }
    row.update(values)
    return row


def pins(spark: SparkSession, *rows: dict[str, Any]) -> DataFrame:
    return spark.createDataFrame(list(rows), PIN_SCHEMA)


def epoch_micros(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> int:
    """Microseconds since the epoch of a UTC wall-clock time (what `unix_micros` returns)."""
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * 1_000_000


@contextmanager
def session_time_zone(spark: SparkSession, zone: str) -> Iterator[None]:
    previous = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", zone)
    try:
        yield
    finally:
        spark.conf.set("spark.sql.session.timeZone", previous or "UTC")


# -- pin ----------------------------------------------------------------------------------------


def test_clean_pin_columns_are_the_contract_in_order(spark: SparkSession) -> None:
    cleaned = clean_pin(pins(spark, pin_row()))

    assert cleaned.columns == SILVER_SCHEMAS["pin"].fieldNames()
    assert cleaned.collect()[0].asDict() == {
        "ind": 1,
        "unique_id": "8f2c4e1a-0000-4000-8000-000000000001",
        "title": "Easy Watercolor Ideas",
        "description": "Save this pin.",
        "follower_count": 15000,
        "poster_name": "Paint Club",
        "tag_list": "art,painting",
        "is_image_or_video": "image",
        "image_src": "https://i.pinimg.com/a.jpg",
        "save_location": "/data/art",
        "category": "art",
    }


def test_every_placeholder_becomes_null_in_its_own_column(spark: SparkSession) -> None:
    story = pin_row(
        title="No Title Data Available",
        description="No description available Story format",
        poster_name="User Info Error",
        follower_count="User Info Error",
        tag_list=STORY_TAGS,
        is_image_or_video="multi-video(story page format)",
        image_src="Image src error.",
    )
    plain_no_description = pin_row(2, description="No description available")

    rows = {
        row["ind"]: row for row in clean_pin(pins(spark, story, plain_no_description)).collect()
    }

    for column in (
        "title",
        "description",
        "poster_name",
        "follower_count",
        "tag_list",
        "image_src",
    ):
        assert rows[1][column] is None, column
    assert rows[1]["is_image_or_video"] == "multi-video(story page format)"
    assert rows[1]["category"] == "art"
    assert rows[2]["description"] is None
    assert rows[2]["title"] == "Easy Watercolor Ideas"


def test_placeholders_only_count_in_their_own_column(spark: SparkSession) -> None:
    swapped = pin_row(
        title="User Info Error",
        description="Image src error.",
        poster_name="No Title Data Available",
        tag_list="No description available",
        image_src=STORY_TAGS,
    )

    row = clean_pin(pins(spark, swapped)).collect()[0]

    assert row["title"] == "User Info Error"
    assert row["description"] == "Image src error."
    assert row["poster_name"] == "No Title Data Available"
    assert row["tag_list"] == "No description available"
    assert row["image_src"] == STORY_TAGS


def test_placeholders_with_surrounding_spaces_still_match(spark: SparkSession) -> None:
    row = clean_pin(
        pins(spark, pin_row(title="  No Title Data Available ", poster_name="\tUser Info Error"))
    ).collect()[0]

    assert row["title"] is None
    assert row["poster_name"] is None


def test_empty_and_whitespace_only_text_becomes_null(spark: SparkSession) -> None:
    blank = pin_row(
        unique_id="",
        title="   ",
        description="\t \n",
        poster_name="",
        follower_count="  ",
        tag_list=" ",
        is_image_or_video="",
        image_src="  ",
        save_location=" ",
        category="",
    )

    row = clean_pin(pins(spark, blank)).collect()[0].asDict()

    assert {column: value for column, value in row.items() if column != "ind"} == {
        column: None for column in SILVER_SCHEMAS["pin"].fieldNames() if column != "ind"
    }


def test_text_is_trimmed(spark: SparkSession) -> None:
    row = clean_pin(pins(spark, pin_row(category=" travel ", poster_name=" Ann  Lee "))).collect()

    assert row[0]["category"] == "travel"
    assert row[0]["poster_name"] == "Ann  Lee"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("437", 437),
        ("0", 0),
        ("15k", 15_000),
        ("15K", 15_000),
        ("2M", 2_000_000),
        ("2m", 2_000_000),
        ("3B", 3_000_000_000),
        ("1.5M", 1_500_000),
        ("2.25k", 2_250),
        ("0.5k", 500),
        ("1.2345k", 1_235),  # 1234.5 rounds half up
        ("  12k  ", 12_000),
        ("12 k", 12_000),
        (" 1.5 M ", 1_500_000),
        ("007", 7),
        ("999999999999999999", 999_999_999_999_999_999),
        ("9000000000B", 9_000_000_000_000_000_000),
        ("9300000000B", None),  # beyond a 64-bit integer
        ("1234567890123456789", None),  # more digits than any follower count
        ("User Info Error", None),
        ("", None),
        ("   ", None),
        ("k", None),
        ("1.5x", None),
        ("15kk", None),
        ("-5", None),
        ("1,000", None),
        ("1.", None),
        (".5k", None),
        ("1e3", None),
        ("twelve", None),
        (None, None),
    ],
)
def test_follower_count_parsing(spark: SparkSession, raw: str | None, expected: int | None) -> None:
    parsed = spark.createDataFrame([(raw,)], "value string").select(
        parse_follower_count(F.col("value")).alias("count")
    )

    assert parsed.schema["count"].dataType.simpleString() == "bigint"
    assert parsed.collect()[0]["count"] == expected


def test_follower_count_in_clean_pin_drops_the_placeholder(spark: SparkSession) -> None:
    rows = (
        clean_pin(
            pins(
                spark, pin_row(1, follower_count="User Info Error"), pin_row(2, follower_count="2M")
            )
        )
        .orderBy("ind")
        .collect()
    )

    assert [row["follower_count"] for row in rows] == [None, 2_000_000]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Local save in /data/travel", "/data/travel"),
        ("Local save in /data/diy-and-crafts", "/data/diy-and-crafts"),
        ("  Local save in /data/art  ", "/data/art"),
        ("/data/quotes", "/data/quotes"),
        ("Local save in ", None),
        ("", None),
        (None, None),
    ],
)
def test_save_location_keeps_only_the_path(
    spark: SparkSession, raw: str | None, expected: str | None
) -> None:
    row = clean_pin(pins(spark, pin_row(save_location=raw))).collect()[0]

    assert row["save_location"] == expected


def test_index_is_renamed_and_downloaded_dropped(spark: SparkSession) -> None:
    cleaned = clean_pin(pins(spark, pin_row(7)))

    assert "index" not in cleaned.columns
    assert "downloaded" not in cleaned.columns
    assert cleaned.collect()[0]["ind"] == 7


# -- timestamps -----------------------------------------------------------------------------------


TIMESTAMP_CASES = [
    ("2020-08-28T03:52:47", epoch_micros(2020, 8, 28, 3, 52, 47)),
    ("2020-08-28 03:52:47", epoch_micros(2020, 8, 28, 3, 52, 47)),
    ("2020-08-28T03:52:47.250", epoch_micros(2020, 8, 28, 3, 52, 47) + 250_000),
    ("2020-08-28 03:52:47.123456", epoch_micros(2020, 8, 28, 3, 52, 47) + 123_456),
    ("2020-08-28T03:52:47Z", epoch_micros(2020, 8, 28, 3, 52, 47)),
    ("2020-08-28 03:52:47z", epoch_micros(2020, 8, 28, 3, 52, 47)),
    ("2020-08-28t03:52:47", epoch_micros(2020, 8, 28, 3, 52, 47)),
    ("2020-08-28 03:52:47 UTC", epoch_micros(2020, 8, 28, 3, 52, 47)),
    ("2020-08-28T03:52:47utc", epoch_micros(2020, 8, 28, 3, 52, 47)),
    ("2020-08-28T03:52:47+02:00", epoch_micros(2020, 8, 28, 1, 52, 47)),
    ("2020-08-28T03:52:47 +02:00", epoch_micros(2020, 8, 28, 1, 52, 47)),
    ("2020-08-28T03:52:47+02", epoch_micros(2020, 8, 28, 1, 52, 47)),
    ("2020-08-28T03:52:47+0200", epoch_micros(2020, 8, 28, 1, 52, 47)),
    ("2020-08-28 03:52:47-05:30", epoch_micros(2020, 8, 28, 9, 22, 47)),
    ("2020-08-28T03:52:47.5-05:00", epoch_micros(2020, 8, 28, 8, 52, 47) + 500_000),
    ("2020-12-31T23:30:00-01:00", epoch_micros(2021, 1, 1, 0, 30, 0)),
    (" 2019-01-02T00:00:00 ", epoch_micros(2019, 1, 2, 0, 0, 0)),
    ("2019-01-02", epoch_micros(2019, 1, 2, 0, 0, 0)),
    ("not a date", None),
    ("2020-13-45T00:00:00", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_timestamps_parse_to_utc_whatever_the_session_zone(spark: SparkSession, zone: str) -> None:
    frame = spark.createDataFrame(
        [(position, raw) for position, (raw, _) in enumerate(TIMESTAMP_CASES)],
        "position int, raw string",
    )
    with session_time_zone(spark, zone):
        rows = (
            frame.select("position", F.unix_micros(parse_timestamp(F.col("raw"))).alias("micros"))
            .orderBy("position")
            .collect()
        )

    assert [row["micros"] for row in rows] == [expected for _, expected in TIMESTAMP_CASES]


# -- geo and user ---------------------------------------------------------------------------------


def test_clean_geo_builds_coordinates_and_timestamp(spark: SparkSession) -> None:
    geo = spark.createDataFrame(
        [
            (1, "2020-08-28T03:52:47", -45.5, 120.25, "Cocos (Keeling) Islands"),
            (2, "2018-01-01 00:00:00+01:00", 90.0, -180.0, "  "),
            (3, "2019-05-05T10:00:00", 91.0, 10.0, "France"),
            (4, "2019-05-05T10:00:00", 10.0, -180.5, "Chad"),
            (5, None, None, 10.0, "Antarctica (the territory South of 60 deg S)"),
        ],
        GEO_SCHEMA,
    )

    cleaned = clean_geo(geo)
    rows = (
        cleaned.select("ind", "country", "coordinates", F.unix_micros("timestamp").alias("micros"))
        .orderBy("ind")
        .collect()
    )

    assert cleaned.columns == ["ind", "country", "coordinates", "timestamp"]
    assert cleaned.schema["coordinates"].dataType.simpleString() == "array<double>"
    assert cleaned.schema["timestamp"].dataType.simpleString() == "timestamp"
    assert [tuple(row) for row in rows] == [
        (1, "Cocos (Keeling) Islands", [-45.5, 120.25], epoch_micros(2020, 8, 28, 3, 52, 47)),
        (2, None, [90.0, -180.0], epoch_micros(2017, 12, 31, 23, 0, 0)),
        (3, "France", None, epoch_micros(2019, 5, 5, 10, 0, 0)),
        (4, "Chad", None, epoch_micros(2019, 5, 5, 10, 0, 0)),
        (5, "Antarctica (the territory South of 60 deg S)", None, None),
    ]


def test_clean_user_joins_names_and_parses_date_joined(spark: SparkSession) -> None:
    users = spark.createDataFrame(
        [
            (1, "Ann", "Lee", 23, "2015-10-20 09:31:03"),
            (2, " Bo ", " Chen ", 17, "2016-02-29T12:00:00Z"),
            (3, "Cy", "", 70, "2017-01-01T00:00:00+05:00"),
            (4, None, "Diaz", None, "garbage"),
            (5, "", None, 40, None),
        ],
        USER_SCHEMA,
    )

    cleaned = clean_user(users)
    rows = (
        cleaned.select("ind", "user_name", "age", F.unix_micros("date_joined").alias("micros"))
        .orderBy("ind")
        .collect()
    )

    assert cleaned.columns == ["ind", "user_name", "age", "date_joined"]
    assert [tuple(row) for row in rows] == [
        (1, "Ann Lee", 23, epoch_micros(2015, 10, 20, 9, 31, 3)),
        (2, "Bo Chen", 17, epoch_micros(2016, 2, 29, 12, 0, 0)),
        (3, "Cy", 70, epoch_micros(2016, 12, 31, 19, 0, 0)),
        (4, "Diaz", None, None),
        (5, None, 40, None),
    ]


# -- rejected records and duplicates ---------------------------------------------------------------


RAW_PIN_LINES = [
    '{"index": 1, "title": "fine", "follower_count": "5k", "category": "art"}',
    '{"index": 2, "title": "trunc',
    "not json at all",
    '{"index": "three", "title": "wrong type"}',
    '{"title": "no id at all", "category": "art"}',
    '{"index": 6, "title": {"nested": true}, "category": "travel"}',
]


def test_parse_json_column_and_split_rejected_give_reasons(spark: SparkSession) -> None:
    lines = spark.createDataFrame(
        [(position, line) for position, line in enumerate(RAW_PIN_LINES)],
        "_position int, data string",
    )

    good, rejected = split_rejected(parse_json_column(lines, "data", PIN_SCHEMA), "pin")

    assert CORRUPT_RECORD not in good.columns
    assert sorted(row["index"] for row in good.collect()) == [1, 6]
    assert rejected.columns == ["source", "reason", "record", "_position"]
    rows = [tuple(row) for row in rejected.orderBy("_position").collect()]
    assert rows[:3] == [
        ("pin", REASON_MALFORMED_JSON, RAW_PIN_LINES[1], 1),
        ("pin", REASON_MALFORMED_JSON, RAW_PIN_LINES[2], 2),
        ("pin", REASON_SCHEMA_MISMATCH, RAW_PIN_LINES[3], 3),
    ]
    source, reason, record, position = rows[3]
    assert (source, reason, position) == ("pin", REASON_MISSING_ID, 4)
    assert '"title":"no id at all"' in record


def test_file_reader_rows_split_the_same_way(spark: SparkSession, tmp_path: Any) -> None:
    landed = tmp_path / "pin.json"
    landed.write_text("\n".join(RAW_PIN_LINES) + "\n", encoding="utf-8")
    frame = spark.read.schema(with_corrupt_record(PIN_SCHEMA)).json(str(landed))

    good, rejected = split_rejected(frame, "pin")

    assert sorted(row["index"] for row in good.collect()) == [1, 6]
    assert sorted(row["reason"] for row in rejected.collect()) == sorted(
        [REASON_MALFORMED_JSON, REASON_MALFORMED_JSON, REASON_SCHEMA_MISMATCH, REASON_MISSING_ID]
    )


def test_geo_and_user_rows_without_ind_are_rejected(spark: SparkSession) -> None:
    geo = spark.createDataFrame(
        [(None, "2020-01-01T00:00:00", 1.0, 2.0, "Peru"), (2, None, None, None, None)], GEO_SCHEMA
    )
    user = spark.createDataFrame([(None, "A", "B", 30, None)], USER_SCHEMA)

    geo_good, geo_rejected = split_rejected(geo, "geo")
    user_good, user_rejected = split_rejected(user, "user")

    assert [row["ind"] for row in geo_good.collect()] == [2]
    assert [(row["source"], row["reason"]) for row in geo_rejected.collect()] == [
        ("geo", REASON_MISSING_ID)
    ]
    assert user_good.count() == 0
    assert [(row["source"], row["reason"]) for row in user_rejected.collect()] == [
        ("user", REASON_MISSING_ID)
    ]


def _bronze_pins(
    spark: SparkSession, rows: list[tuple[dict[str, Any], str, datetime]]
) -> DataFrame:
    schema = (
        with_corrupt_record(PIN_SCHEMA)
        .add("_source_file", "string")
        .add("_ingested_at", "timestamp")
    )
    records = [
        {**row, CORRUPT_RECORD: None, "_source_file": source, "_ingested_at": ingested}
        for row, source, ingested in rows
    ]
    return spark.createDataFrame(records, schema)


def test_duplicates_collapse_to_one_row_per_ind(spark: SparkSession) -> None:
    early = datetime(2024, 1, 1, tzinfo=UTC)
    late = datetime(2024, 1, 2, tzinfo=UTC)
    bronze = _bronze_pins(
        spark,
        [
            (
                pin_row(1, title="old"),
                "s3a://b/topics/p.pin/partition=0/p.pin+0+0000000000.json",
                early,
            ),
            (
                pin_row(1, title="new"),
                "s3a://b/topics/p.pin/partition=0/p.pin+0+0000000100.json",
                late,
            ),
            (
                pin_row(1, title="new"),
                "s3a://b/topics/p.pin/partition=1/p.pin+1+0000000000.json",
                late,
            ),
            (pin_row(2), "s3a://b/topics/p.pin/partition=0/p.pin+0+0000000000.json", early),
            (pin_row(2), "s3a://b/topics/p.pin/partition=0/p.pin+0+0000000000.json", early),
            (pin_row(None), "s3a://b/topics/p.pin/partition=0/p.pin+0+0000000000.json", early),
        ],
    )

    silver, rejected = bronze_to_silver(bronze, "pin")

    rows = silver.orderBy("ind").collect()
    assert silver.columns == SILVER_SCHEMAS["pin"].fieldNames()
    assert [(row["ind"], row["title"]) for row in rows] == [
        (1, "new"),
        (2, "Easy Watercolor Ideas"),
    ]
    assert [row["reason"] for row in rejected.collect()] == [REASON_MISSING_ID]


def test_same_ingestion_time_prefers_the_latest_source_file(spark: SparkSession) -> None:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    bronze = _bronze_pins(
        spark,
        [
            (
                pin_row(5, title="second"),
                "s3a://b/topics/p.pin/partition=0/p.pin+0+0000000010.json",
                at,
            ),
            (
                pin_row(5, title="first"),
                "s3a://b/topics/p.pin/partition=0/p.pin+0+0000000000.json",
                at,
            ),
        ],
    )

    silver, _ = bronze_to_silver(bronze, "pin")

    assert [row["title"] for row in silver.collect()] == ["second"]


# -- one rule for repeated ids (data contract §3.4): the latest arrival wins --------------------


def test_latest_arrival_keeps_the_greatest_position_in_numeric_order(spark: SparkSession) -> None:
    frame = spark.createDataFrame(
        [
            (1, "a", "9"),
            (1, "b", "10"),
            (1, "c", "2"),
            (2, "d", None),
            (2, "e", "0"),
            (3, "f", None),
        ],
        f"ind int, value string, {ARRIVAL_ORDER} string",
    )
    got = {row["ind"]: row["value"] for row in latest_arrival(frame).collect()}
    # "10" > "9" as numbers; a known position beats none; an id seen once keeps its row
    assert got == {1: "b", 2: "e", 3: "f"}


def test_latest_arrival_is_the_same_whatever_the_input_order(spark: SparkSession) -> None:
    rows = [(1, "x", "5"), (1, "y", "5"), (1, "z", "4")]  # x and y tie: one record read twice
    picks = {
        latest_arrival(
            spark.createDataFrame(order, f"ind int, value string, {ARRIVAL_ORDER} string")
        ).first()["value"]  # type: ignore[index]
        for order in (rows, rows[::-1], [rows[1], rows[2], rows[0]])
    }
    assert len(picks) == 1 and picks <= {"x", "y"}


@pytest.mark.parametrize(
    ("new", "old", "later"),
    [
        ("10", "9", True),
        ("9", "10", False),
        ("5", "5", False),  # the same record again (a replay) changes nothing
        ("49590338271490256608559692538361571095921575989136588898", "7", True),
        ("7", None, True),  # a row stored without a position yields to any arrival with one
    ],
)
def test_is_later_arrival(spark: SparkSession, new: str, old: str | None, later: bool) -> None:
    frame = spark.createDataFrame([(new, old)], "new string, old string")
    assert frame.select(is_later_arrival(F.col("new"), F.col("old"))).first()[0] is later  # type: ignore[index]


def test_landed_offset_is_the_object_start_plus_the_line(spark: SparkSession) -> None:
    frame = spark.createDataFrame(
        [
            ("s3a://b/topics/p.pin/partition=2/p.pin+2+0000001500.json", 7),
            ("s3a://b/topics/p.pin/partition=0/p.pin+0+0000000000.json", 0),
            ("s3a://b/topics/p.pin/partition=0/p.pin+0+0000000000.json", None),
            ("s3a://b/elsewhere/hand-made.json", 3),
        ],
        "file string, line bigint",
    )
    got = [row[0] for row in frame.select(landed_offset(F.col("file"), F.col("line"))).collect()]
    assert got == ["1507", "0", "0", None]


def test_later_line_of_one_object_and_later_object_win(spark: SparkSession) -> None:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    first_object = "s3a://b/topics/p.pin/partition=0/p.pin+0+0000000000.json"
    second_object = "s3a://b/topics/p.pin/partition=0/p.pin+0+0000000500.json"
    schema = (
        with_corrupt_record(PIN_SCHEMA)
        .add(SOURCE_FILE, "string")
        .add(SOURCE_LINE, "long")
        .add("_ingested_at", "timestamp")
    )
    bronze = spark.createDataFrame(
        [
            {**row, CORRUPT_RECORD: None, SOURCE_FILE: file, SOURCE_LINE: line, "_ingested_at": at}
            for row, file, line in [
                (pin_row(1, title="posted second"), first_object, 3),
                (pin_row(1, title="posted first"), first_object, 0),
                (pin_row(2, title="offset 499"), first_object, 499),
                (pin_row(2, title="offset 500"), second_object, 0),
            ]
        ],
        schema,
    )
    silver, _ = bronze_to_silver(bronze, "pin")
    assert {row["ind"]: row["title"] for row in silver.collect()} == {
        1: "posted second",
        2: "offset 500",
    }


def test_bronze_numbers_the_lines_of_each_landed_object(spark: SparkSession, tmp_path: Any) -> None:
    objects = {
        "p.pin+0+0000000000.json": [pin_row(n, title=f"line {n}") for n in range(5)],
        "p.pin+0+0000000005.json": [pin_row(n, title=f"line {n}") for n in range(5, 8)],
    }
    for name, rows in objects.items():
        (tmp_path / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
    landed = read_landed(spark, [str(tmp_path / name) for name in objects], PIN_SCHEMA)
    got = {row["index"]: row[SOURCE_LINE] for row in landed.select("index", SOURCE_LINE).collect()}
    assert got == {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 0, 6: 1, 7: 2}
