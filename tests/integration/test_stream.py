"""The streaming job end to end: rows posted through the ingestion API's Kinesis endpoints, the
job (`pinpipe stream`, a real subprocess with its own Spark driver) cleaning them into Delta
tables on the stack's S3 server, read back with Spark.

- N rows per table, with duplicates within and across micro-batches → exactly N rows per table,
  cleaned as data contract §3 says; malformed records (put straight into Kinesis: the API refuses
  them) → the rejected table, and the rows posted after them still arrive.
- The job SIGKILLed mid-stream and started again → still exactly N, no duplicates, and the
  restart resumed from its checkpoints rather than re-reading the streams.

Each scenario has its own lake root (so its own tables and checkpoints) and its own range of
ids; the streams are the test stack's, shared with other tests, so assertions look at our ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pyspark.sql import SparkSession

from pipeline.config import Settings
from pipeline.stream.job import TABLES
from tests.support.stream_job import JOB_START_TIMEOUT_S, StreamJobProcess, new_job
from tests.support.stream_scenario import (
    ALL_IDS,
    FIRST_IDS,
    KILL_IDS,
    LATER_IDS,
    KeepPosting,
    TableReader,
    assert_columns_are_the_contracts,
    assert_each_table_holds_the_ids_once,
    assert_malformed_records_rejected,
    assert_rows_cleaned,
    post_rows,
    put_malformed,
    records_in_streams,
    stream_tables,
)

# Generous bounds: a Spark driver and its first micro-batches on a busy two-core machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


def tables(spark: SparkSession, job: StreamJobProcess, stack: Settings) -> TableReader:
    return stream_tables(spark, job.lake, stack.topic_prefix)


# -- scenario 1: N rows, duplicates, malformed records ---------------------------------------------


@dataclass
class FirstRun:
    job: StreamJobProcess
    report: dict[str, Any]


@pytest.fixture(scope="module")
def first_run(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstRun]:
    job = new_job(stack, tmp_path_factory)
    # Before the job starts: 60 ids, ten of them twice (duplicates within one micro-batch) ...
    post_rows(stack, FIRST_IDS + FIRST_IDS[:10])
    put_malformed(stack)
    job.start("--until-idle", "20", "--timeout", "900")
    try:
        job.wait_for(
            lambda: all(job.input_rows().get(t, 0) >= len(FIRST_IDS) + 11 for t in TABLES),
            JOB_START_TIMEOUT_S,
            "the first micro-batches",
        )
        # ... then, while it runs, 40 new ids after the malformed records, and ids it has
        # already written again (duplicates across micro-batches).
        post_rows(stack, LATER_IDS + FIRST_IDS[20:30])
        report = job.wait_exit(400)
        yield FirstRun(job, report)
    finally:
        job.kill()


def test_each_table_holds_exactly_the_posted_ids_once(
    first_run: FirstRun, stack: Settings, spark: SparkSession
) -> None:
    assert_each_table_holds_the_ids_once(tables(spark, first_run.job, stack), ALL_IDS)
    # every record posted (including the duplicates) went through the job
    assert all(rows >= len(ALL_IDS) + 20 for rows in first_run.report["input_rows"].values())


def test_values_are_cleaned_as_the_spec_says(
    first_run: FirstRun, stack: Settings, spark: SparkSession
) -> None:
    read = tables(spark, first_run.job, stack)
    assert_columns_are_the_contracts(read)
    assert_rows_cleaned(read, ALL_IDS)


def test_malformed_records_are_rejected_and_later_rows_still_arrive(
    first_run: FirstRun, stack: Settings, spark: SparkSession
) -> None:
    read = tables(spark, first_run.job, stack)
    assert_malformed_records_rejected(read, stack.topic_prefix)
    assert_each_table_holds_the_ids_once(read, LATER_IDS)


# -- scenario 2: killed mid-stream, restarted ------------------------------------------------------


def test_killed_job_restarts_from_its_checkpoints_without_loss_or_duplicates(
    stack: Settings, spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> None:
    job = new_job(stack, tmp_path_factory)
    post_rows(stack, KILL_IDS[:10])
    job.start("--timeout", "1200")
    try:
        job.wait_for(
            lambda: all(job.input_rows().get(t, 0) > 0 for t in TABLES),
            JOB_START_TIMEOUT_S,
            "the first micro-batches",
        )
        poster = KeepPosting(stack, KILL_IDS).start()
        # mid-stream: records are arriving, micro-batches are committing
        job.wait_for(lambda: len(poster.posted) >= 60, 120, "more records posted")
        before_kill = job.input_rows()
        job.kill()
        poster.join(120)
        poster.assert_all_posted()
        in_streams = records_in_streams(stack)

        job.start("--until-idle", "10", "--timeout", "900")
        report = job.wait_exit(JOB_START_TIMEOUT_S + 300)
    finally:
        job.kill()

    read = tables(spark, job, stack)
    assert_each_table_holds_the_ids_once(read, KILL_IDS)
    assert_rows_cleaned(read, KILL_IDS)
    for name in TABLES:
        # The restart resumed from the checkpoint: it read less than the whole stream, and at
        # least what arrived after the last batch the first run committed.
        assert 0 < report["input_rows"][name] < in_streams[name], (name, report, in_streams)
        assert report["input_rows"][name] <= in_streams[name] - before_kill[name], name
