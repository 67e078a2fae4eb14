"""The nine analytics of data contract §4 as pure functions of the three silver tables.

Each query returns exactly the data contract columns, sorted by its leading columns (every column
but the last). Tops are decided by the highest count or follower count; ties go to the
alphabetically first name. Years are UTC calendar years, whatever the session time zone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

AGE_GROUPS: tuple[str, ...] = ("18-24", "25-35", "36-50", "+50")
POST_YEARS = (2018, 2022)  # q2, from geo.timestamp
JOIN_YEARS = (2015, 2020)  # q6-q8, from user.date_joined


class SilverTables(NamedTuple):
    pin: DataFrame
    geo: DataFrame
    user: DataFrame


def age_group(age: Column) -> Column:
    """`18-24`, `25-35`, `36-50`, `+50`; null (no group) under 18 or unknown."""
    return (
        F.when(age.between(18, 24), F.lit("18-24"))
        .when(age.between(25, 35), F.lit("25-35"))
        .when(age.between(36, 50), F.lit("36-50"))
        .when(age > 50, F.lit("+50"))
    )


def utc_year(timestamp: Column) -> Column:
    """Calendar year of an instant in UTC (`year()` alone would use the session time zone)."""
    return F.year(F.to_utc_timestamp(timestamp, F.current_timezone()))


def _top_per_group(df: DataFrame, group_by: Sequence[str], score: str, name: str) -> DataFrame:
    """The row with the highest `score` in each group; ties go to the smallest `name`."""
    window = Window.partitionBy(*group_by).orderBy(F.col(score).desc(), F.col(name).asc())
    return df.withColumn("_rank", F.row_number().over(window)).where("_rank = 1").drop("_rank")


def _pins_with_geo(silver: SilverTables) -> DataFrame:
    return silver.pin.join(silver.geo, "ind")


def _pins_with_user(silver: SilverTables) -> DataFrame:
    return silver.pin.join(silver.user, "ind")


def _in_years(year: Column, years: tuple[int, int]) -> Column:
    return year.between(*years)


def _median_follower_count(df: DataFrame, group_by: Sequence[str]) -> DataFrame:
    return (
        df.where(F.col("follower_count").isNotNull())
        .groupBy(*group_by)
        .agg(F.median("follower_count").cast("double").alias("median_follower_count"))
        .orderBy(*group_by)
    )


def q1_top_category_by_country(silver: SilverTables) -> DataFrame:
    counts = (
        _pins_with_geo(silver)
        .where(F.col("category").isNotNull() & F.col("country").isNotNull())
        .groupBy("country", "category")
        .agg(F.count(F.lit(1)).alias("category_count"))
    )
    return (
        _top_per_group(counts, ["country"], "category_count", "category")
        .select("country", "category", "category_count")
        .orderBy("country")
    )


def q2_top_category_by_year(silver: SilverTables) -> DataFrame:
    counts = (
        _pins_with_geo(silver)
        .withColumn("post_year", utc_year(F.col("timestamp")))
        .where(F.col("category").isNotNull() & _in_years(F.col("post_year"), POST_YEARS))
        .groupBy("post_year", "category")
        .agg(F.count(F.lit(1)).alias("category_count"))
    )
    return (
        _top_per_group(counts, ["post_year"], "category_count", "category")
        .select("post_year", "category", "category_count")
        .orderBy("post_year")
    )


def _largest_follower_count_per_poster_and_country(silver: SilverTables) -> DataFrame:
    """Each poster's largest follower count in each country (data contract §4, q3a/q3b)."""
    return (
        _pins_with_geo(silver)
        .where(
            F.col("poster_name").isNotNull()
            & F.col("follower_count").isNotNull()
            & F.col("country").isNotNull()
        )
        .groupBy("country", "poster_name")
        .agg(F.max("follower_count").alias("follower_count"))
    )


def q3a_top_user_by_country(silver: SilverTables) -> DataFrame:
    per_poster = _largest_follower_count_per_poster_and_country(silver)
    return (
        _top_per_group(per_poster, ["country"], "follower_count", "poster_name")
        .select("country", "poster_name", "follower_count")
        .orderBy("country")
    )


def q3b_top_country_by_followers(silver: SilverTables) -> DataFrame:
    """One row: the country of the poster with the most followers; ties → first country name."""
    per_poster = _largest_follower_count_per_poster_and_country(silver)
    return (
        per_poster.orderBy(F.col("follower_count").desc(), F.col("country").asc())
        .limit(1)
        .select("country", "follower_count")
    )


def q4_top_category_by_age_group(silver: SilverTables) -> DataFrame:
    counts = (
        _pins_with_user(silver)
        .withColumn("age_group", age_group(F.col("age")))
        .where(F.col("age_group").isNotNull() & F.col("category").isNotNull())
        .groupBy("age_group", "category")
        .agg(F.count(F.lit(1)).alias("category_count"))
    )
    return (
        _top_per_group(counts, ["age_group"], "category_count", "category")
        .select("age_group", "category", "category_count")
        .orderBy("age_group")
    )


def q5_median_followers_by_age_group(silver: SilverTables) -> DataFrame:
    with_group = _pins_with_user(silver).withColumn("age_group", age_group(F.col("age")))
    return _median_follower_count(with_group.where(F.col("age_group").isNotNull()), ["age_group"])


def q6_users_joined_by_year(silver: SilverTables) -> DataFrame:
    """Users (one silver user row per `ind`) by the UTC year they joined, 2015-2020."""
    return (
        silver.user.withColumn("post_year", utc_year(F.col("date_joined")))
        .where(_in_years(F.col("post_year"), JOIN_YEARS))
        .groupBy("post_year")
        .agg(F.count(F.lit(1)).alias("number_users_joined"))
        .orderBy("post_year")
    )


def q7_median_followers_by_join_year(silver: SilverTables) -> DataFrame:
    joined = _pins_with_user(silver).withColumn("post_year", utc_year(F.col("date_joined")))
    return _median_follower_count(
        joined.where(_in_years(F.col("post_year"), JOIN_YEARS)), ["post_year"]
    )


def q8_median_followers_by_age_group_and_join_year(silver: SilverTables) -> DataFrame:
    joined = (
        _pins_with_user(silver)
        .withColumn("age_group", age_group(F.col("age")))
        .withColumn("post_year", utc_year(F.col("date_joined")))
    )
    usable = F.col("age_group").isNotNull() & _in_years(F.col("post_year"), JOIN_YEARS)
    return _median_follower_count(joined.where(usable), ["age_group", "post_year"])


GoldQuery = Callable[[SilverTables], DataFrame]

QUERIES: dict[str, GoldQuery] = {
    "q1_top_category_by_country": q1_top_category_by_country,
    "q2_top_category_by_year": q2_top_category_by_year,
    "q3a_top_user_by_country": q3a_top_user_by_country,
    "q3b_top_country_by_followers": q3b_top_country_by_followers,
    "q4_top_category_by_age_group": q4_top_category_by_age_group,
    "q5_median_followers_by_age_group": q5_median_followers_by_age_group,
    "q6_users_joined_by_year": q6_users_joined_by_year,
    "q7_median_followers_by_join_year": q7_median_followers_by_join_year,
    "q8_median_followers_by_age_group_and_join_year": (
        q8_median_followers_by_age_group_and_join_year
    ),
}


def compute_gold(silver: SilverTables) -> dict[str, DataFrame]:
    """Every query's result, by query id."""
    return {query_id: query(silver) for query_id, query in QUERIES.items()}
