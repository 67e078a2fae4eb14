"""The lake's layout, shared by every layer: where each table lives under a lake root (batch
layers, the stream job's tables and checkpoints, the quality checks' history, the DAG's reports),
the gold tables' columns, and whether a table exists. Pure paths and names: no Spark at import
time. Where the S3 sink lands records (the landing zone) is `pipeline.landing`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class LakePaths:
    """Where each layer lives under one lake root (a folder, `s3a://` or `s3://` URI)."""

    root: str

    def _join(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def bronze(self, table: str) -> str:
        return self._join("bronze", table)

    def silver(self, table: str) -> str:
        return self._join("silver", table)

    @property
    def rejected(self) -> str:
        return self._join("silver", "rejected")

    def gold(self, query_id: str) -> str:
        return self._join("gold", query_id)

    def ingested(self, table: str) -> str:
        """The manifest of landed object versions already in bronze (`transform.bronze`)."""
        return self._join("ingested", table)

    def staged_gold(self, query_id: str) -> str:
        """Where the DAG's batch job writes gold for the checks before it is published."""
        return self._join("staging", "gold", query_id)

    @property
    def quality_checks(self) -> str:
        """The Delta table the quality job appends each run's check results to."""
        return self._join("quality", "checks")

    def report(self, run_date: date) -> str:
        """`<lake>/reports/<run date>/index.html`: where the DAG writes a run's report."""
        return self._join("reports", run_date.isoformat(), "index.html")


@dataclass(frozen=True)
class StreamPaths:
    """Where the stream tables and their checkpoints live under one lake root."""

    root: str
    prefix: str

    def _join(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def table_name(self, table: str) -> str:
        return f"{self.prefix}_{table}_table"

    def table(self, table: str) -> str:
        return self._join("stream", self.table_name(table))

    @property
    def rejected_name(self) -> str:
        return f"{self.prefix}_rejected"

    @property
    def rejected(self) -> str:
        return self._join("stream", self.rejected_name)

    def checkpoint(self, table: str) -> str:
        return self._join("_checkpoints", "stream", self.table_name(table))


QUERY_COLUMNS: dict[str, tuple[str, ...]] = {
    "q1_top_category_by_country": ("country", "category", "category_count"),
    "q2_top_category_by_year": ("post_year", "category", "category_count"),
    "q3a_top_user_by_country": ("country", "poster_name", "follower_count"),
    "q3b_top_country_by_followers": ("country", "follower_count"),
    "q4_top_category_by_age_group": ("age_group", "category", "category_count"),
    "q5_median_followers_by_age_group": ("age_group", "median_follower_count"),
    "q6_users_joined_by_year": ("post_year", "number_users_joined"),
    "q7_median_followers_by_join_year": ("post_year", "median_follower_count"),
    "q8_median_followers_by_age_group_and_join_year": (
        "age_group",
        "post_year",
        "median_follower_count",
    ),
}


def sort_columns(query_id: str) -> tuple[str, ...]:
    """The leading columns a result is sorted by (all but the last; q3b has one row)."""
    return QUERY_COLUMNS[query_id][:-1]


def is_delta_table(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, path))
