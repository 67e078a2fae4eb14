"""The streaming job starts a query again, on its checkpoint, after a transient failure (a Python
worker that missed Spark's connect-back timeout on a loaded machine); any other failure still
stops the job. Real Spark queries over the `rate` source, failing from their foreachBatch."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from pipeline.stream.job import Heartbeat, ProgressListener, StreamJob

TRANSIENT = "Python worker failed to connect back."


def failing_query(spark: SparkSession, checkpoint: Path, failures: list[str]) -> StreamingQuery:
    """A query whose next micro-batch raises `failures.pop(0)` while any are left."""

    def write(batch: DataFrame, batch_id: int) -> None:
        if failures:
            raise RuntimeError(failures.pop(0))

    return (
        spark.readStream.format("rate")
        .option("rowsPerSecond", 5)
        .load()
        .writeStream.queryName("restart_test")
        .foreachBatch(write)
        .option("checkpointLocation", str(checkpoint))
        .trigger(processingTime="0.2 seconds")
        .start()
    )


def watch_until_failed_or_batch(job: StreamJob, table: str, batch_id: int) -> None:
    """Check the job as its watch loop does until the query's failure is raised or its current
    run has completed micro-batch `batch_id` (ids go on across runs of one checkpoint)."""
    deadline = time.monotonic() + 600
    while True:
        job._check_alive()
        progress = job.queries[table].lastProgress
        if progress is not None and int(progress["batchId"]) >= batch_id:
            return
        assert time.monotonic() < deadline, "the query made no progress"
        time.sleep(0.2)


def make_job(spark: SparkSession, checkpoint: Path, failures: list[str]) -> StreamJob:
    listener = ProgressListener()
    spark.streams.addListener(listener)
    return StreamJob(
        {"pin": failing_query(spark, checkpoint, failures)},
        listener,
        Heartbeat(None),
        threading.Event(),
        restart=lambda _table: failing_query(spark, checkpoint, failures),
    )


def test_a_transient_failure_starts_the_query_again(spark: SparkSession, tmp_path: Path) -> None:
    failures = [TRANSIENT, TRANSIENT]
    job = make_job(spark, tmp_path / "checkpoint", failures)
    first_run = job.names["pin"]["run_id"]
    try:
        watch_until_failed_or_batch(job, "pin", batch_id=2)
    finally:
        job.stop()
        spark.streams.removeListener(job.listener)
    # both failures were raised, and the query still ran on: it was started again each time
    assert failures == []
    # the same query (its checkpoint's id) in a new run
    assert job.names["pin"]["run_id"] != first_run
    assert job.queries["pin"].id == job.names["pin"]["id"]


def test_any_other_failure_stops_the_job(spark: SparkSession, tmp_path: Path) -> None:
    job = make_job(spark, tmp_path / "checkpoint", ["the table is gone"])
    try:
        with pytest.raises(RuntimeError, match=r"(?s)stream query pin failed: .*the table is gone"):
            watch_until_failed_or_batch(job, "pin", batch_id=2)
    finally:
        job.stop()
        spark.streams.removeListener(job.listener)
    assert job.restarts["pin"] == 0
