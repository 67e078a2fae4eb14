"""The stream layer on the compose stack: rows posted through the API container's Kinesis
endpoints, cleaned by the long-running spark-stream service into Delta tables on the compose
S3 server, read back from the host. As on the local target (tests/integration/test_stream.py):
exactly N rows per table, cleaned as data contract §3 says, malformed records rejected while later
rows still arrive; the job's container SIGKILLed mid-stream and started again → still exactly N,
and the restart resumed from its checkpoints."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from pyspark.sql import SparkSession

from pipeline.stream.job import TABLES
from tests.support.compose import ComposeStack
from tests.support.stream_scenario import (
    ALL_IDS,
    FIRST_IDS,
    KILL_IDS,
    LATER_IDS,
    KeepPosting,
    TableReader,
    all_arrived,
    assert_columns_are_the_contracts,
    assert_each_table_holds_the_ids_once,
    assert_malformed_records_rejected,
    assert_rows_cleaned,
    post_rows,
    put_malformed,
    records_in_streams,
    stream_tables,
)
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.compose, pytest.mark.timeout(1800)]

ARRIVAL_TIMEOUT_S = 480


def tables(spark: SparkSession, stack: ComposeStack) -> TableReader:
    return stream_tables(spark, stack.host.lake_uri, stack.host.topic_prefix)


def heartbeat(stack: ComposeStack) -> dict[str, Any]:
    """The streaming job's progress file, read inside its container."""
    path = f"/var/lib/pinpipe/data/stream/{stack.host.topic_prefix}-progress.json"
    state: dict[str, Any] = json.loads(stack.run("exec", "-T", "spark-stream", "cat", path))
    return state


@pytest.fixture(scope="module")
def first_rows(compose_stack: ComposeStack, spark: SparkSession) -> ComposeStack:
    # 60 ids, ten of them twice, then records no table can read, then 40 new ids and ids
    # already written (duplicates across micro-batches).
    read = tables(spark, compose_stack)
    post_rows(compose_stack.host, FIRST_IDS + FIRST_IDS[:10])
    put_malformed(compose_stack.host)
    wait_for(all_arrived(read, FIRST_IDS), ARRIVAL_TIMEOUT_S, "the first rows", interval_s=3)
    post_rows(compose_stack.host, LATER_IDS + FIRST_IDS[20:30])
    wait_for(all_arrived(read, LATER_IDS), ARRIVAL_TIMEOUT_S, "the later rows", interval_s=3)
    return compose_stack


def test_each_table_holds_exactly_the_posted_ids_once(
    first_rows: ComposeStack, spark: SparkSession
) -> None:
    assert_each_table_holds_the_ids_once(tables(spark, first_rows), ALL_IDS)


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
    read = tables(spark, first_rows)
    assert_columns_are_the_contracts(read)
    assert_rows_cleaned(read, ALL_IDS)


def test_malformed_records_are_rejected_and_later_rows_still_arrive(
    first_rows: ComposeStack, spark: SparkSession
) -> None:
    read = tables(spark, first_rows)
    assert_malformed_records_rejected(read, first_rows.host.topic_prefix)
    assert_each_table_holds_the_ids_once(read, LATER_IDS)


def test_killed_container_restarts_from_its_checkpoints_without_loss_or_duplicates(
    first_rows: ComposeStack, spark: SparkSession
) -> None:
    stack = first_rows
    poster = KeepPosting(stack.host, KILL_IDS).start()
    try:
        # mid-stream: records are arriving, micro-batches are committing
        wait_for(
            lambda: len(poster.posted) >= 60 or not poster.is_alive(),
            180,
            "records posted",
            interval_s=3,
        )
        stack.run("kill", "--signal", "SIGKILL", "spark-stream")
    finally:
        poster.join(300)
    poster.assert_all_posted()
    in_streams = records_in_streams(stack.host)

    stack.run("up", "--wait", "--wait-timeout", "600", "--no-deps", "spark-stream")
    read = tables(spark, stack)
    wait_for(all_arrived(read, KILL_IDS), ARRIVAL_TIMEOUT_S, "rows after the restart", interval_s=3)
    resumed = heartbeat(stack)["queries"]
    assert_each_table_holds_the_ids_once(read, KILL_IDS)
    assert_rows_cleaned(read, KILL_IDS)
    for name in TABLES:
        # The restart resumed from the checkpoint: it read less than the whole stream.
        assert 0 < resumed[name]["input_rows"] < in_streams[name], (name, resumed, in_streams)
