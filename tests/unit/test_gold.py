"""Data contract §4 queries on small hand-built silver tables, expected rows written out by hand."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from pipeline.lake import QUERY_COLUMNS
from pipeline.transform.gold import (
    QUERIES,
    SilverTables,
    compute_gold,
    q1_top_category_by_country,
    q2_top_category_by_year,
    q3a_top_user_by_country,
    q3b_top_country_by_followers,
    q4_top_category_by_age_group,
    q5_median_followers_by_age_group,
    q6_users_joined_by_year,
    q7_median_followers_by_join_year,
    q8_median_followers_by_age_group_and_join_year,
)
from pipeline.transform.schemas import SILVER_GEO_SCHEMA, SILVER_PIN_SCHEMA, SILVER_USER_SCHEMA

CONTRACT_QUERY_IDS = [
    "q1_top_category_by_country",
    "q2_top_category_by_year",
    "q3a_top_user_by_country",
    "q3b_top_country_by_followers",
    "q4_top_category_by_age_group",
    "q5_median_followers_by_age_group",
    "q6_users_joined_by_year",
    "q7_median_followers_by_join_year",
    "q8_median_followers_by_age_group_and_join_year",
]


def at(
    year: int,
    month: int = 6,
    day: int = 15,
    hour: int = 12,
    minute: int = 0,
    offset_hours: int = 0,
) -> datetime:
    """An aware datetime; mid-year by default, far from any year boundary."""
    return datetime(year, month, day, hour, minute, tzinfo=timezone(timedelta(hours=offset_hours)))


def pin(
    ind: int,
    category: str | None = "art",
    poster_name: str | None = "Someone",
    follower_count: int | None = 10,
) -> dict[str, Any]:
    return {
        "ind": ind,
        "unique_id": f"uid-{ind}",
        "title": None,
        "description": None,
        "follower_count": follower_count,
        "poster_name": poster_name,
        "tag_list": None,
        "is_image_or_video": "image",
        "image_src": None,
        "save_location": None,
        "category": category,
    }


def silver(
    spark: SparkSession,
    pins: list[dict[str, Any]],
    geos: Sequence[tuple[int, str | None, datetime | None]] = (),
    users: Sequence[tuple[int, int | None, datetime | None]] = (),
) -> SilverTables:
    geo_rows = [(ind, country, [0.0, 0.0], when) for ind, country, when in geos]
    user_rows = [(ind, f"user {ind}", age, joined) for ind, age, joined in users]
    return SilverTables(
        pin=spark.createDataFrame(pins, SILVER_PIN_SCHEMA),
        geo=spark.createDataFrame(geo_rows, SILVER_GEO_SCHEMA),
        user=spark.createDataFrame(user_rows, SILVER_USER_SCHEMA),
    )


def rows(frame: DataFrame) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in frame.collect()]


def test_registry_holds_exactly_the_spec_queries_with_their_columns(spark: SparkSession) -> None:
    tables = silver(spark, [pin(1)], [(1, "Peru", at(2019))], [(1, 30, at(2016))])

    results = compute_gold(tables)

    assert list(QUERIES) == CONTRACT_QUERY_IDS
    assert list(results) == CONTRACT_QUERY_IDS
    for query_id, frame in results.items():
        assert tuple(frame.columns) == QUERY_COLUMNS[query_id], query_id


def test_q1_most_popular_category_per_country(spark: SparkSession) -> None:
    tables = silver(
        spark,
        [
            pin(1, "travel"),
            pin(2, "travel"),
            pin(3, "art"),
            pin(4, "art"),  # tie in A → art
            pin(5, None),
            pin(6, None),
            pin(7, None),  # null categories never count
            pin(8, "quotes"),
            pin(9, "beauty"),  # tie in B → beauty
            pin(10, "vehicles"),
            pin(11, "finance"),  # no country
            pin(12, "tattoos"),  # no geo row: the inner join drops it
        ],
        [
            (1, "A", at(2019)),
            (2, "A", at(2019)),
            (3, "A", at(2019)),
            (4, "A", at(2019)),
            (5, "A", at(2019)),
            (6, "A", at(2019)),
            (7, "A", at(2019)),
            (8, "B", at(2019)),
            (9, "B", at(2019)),
            (10, "Cocos (Keeling) Islands", at(2019)),
            (11, None, at(2019)),
        ],
    )

    result = q1_top_category_by_country(tables)

    assert result.columns == ["country", "category", "category_count"]
    assert rows(result) == [
        ("A", "art", 2),
        ("B", "beauty", 1),
        ("Cocos (Keeling) Islands", "vehicles", 1),
    ]


def test_q2_most_popular_category_per_post_year_2018_to_2022(spark: SparkSession) -> None:
    tables = silver(
        spark,
        [
            pin(1, "travel"),  # 2017: outside the range
            pin(2, "travel"),
            pin(3, "art"),  # 2018: tie → art
            pin(4, "finance"),  # 2018-12-31 23:30 at -05:00 is 2019 in UTC
            pin(5, "quotes"),
            pin(6, "quotes"),
            pin(7, "art"),
            pin(8, None),
            pin(9, None),
            pin(10, None),  # 2020
            pin(11, "vehicles"),  # 2022
            pin(12, "beauty"),  # 2023: outside
            pin(13, "beauty"),  # no timestamp
        ],
        [
            (1, "A", at(2017)),
            (2, "A", at(2018)),
            (3, "B", at(2018)),
            (4, "A", at(2018, 12, 31, 23, 30, offset_hours=-5)),
            (5, "A", at(2020)),
            (6, "A", at(2020)),
            (7, "A", at(2020)),
            (8, "A", at(2020)),
            (9, "A", at(2020)),
            (10, "A", at(2020)),
            (11, "A", at(2022, 12, 31, 23, 59)),
            (12, "A", at(2023, 1, 1, 0, 30, offset_hours=0)),
            (13, "A", None),
        ],
    )

    result = q2_top_category_by_year(tables)

    assert result.columns == ["post_year", "category", "category_count"]
    assert rows(result) == [
        (2018, "art", 1),
        (2019, "finance", 1),
        (2020, "quotes", 2),
        (2022, "vehicles", 1),
    ]


def test_q2_years_are_utc_whatever_the_session_zone(spark: SparkSession) -> None:
    tables = silver(
        spark,
        [pin(1, "finance"), pin(2, "art")],
        [(1, "A", at(2019, 1, 1, 3, 0)), (2, "A", at(2022, 12, 31, 22, 0))],
    )
    previous = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    try:
        result = rows(q2_top_category_by_year(tables))
    finally:
        spark.conf.set("spark.sql.session.timeZone", previous or "UTC")

    assert result == [(2019, "finance", 1), (2022, "art", 1)]


def q3_tables(spark: SparkSession) -> SilverTables:
    return silver(
        spark,
        [
            pin(1, poster_name="Zed", follower_count=500),
            pin(2, poster_name="Amy", follower_count=500),  # tie with Zed in A → Amy
            pin(3, poster_name="Bob", follower_count=100),
            pin(4, poster_name=None, follower_count=9_999),  # no name: does not count
            pin(5, poster_name="Cat", follower_count=None),  # no count: does not count
            pin(6, poster_name="Dan", follower_count=50),
            pin(7, poster_name="Dan", follower_count=700),  # Dan's largest in B
            pin(8, poster_name="Eve", follower_count=600),
            pin(9, poster_name="Fay", follower_count=700),  # ties Dan's 700 → country B first
            pin(10, poster_name="Gus", follower_count=5_000),  # no country
        ],
        [
            (1, "A", at(2019)),
            (2, "A", at(2019)),
            (3, "A", at(2019)),
            (4, "A", at(2019)),
            (5, "A", at(2019)),
            (6, "B", at(2019)),
            (7, "B", at(2019)),
            (8, "B", at(2019)),
            (9, "C", at(2019)),
            (10, None, at(2019)),
        ],
    )


def test_q3a_user_with_most_followers_per_country(spark: SparkSession) -> None:
    result = q3a_top_user_by_country(q3_tables(spark))

    assert result.columns == ["country", "poster_name", "follower_count"]
    assert rows(result) == [("A", "Amy", 500), ("B", "Dan", 700), ("C", "Fay", 700)]


def test_q3b_country_of_the_user_with_most_followers(spark: SparkSession) -> None:
    result = q3b_top_country_by_followers(q3_tables(spark))

    assert result.columns == ["country", "follower_count"]
    assert rows(result) == [("B", 700)]


def test_q3b_is_empty_without_usable_pins(spark: SparkSession) -> None:
    tables = silver(spark, [pin(1, poster_name=None)], [(1, "A", at(2019))])

    assert rows(q3b_top_country_by_followers(tables)) == []


AGE_USERS = [
    (1, 16, at(2016)),
    (2, 17, at(2016)),
    (3, 17, at(2016)),  # under 18: no group
    (4, 18, at(2016)),
    (5, 24, at(2016)),
    (6, 20, at(2016)),
    (7, 25, at(2016)),
    (8, 35, at(2016)),
    (9, 36, at(2016)),
    (10, 50, at(2016)),
    (11, 40, at(2016)),
    (12, 41, at(2016)),
    (13, 42, at(2016)),
    (14, 51, at(2016)),
    (15, None, at(2016)),
]


def test_q4_most_popular_category_per_age_group(spark: SparkSession) -> None:
    tables = silver(
        spark,
        [
            pin(1, "tattoos"),
            pin(2, "tattoos"),
            pin(3, "tattoos"),
            pin(4, "travel"),
            pin(5, "travel"),
            pin(6, "beauty"),
            pin(7, "quotes"),
            pin(8, "art"),  # tie → art
            pin(9, "diy-and-crafts"),
            pin(10, "diy-and-crafts"),
            pin(11, None),
            pin(12, None),
            pin(13, None),
            pin(14, "vehicles"),
            pin(15, "tattoos"),
        ],
        users=AGE_USERS,
    )

    result = q4_top_category_by_age_group(tables)

    assert result.columns == ["age_group", "category", "category_count"]
    assert rows(result) == [
        ("+50", "vehicles", 1),
        ("18-24", "travel", 2),
        ("25-35", "art", 1),
        ("36-50", "diy-and-crafts", 2),
    ]


def test_q5_median_follower_count_per_age_group(spark: SparkSession) -> None:
    tables = silver(
        spark,
        [
            pin(1, follower_count=999_999),
            pin(2, follower_count=999_999),
            pin(3, follower_count=999_999),  # under 18
            pin(4, follower_count=10),
            pin(5, follower_count=40),
            pin(6, follower_count=20),
            pin(16, follower_count=30),
            pin(17, follower_count=None),  # 18-24: 10,20,30,40 → 25
            pin(7, follower_count=1),
            pin(8, follower_count=100),
            pin(18, follower_count=5),
            pin(9, follower_count=7),
            pin(10, follower_count=8),
            pin(14, follower_count=1_000),
        ],
        users=[*AGE_USERS, (16, 22, at(2016)), (17, 19, at(2016)), (18, 30, at(2016))],
    )

    result = q5_median_followers_by_age_group(tables)

    assert result.columns == ["age_group", "median_follower_count"]
    assert result.schema["median_follower_count"].dataType.simpleString() == "double"
    assert rows(result) == [
        ("+50", 1000.0),
        ("18-24", 25.0),
        ("25-35", 5.0),
        ("36-50", 7.5),
    ]


def test_q6_users_joined_per_year_2015_to_2020(spark: SparkSession) -> None:
    tables = silver(
        spark,
        [],
        users=[
            (1, 30, at(2014)),
            (2, 30, at(2015)),
            (3, 17, at(2015, 1, 1, 0, 0)),
            (4, 30, at(2015, 12, 31, 22, 0, offset_hours=-5)),  # 2016 in UTC
            (5, 30, at(2017)),
            (6, 30, at(2020, 12, 31, 23, 59)),
            (7, 30, at(2021)),
            (8, 30, None),
        ],
    )

    result = q6_users_joined_by_year(tables)

    assert result.columns == ["post_year", "number_users_joined"]
    assert rows(result) == [(2015, 2), (2016, 1), (2017, 1), (2020, 1)]


def test_q7_median_follower_count_by_join_year(spark: SparkSession) -> None:
    tables = silver(
        spark,
        [
            pin(1, follower_count=10),
            pin(2, follower_count=30),  # 2015 → 20
            pin(3, follower_count=7),
            pin(4, follower_count=None),  # 2016 → 7
            pin(5, follower_count=100),  # 2014: outside
            pin(6, follower_count=5),  # 2021: outside
            pin(7, follower_count=4),
            pin(8, follower_count=1),
            pin(9, follower_count=2),  # 2020
        ],
        users=[
            (1, 30, at(2015)),
            (2, 15, at(2015)),
            (3, 30, at(2016)),
            (4, 30, at(2016)),
            (5, 30, at(2014)),
            (6, 30, at(2021)),
            (7, 30, at(2020)),
            (8, 30, at(2020)),
            (9, 30, at(2020)),
        ],
    )

    result = q7_median_followers_by_join_year(tables)

    assert result.columns == ["post_year", "median_follower_count"]
    assert rows(result) == [(2015, 20.0), (2016, 7.0), (2020, 2.0)]


def test_q8_median_follower_count_by_age_group_and_join_year(spark: SparkSession) -> None:
    tables = silver(
        spark,
        [
            pin(1, follower_count=10),
            pin(2, follower_count=20),  # 18-24, 2015 → 15
            pin(3, follower_count=3),  # 18-24, 2016
            pin(4, follower_count=100),  # +50, 2015
            pin(5, follower_count=3),
            pin(6, follower_count=1),
            pin(7, follower_count=2),
            pin(8, follower_count=5_000),  # 17, 2015: no group
            pin(9, follower_count=9),  # 36-50, 2021: outside
            pin(10, follower_count=None),  # 36-50, 2016: no count
        ],
        users=[
            (1, 18, at(2015)),
            (2, 24, at(2015)),
            (3, 21, at(2016)),
            (4, 70, at(2015)),
            (5, 25, at(2020)),
            (6, 30, at(2020)),
            (7, 35, at(2020)),
            (8, 17, at(2015)),
            (9, 40, at(2021)),
            (10, 40, at(2016)),
        ],
    )

    result = q8_median_followers_by_age_group_and_join_year(tables)

    assert result.columns == ["age_group", "post_year", "median_follower_count"]
    assert rows(result) == [
        ("+50", 2015, 100.0),
        ("18-24", 2015, 15.0),
        ("18-24", 2016, 3.0),
        ("25-35", 2020, 2.0),
    ]


@pytest.mark.parametrize("query_id", CONTRACT_QUERY_IDS)
def test_every_query_is_empty_on_empty_tables(spark: SparkSession, query_id: str) -> None:
    tables = silver(spark, [])

    assert rows(QUERIES[query_id](tables)) == []
