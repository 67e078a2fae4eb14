"""One small local SparkSession (Delta-enabled) shared by every unit test of the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pyspark.sql import SparkSession

from pipeline.config import get_settings
from pipeline.spark_session import get_spark


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    settings = get_settings().model_copy(
        update={"spark_shuffle_partitions": 1, "spark_driver_memory": "1g"}
    )
    session = get_spark("pinpipe-unit-tests", settings)
    session.sparkContext.setLogLevel("ERROR")
    # Small inputs: adaptive re-planning only adds overhead here.
    session.conf.set("spark.sql.adaptive.enabled", "false")
    yield session
    # Close the py4j connections while pytest still owns the log streams.
    session.stop()
