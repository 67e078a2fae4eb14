"""The streaming job end to end: rows posted through the ingestion API's Kinesis endpoints, the
job (`pinpipe stream`, a real subprocess with its own Spark driver) cleaning them into Delta
tables on the emulator's S3, read back with Spark.

- N rows per table, with duplicates within and across micro-batches → exactly N rows per table,
  cleaned as data contract §3 says; malformed records (put straight into Kinesis: the API refuses
  them) → the rejected table, and the rows posted after them still arrive.
- The job SIGKILLed mid-stream and started again → still exactly N, no duplicates, and the
  restart resumed from its checkpoints rather than re-reading the streams.

Each scenario has its own lake root (so its own tables and checkpoints) and its own range of
ids; the streams are the test stack's, shared with other tests, so assertions look at our ids.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from pipeline.config import Settings
from pipeline.lake import StreamPaths
from pipeline.stream.job import TABLES, stream_table_schema
from tests.support.stream_job import JOB_START_TIMEOUT_S, StreamJobProcess, new_job
from tests.support.stream_scenario import (
    MALFORMED,
    assert_no_duplicate_ids,
    expected_rows,
    post_rows,
    put_malformed,
    records_in_streams,
    rows_by_ind,
)

# Generous bounds: a Spark driver and its first micro-batches on a busy two-core machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


def table(spark: SparkSession, job: StreamJobProcess, name: str) -> DataFrame:
    paths = StreamPaths(job.lake, "test")
    path = paths.rejected if name == "rejected" else paths.table(name)
    return spark.read.format("delta").load(path)


# -- scenario 1: N rows, duplicates, malformed records ---------------------------------------------

FIRST_IDS = list(range(5_000_000, 5_000_060))
LATER_IDS = list(range(5_000_060, 5_000_100))
ALL_IDS = FIRST_IDS + LATER_IDS


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
    first_run: FirstRun, spark: SparkSession
) -> None:
    for name in TABLES:
        frame = table(spark, first_run.job, name)
        found = rows_by_ind(frame, ALL_IDS)
        assert sorted(found) == ALL_IDS, f"{name}: missing {sorted(set(ALL_IDS) - set(found))}"
        assert all(len(rows) == 1 for rows in found.values()), name
        assert_no_duplicate_ids(frame)
    # every record posted (including the duplicates) went through the job
    assert all(rows >= len(ALL_IDS) + 20 for rows in first_run.report["input_rows"].values())


def test_values_are_cleaned_as_the_spec_says(first_run: FirstRun, spark: SparkSession) -> None:
    for name in TABLES:
        frame = table(spark, first_run.job, name)
        # Data contract §3 columns, then each row's arrival order (its Kinesis sequence number)
        assert frame.columns == stream_table_schema(name).fieldNames()
        for ind, rows in rows_by_ind(frame, ALL_IDS).items():
            assert rows[0] == expected_rows(ind)[name], f"{name} {ind}"


def test_malformed_records_are_rejected_and_later_rows_still_arrive(
    first_run: FirstRun, spark: SparkSession
) -> None:
    rejected = table(spark, first_run.job, "rejected").collect()
    for name, (data, reason) in MALFORMED.items():
        ours = [row for row in rejected if row["source"] == name and row["record"] == data.decode()]
        assert len(ours) == 1, f"{name}: {ours}"
        assert ours[0]["reason"] == reason
        assert ours[0]["_stream"] == f"streaming-test-{name}"
        assert ours[0]["_sequence_number"]
    for name in TABLES:
        found = rows_by_ind(table(spark, first_run.job, name), LATER_IDS)
        assert sorted(found) == LATER_IDS, name


# -- scenario 2: killed mid-stream, restarted ------------------------------------------------------

KILL_IDS = list(range(6_000_000, 6_000_150))


def test_killed_job_restarts_from_its_checkpoints_without_loss_or_duplicates(
    stack: Settings, spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> None:
    job = new_job(stack, tmp_path_factory)
    posted: list[int] = []
    errors: list[BaseException] = []

    def keep_posting() -> None:
        try:
            for first in range(0, len(KILL_IDS), 10):
                chunk = KILL_IDS[first : first + 10]
                post_rows(stack, chunk + chunk[:2])  # with duplicates
                posted.extend(chunk)
                time.sleep(0.4)
        except BaseException as error:  # reported by the test thread
            errors.append(error)

    post_rows(stack, KILL_IDS[:10])
    job.start("--timeout", "1200")
    try:
        job.wait_for(
            lambda: all(job.input_rows().get(t, 0) > 0 for t in TABLES),
            JOB_START_TIMEOUT_S,
            "the first micro-batches",
        )
        poster = threading.Thread(target=keep_posting)
        poster.start()
        # mid-stream: records are arriving, micro-batches are committing
        job.wait_for(lambda: len(posted) >= 60, 120, "more records posted")
        before_kill = job.input_rows()
        job.kill()
        poster.join(120)
        assert not errors, errors
        assert len(posted) == len(KILL_IDS)
        in_streams = records_in_streams(stack)

        job.start("--until-idle", "10", "--timeout", "900")
        report = job.wait_exit(JOB_START_TIMEOUT_S + 300)
    finally:
        job.kill()

    for name in TABLES:
        frame = table(spark, job, name)
        found = rows_by_ind(frame, KILL_IDS)
        assert sorted(found) == KILL_IDS, f"{name}: missing {sorted(set(KILL_IDS) - set(found))}"
        assert_no_duplicate_ids(frame)
        for ind, rows in found.items():
            assert rows[0] == expected_rows(ind)[name]
        # The restart resumed from the checkpoint: it read less than the whole stream, and at
        # least what arrived after the last batch the first run committed.
        assert 0 < report["input_rows"][name] < in_streams[name], (name, report, in_streams)
        assert report["input_rows"][name] <= in_streams[name] - before_kill[name], name
