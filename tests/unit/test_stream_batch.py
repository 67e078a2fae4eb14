"""One micro-batch of Kinesis rows through the streaming job's pure transformation: parse with the
explicit schema, reject what cannot be read, clean as data contract §3 says, keep the latest of each
ind. Expected values below are worked out by hand from the data contract."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from pipeline.lake import StreamPaths
from pipeline.stream.job import (
    REJECTED_SCHEMA,
    ensure_tables,
    kinesis_options,
    merge_rows,
    split_batch,
    stream_table_schema,
)
from pipeline.stream.kinesis_source import KINESIS_SCHEMA
from pipeline.transform.schemas import SILVER_SCHEMAS
from pipeline.transform.silver import (
    ARRIVAL_ORDER,
    REASON_MALFORMED_JSON,
    REASON_MISSING_ID,
    REASON_SCHEMA_MISMATCH,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def kinesis_rows(spark: SparkSession, stream: str, payloads: list[bytes]) -> DataFrame:
    rows = [
        ("pk", payload, stream, "shardId-000000000000", str(100 + n), T0 + timedelta(seconds=n))
        for n, payload in enumerate(payloads)
    ]
    return spark.createDataFrame(rows, KINESIS_SCHEMA)


def as_json(row: dict[str, Any]) -> bytes:
    return json.dumps(row).encode()


def pin(index: int, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "index": index,
        "unique_id": f"u-{index}",
        "title": "A title",
        "description": "Some text",
        "poster_name": "Ann",
        "follower_count": "437",
        "tag_list": "a,b",
        "is_image_or_video": "image",
        "image_src": "https://example.org/x.jpg",
        "downloaded": 1,
        "save_location": "Local save in /data/art",
        "category": "art",
    }
    return {**row, **fields}


def test_pin_rows_are_cleaned_and_latest_arrival_wins(spark: SparkSession) -> None:
    payloads = [
        as_json(pin(1, title="an earlier duplicate", follower_count="1")),
        as_json(pin(2, follower_count=" 1.5M ", description="   ", poster_name="User Info Error")),
        as_json(pin(1, follower_count="15k", title="No Title Data Available")),
        as_json(
            pin(
                3,
                follower_count="User Info Error",
                tag_list="N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e",
                image_src="Image src error.",
                save_location="Local save in /data/travel",
            )
        ),
    ]
    rows, rejected = split_batch(kinesis_rows(spark, "streaming-t-pin", payloads), "pin")
    assert rows.columns == [*SILVER_SCHEMAS["pin"].fieldNames(), ARRIVAL_ORDER]
    assert rows.columns == stream_table_schema("pin").fieldNames()
    assert rejected.count() == 0
    got = {row["ind"]: row.asDict() for row in rows.collect()}
    assert sorted(got) == [1, 2, 3]
    assert got[1]["title"] is None  # placeholder; and the later arrival, not the earlier one
    assert got[1][ARRIVAL_ORDER] == "102"  # its sequence number
    assert got[1]["follower_count"] == 15_000
    assert got[1]["save_location"] == "/data/art"
    assert got[2]["follower_count"] == 1_500_000
    assert got[2]["description"] is None and got[2]["poster_name"] is None
    assert got[3]["follower_count"] is None
    assert got[3]["tag_list"] is None and got[3]["image_src"] is None
    assert got[3]["save_location"] == "/data/travel"


def test_greatest_sequence_number_wins_in_numeric_order(spark: SparkSession) -> None:
    """Sequence numbers compare as numbers ("1000" after "999"), and they, not the approximate
    arrival time, decide: two arrivals within one clock tick keep their shard order."""
    rows = [
        ("7", as_json(pin(7, category="later")), "streaming-t-pin", "shardId-0", "1000", T0),
        ("7", as_json(pin(7, category="earlier")), "streaming-t-pin", "shardId-0", "999", T0),
        ("8", as_json(pin(8, category="second")), "streaming-t-pin", "shardId-1", "20", T0),
        ("8", as_json(pin(8, category="first")), "streaming-t-pin", "shardId-1", "3", T0),
    ]
    batch = spark.createDataFrame(rows, KINESIS_SCHEMA)
    got, _ = split_batch(batch, "pin")
    assert sorted((row["ind"], row["category"], row[ARRIVAL_ORDER]) for row in got.collect()) == [
        (7, "later", "1000"),
        (8, "second", "20"),
    ]


def test_geo_and_user_rows_are_cleaned(spark: SparkSession) -> None:
    geo = [
        as_json(
            {
                "ind": 7,
                "timestamp": "2020-08-28T03:52:47+02:00",
                "latitude": -12.5,
                "longitude": 45.25,
                "country": "Cocos (Keeling) Islands",
            }
        ),
        as_json(
            {
                "ind": 8,
                "timestamp": "2019-01-01 10:00:00.250",
                "latitude": 95.0,
                "longitude": 0.0,
                "country": "Peru",
            }
        ),
    ]
    rows, _ = split_batch(kinesis_rows(spark, "streaming-t-geo", geo), "geo")
    assert rows.columns == ["ind", "country", "coordinates", "timestamp", ARRIVAL_ORDER]
    got = {row["ind"]: row for row in rows.collect()}
    assert got[7]["coordinates"] == [-12.5, 45.25]
    assert got[7]["country"] == "Cocos (Keeling) Islands"
    assert got[7]["timestamp"] == datetime(2020, 8, 28, 1, 52, 47)  # UTC session time zone
    assert got[8]["coordinates"] is None  # latitude out of range
    assert got[8]["timestamp"] == datetime(2019, 1, 1, 10, 0, 0, 250_000)

    users = [
        as_json(
            {
                "ind": 7,
                "first_name": "Ann",
                "last_name": "Lee",
                "age": 33,
                "date_joined": "2016-02-03T04:05:06Z",
            }
        ),
    ]
    rows, _ = split_batch(kinesis_rows(spark, "streaming-t-user", users), "user")
    assert [row.asDict() for row in rows.collect()] == [
        {
            "ind": 7,
            "user_name": "Ann Lee",
            "age": 33,
            "date_joined": datetime(2016, 2, 3, 4, 5, 6),
            ARRIVAL_ORDER: "100",
        }
    ]


def test_unreadable_records_are_rejected_with_reason_and_raw_data(spark: SparkSession) -> None:
    payloads = [
        b'{"ind": 1, "first_name": "br',  # cut short
        b"[1, 2, 3]",  # JSON, but not an object
        as_json({"first_name": "No", "last_name": "Id"}),
        as_json({"ind": "seven", "first_name": "Q"}),
        b"\xff\xfe not utf-8",
        as_json(
            {
                "ind": 2,
                "first_name": "Good",
                "last_name": "Row",
                "age": 40,
                "date_joined": "2017-01-01T00:00:00",
            }
        ),
    ]
    rows, rejected = split_batch(kinesis_rows(spark, "streaming-t-user", payloads), "user")
    assert [row["ind"] for row in rows.collect()] == [2]
    assert rejected.schema.fieldNames() == REJECTED_SCHEMA.fieldNames()
    got = {row["_sequence_number"]: row for row in rejected.collect()}
    assert {seq: row["reason"] for seq, row in got.items()} == {
        "100": REASON_MALFORMED_JSON,
        "101": REASON_MALFORMED_JSON,
        "102": REASON_MISSING_ID,
        "103": REASON_SCHEMA_MISMATCH,
        "104": REASON_MALFORMED_JSON,
    }
    assert got["100"]["record"] == '{"ind": 1, "first_name": "br'
    assert got["101"]["record"] == "[1, 2, 3]"
    assert json.loads(got["102"]["record"]) == {"first_name": "No", "last_name": "Id"}
    assert all(row["source"] == "user" for row in got.values())
    assert all(row["_stream"] == "streaming-t-user" for row in got.values())
    assert got["100"]["_arrival_time"] == datetime(2024, 5, 1, 12, 0, 0)


def test_layout_and_source_options_follow_config() -> None:
    from pipeline.config import Settings

    paths = StreamPaths("s3a://lake/root/", "abc")
    assert paths.table("pin") == "s3a://lake/root/stream/abc_pin_table"
    assert paths.rejected == "s3a://lake/root/stream/abc_rejected"
    checkpoints = {paths.checkpoint(table) for table in ("pin", "geo", "user")}
    assert len(checkpoints) == 3  # one checkpoint per query
    assert paths.checkpoint("geo") == "s3a://lake/root/_checkpoints/stream/abc_geo_table"

    local = Settings(
        s3_endpoint_url="http://127.0.0.1:4566",
        kinesis_endpoint_url="http://127.0.0.1:4568",
        aws_region="eu-west-1",
    )
    options = kinesis_options(local, "streaming-abc-pin", "trim_horizon")
    assert options["streamName"] == "streaming-abc-pin"
    assert options["endpoint"] == "http://127.0.0.1:4568"  # Kinesis's own, not S3's
    assert options["region"] == "eu-west-1"
    assert options["initialPosition"] == "trim_horizon"
    # on AWS/Databricks: no endpoint override and no keys, the platform's credentials apply
    cloud = Settings(aws_endpoint_url=None, aws_access_key_id=None, aws_secret_access_key=None)
    assert set(kinesis_options(cloud, "s", "latest")) == {"streamName", "initialPosition", "region"}


def test_merge_updates_a_held_row_only_for_a_later_arrival(
    spark: SparkSession, tmp_path: Any
) -> None:
    paths = StreamPaths(str(tmp_path), "t")
    ensure_tables(spark, paths)
    target = paths.table("pin")

    def merge(*arrivals: tuple[int, str, str]) -> dict[int, tuple[str, str]]:
        rows = [
            ("k", as_json(pin(ind, category=category)), "s", "shardId-0", sequence, T0)
            for ind, category, sequence in arrivals
        ]
        batch, _ = split_batch(spark.createDataFrame(rows, KINESIS_SCHEMA), "pin")
        merge_rows(spark, batch, target)
        table = spark.read.format("delta").load(target)
        assert table.columns == stream_table_schema("pin").fieldNames()
        return {row["ind"]: (row["category"], row[ARRIVAL_ORDER]) for row in table.collect()}

    assert merge((1, "v1", "10"), (2, "w1", "11")) == {1: ("v1", "10"), 2: ("w1", "11")}
    # a later arrival replaces the row; a replay of an older one (a redelivered batch) does not
    assert merge((1, "v2", "100"), (2, "w0", "9")) == {1: ("v2", "100"), 2: ("w1", "11")}
    assert merge((1, "v2", "100")) == {1: ("v2", "100"), 2: ("w1", "11")}
