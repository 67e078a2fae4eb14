"""The stream layer on the compose stack: rows posted through the API container's Kinesis
endpoints, cleaned by the long-running spark-stream service into Delta tables on the emulator's
S3, read back from the host. As on the local target (tests/integration/test_stream.py): exactly
N rows per table, cleaned as data contract §3 says, malformed records rejected while later rows
still arrive; the job's container SIGKILLed mid-stream and started again → still exactly N, and the
restart resumed from its checkpoints."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from pyspark.sql import DataFrame, SparkSession

from pipeline.lake import StreamPaths
from pipeline.stream.job import TABLES, stream_table_schema
from tests.compose.conftest import ComposeStack
from tests.support.stream_scenario import (
    MALFORMED,
    assert_no_duplicate_ids,
    expected_rows,
    post_rows,
    put_malformed,
    records_in_streams,
    rows_by_ind,
)
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.compose, pytest.mark.timeout(1800)]

FIRST_IDS = list(range(5_000_000, 5_000_060))
LATER_IDS = list(range(5_000_060, 5_000_100))
ALL_IDS = FIRST_IDS + LATER_IDS
KILL_IDS = list(range(6_000_000, 6_000_150))
ARRIVAL_TIMEOUT_S = 480


def table(spark: SparkSession, stack: ComposeStack, name: str) -> DataFrame:
    paths = StreamPaths(stack.host.lake_uri, stack.host.topic_prefix)
    path = paths.rejected if name == "rejected" else paths.table(name)
    return spark.read.format("delta").load(path)


def all_arrived(spark: SparkSession, stack: ComposeStack, ids: list[int]) -> Callable[[], bool]:
    def arrived() -> bool:
        return all(len(rows_by_ind(table(spark, stack, name), ids)) == len(ids) for name in TABLES)

    return arrived


def heartbeat(stack: ComposeStack) -> dict[str, Any]:
    """The streaming job's progress file, read inside its container."""
    path = f"/var/lib/pinpipe/data/stream/{stack.host.topic_prefix}-progress.json"
    state: dict[str, Any] = json.loads(stack.run("exec", "-T", "spark-stream", "cat", path))
    return state


@pytest.fixture(scope="module")
def first_rows(compose_stack: ComposeStack, spark: SparkSession) -> ComposeStack:
    # 60 ids, ten of them twice, then records no table can read, then 40 new ids and ids
    # already written (duplicates across micro-batches).
    post_rows(compose_stack.host, FIRST_IDS + FIRST_IDS[:10])
    put_malformed(compose_stack.host)
    wait_for(
        all_arrived(spark, compose_stack, FIRST_IDS),
        ARRIVAL_TIMEOUT_S,
        "the first rows",
        interval_s=3,
    )
    post_rows(compose_stack.host, LATER_IDS + FIRST_IDS[20:30])
    wait_for(
        all_arrived(spark, compose_stack, LATER_IDS),
        ARRIVAL_TIMEOUT_S,
        "the later rows",
        interval_s=3,
    )
    return compose_stack


def test_each_table_holds_exactly_the_posted_ids_once(
    first_rows: ComposeStack, spark: SparkSession
) -> None:
    for name in TABLES:
        frame = table(spark, first_rows, name)
        found = rows_by_ind(frame, ALL_IDS)
        assert sorted(found) == ALL_IDS, f"{name}: missing {sorted(set(ALL_IDS) - set(found))}"
        assert all(len(rows) == 1 for rows in found.values()), name
        assert_no_duplicate_ids(frame)


def test_progress_is_published_as_prometheus_metrics(first_rows: ComposeStack) -> None:
    """The job's /metrics, published on the host's loopback, count what its heartbeat counts."""
    url = f"http://127.0.0.1:{first_rows.host.stream_metrics_port}/metrics"
    samples = {
        (sample.name, sample.labels.get("table", sample.labels.get("state"))): sample.value
        for family in text_string_to_metric_families(requests.get(url, timeout=30).text)
        for sample in family.samples
    }
    assert samples[("pinpipe_stream_state", "running")] == 1.0
    queries = heartbeat(first_rows)["queries"]
    for name in TABLES:
        assert samples[("pinpipe_stream_query_active", name)] == 1.0
        # every posted id was read (duplicates and malformed records too): at least that many
        assert samples[("pinpipe_stream_input_rows_total", name)] >= len(ALL_IDS)
        assert samples[("pinpipe_stream_last_batch_id", name)] <= queries[name]["last_batch_id"]


def test_values_are_cleaned_as_the_spec_says(first_rows: ComposeStack, spark: SparkSession) -> None:
    for name in TABLES:
        frame = table(spark, first_rows, name)
        # Data contract §3 columns, then each row's arrival order (its Kinesis sequence number)
        assert frame.columns == stream_table_schema(name).fieldNames()
        for ind, rows in rows_by_ind(frame, ALL_IDS).items():
            assert rows[0] == expected_rows(ind)[name], f"{name} {ind}"


def test_malformed_records_are_rejected_and_later_rows_still_arrive(
    first_rows: ComposeStack, spark: SparkSession
) -> None:
    prefix = first_rows.host.topic_prefix
    rejected = table(spark, first_rows, "rejected").collect()
    for name, (data, reason) in MALFORMED.items():
        ours = [row for row in rejected if row["source"] == name and row["record"] == data.decode()]
        assert len(ours) == 1, f"{name}: {ours}"
        assert ours[0]["reason"] == reason
        assert ours[0]["_stream"] == f"streaming-{prefix}-{name}"
        assert ours[0]["_sequence_number"]
    for name in TABLES:
        found = rows_by_ind(table(spark, first_rows, name), LATER_IDS)
        assert sorted(found) == LATER_IDS, name


def test_killed_container_restarts_from_its_checkpoints_without_loss_or_duplicates(
    first_rows: ComposeStack, spark: SparkSession
) -> None:
    stack = first_rows
    posted: list[int] = []
    errors: list[BaseException] = []

    def keep_posting() -> None:
        try:
            for first in range(0, len(KILL_IDS), 10):
                chunk = KILL_IDS[first : first + 10]
                post_rows(stack.host, chunk + chunk[:2])  # with duplicates
                posted.extend(chunk)
                time.sleep(0.4)
        except BaseException as error:  # reported by the test thread
            errors.append(error)

    poster = threading.Thread(target=keep_posting)
    poster.start()
    try:
        # mid-stream: records are arriving, micro-batches are committing
        wait_for(
            lambda: len(posted) >= 60 or not poster.is_alive(), 180, "records posted", interval_s=3
        )
        stack.run("kill", "--signal", "SIGKILL", "spark-stream")
    finally:
        poster.join(300)
    assert not errors, errors
    assert len(posted) == len(KILL_IDS)
    in_streams = records_in_streams(stack.host)

    stack.run("up", "--wait", "--wait-timeout", "600", "--no-deps", "spark-stream")
    wait_for(
        all_arrived(spark, stack, KILL_IDS),
        ARRIVAL_TIMEOUT_S,
        "rows after the restart",
        interval_s=3,
    )
    resumed = heartbeat(stack)["queries"]
    for name in TABLES:
        frame = table(spark, stack, name)
        found = rows_by_ind(frame, KILL_IDS)
        assert sorted(found) == KILL_IDS, f"{name}: missing {sorted(set(KILL_IDS) - set(found))}"
        assert_no_duplicate_ids(frame)
        for ind, rows in found.items():
            assert rows[0] == expected_rows(ind)[name]
        # The restart resumed from the checkpoint: it read less than the whole stream.
        assert 0 < resumed[name]["input_rows"] < in_streams[name], (name, resumed, in_streams)
