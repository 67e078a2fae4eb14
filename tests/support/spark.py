"""The tests' Spark session: a pytest process has one JVM, so every tier shares one session."""

from __future__ import annotations

from pyspark.sql import SparkSession

from pipeline.config import Settings
from pipeline.spark_session import get_spark, s3a_options


def shared_session(settings: Settings) -> SparkSession:
    """A small local session (Delta enabled) reading the lake of `settings`: local folders, or
    S3 through S3A at the settings' endpoint."""
    settings = settings.model_copy(
        update={"spark_shuffle_partitions": 1, "spark_driver_memory": "1g"}
    )
    session = get_spark("pinpipe-tests", settings)
    session.sparkContext.setLogLevel("ERROR")
    # Small inputs: adaptive re-planning only adds overhead here.
    session.conf.set("spark.sql.adaptive.enabled", "false")
    return on_lake_of(session, settings)


def on_lake_of(session: SparkSession, settings: Settings) -> SparkSession:
    """Point the session's S3A at the S3 endpoint of `settings`: a session created earlier in
    this process (by code under test, with other settings) keeps the endpoint it started with."""
    hadoop = session.sparkContext._jsc.hadoopConfiguration()
    for key, value in s3a_options(settings).items():
        hadoop.set(key.removeprefix("spark.hadoop."), value)
        session.conf.set(key, value)
    return session
