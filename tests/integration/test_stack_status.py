"""`pinpipe status` against the real local stack: the S3 sink's lag follows what Connect has
committed, the connector and its tasks are RUNNING, the stream job's last micro-batch shows
the rows it read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from pipeline.config import Settings
from pipeline.stack.components import connect_ready
from pipeline.stack.health import (
    Unavailable,
    connector_status,
    health_lines,
    sink_group,
    sink_lag,
    stream_batches,
)
from pipeline.stack.supervisor import Supervisor
from pipeline.stream.component import progress_path
from tests.support.api import ROWS, post_topic
from tests.support.landing import end_offsets, record_offsets
from tests.support.stream_job import JOB_START_TIMEOUT_S, StreamJobProcess
from tests.support.stream_scenario import post_rows
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


def pinpipe_status() -> str:
    """`pinpipe status` as a user runs it, in an 80-column pipe (where rich would cut lines)."""
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "status"],
        env={**os.environ, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def fill_open_windows(settings: Settings) -> dict[str, int]:
    """Post to every partition up to its next object boundary (a whole window when it is on
    one): once landed, the sink commits every offset. Records posted per topic."""
    window = settings.landing_flush_max_records
    posted = {}
    for table, topic in settings.topics.items():
        posted[topic] = 0
        for partition, end in end_offsets(settings, topic).items():
            missing = window - end % window
            body = {
                "records": [
                    {"value": ROWS[table](9_000_000 + i), "partition": partition}
                    for i in range(missing)
                ]
            }
            response = post_topic(settings, topic, body)
            assert response.status_code == 200, response.text
            posted[topic] += missing
    return posted


def after_last_record(settings: Settings, topic: str) -> int:
    """Sum over the partitions of the offset after each one's last committed record: where the
    sink's committed offsets stand once everything is landed."""
    return sum(offsets[-1] + 1 for offsets in record_offsets(settings, topic).values() if offsets)


def test_sink_lag_grows_while_connect_is_stopped_and_drains_once_it_is_back(
    stack: Settings,
) -> None:
    supervisor = Supervisor(stack)
    assert supervisor.stop("connect")
    try:
        stopped = pinpipe_status()
        assert "S3 sink connector: connect is not running" in stopped, stopped
        before = {lag.topic: lag for lag in sink_lag(stack)}
        posted = fill_open_windows(stack)
        after = {lag.topic: lag for lag in sink_lag(stack)}
        for topic, count in posted.items():
            # each request is a Kafka transaction whose commit marker takes an offset too
            grown = after[topic].end_offset - before[topic].end_offset
            assert grown >= count, (topic, grown, count)
            assert after[topic].committed == before[topic].committed  # nobody consumes
            assert after[topic].lag == before[topic].lag + grown > 0
    finally:
        supervisor.start("connect")
        wait_for(lambda: connect_ready(stack), 300, "Connect to come back")

    # every window is now complete: once landed, the sink commits up to the last record; past it
    # only commit markers, which no consumer is handed (one at most per partition)
    records_end = {topic: after_last_record(stack, topic) for topic in posted}
    wait_for(
        lambda: all(lag.committed == records_end[lag.topic] for lag in sink_lag(stack)),
        600,
        "the sink to commit up to every partition's last record",
    )
    drained = {lag.topic: lag for lag in sink_lag(stack)}
    for topic in posted:
        partitions = len(end_offsets(stack, topic))
        assert drained[topic].end_offset == after[topic].end_offset, "records arrived meanwhile"
        assert 0 <= drained[topic].lag <= partitions, drained[topic]

    wait_for(lambda: connector_status(stack).state == "RUNNING", 120, "the connector")
    status = connector_status(stack)
    assert status.tasks and all(task["state"] == "RUNNING" for task in status.tasks), status

    shown = pinpipe_status()
    assert f"consumer group {sink_group(stack)}" in shown, shown
    for topic in posted:
        row = next(line for line in shown.splitlines() if line.split()[:1] == [topic])
        shown_lag = drained[topic]
        assert row.split()[1:] == [
            str(shown_lag.end_offset),
            str(shown_lag.committed),
            str(shown_lag.lag),
        ], row
    assert f"S3 sink connector {stack.connector_name}: RUNNING" in shown, shown
    assert "task 0 RUNNING" in shown, shown


def _api_metrics(settings: Settings) -> dict[str, float]:
    answer = requests.get(f"{settings.api_url}/metrics", timeout=30)
    assert answer.status_code == 200, answer.text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
        if not sample.labels  # the histogram's _count and _sum, the gauge
    }


def test_api_metrics_count_each_delivered_record_and_an_empty_queue(stack: Settings) -> None:
    before = _api_metrics(stack)
    records = [{"value": ROWS["pin"](8_000_000 + i)} for i in range(25)]
    response = post_topic(stack, stack.topics["pin"], {"records": records})
    assert response.status_code == 200, response.text
    after = _api_metrics(stack)
    delivered = "pinpipe_api_kafka_record_delivery_seconds_count"
    assert after[delivered] - before.get(delivered, 0) == len(records)
    assert after["pinpipe_api_kafka_record_delivery_seconds_sum"] > 0
    # every record of an answered request is acknowledged: nothing waits in the queue
    assert after["pinpipe_api_kafka_producer_queue_messages"] == 0


class _StatusStreamJob(StreamJobProcess):
    """The stream job writing its heartbeat where the stack's own job would: `pinpipe status`
    finds it there."""

    settings: Settings | None = None

    @property
    def progress_file(self) -> Path:
        assert self.settings is not None
        return progress_path(self.settings)


def test_stream_progress_shows_the_rows_of_the_last_micro_batch(
    stack: Settings, tmp_path: Path
) -> None:
    with pytest.raises(Unavailable, match="not running"):
        stream_batches(stack)
    scenario = uuid.uuid4().hex[:8]
    job = _StatusStreamJob(
        lake=f"s3a://{stack.lake_bucket}/status-tests/{scenario}/lake", workdir=tmp_path
    )
    job.settings = stack
    job.start("--timeout", "900")
    try:
        job.wait_for(
            lambda: (job.progress() or {}).get("state") == "running",
            JOB_START_TIMEOUT_S,
            "the stream queries",
        )
        ids = list(range(7_000_000, 7_000_020))
        post_rows(stack, ids)

        def every_table_read() -> bool:
            try:
                return {b.table for b in stream_batches(stack)} == {"pin", "geo", "user"}
            except Unavailable:  # between heartbeats, or the job died: wait_for says which
                return False

        job.wait_for(
            every_table_read,
            JOB_START_TIMEOUT_S,
            "a micro-batch with input in every table",
        )
        batches = stream_batches(stack)
        assert all(0 < b.input_rows <= len(ids) * 3 and b.batch_id >= 0 for b in batches), batches
        lines = health_lines(stack, running={"spark-stream"})
        assert "stream job, last micro-batch with input per table:" in lines, lines
        assert any(line.startswith("  pin: batch ") and " rows, input " in line for line in lines)
        # the same progress as Prometheus metrics, where the heartbeat says they are served
        metrics_url = (job.progress() or {}).get("metrics_url")
        assert metrics_url == f"http://127.0.0.1:{stack.stream_metrics_port}/metrics"
        metrics = requests.get(metrics_url, timeout=30).text
        assert 'pinpipe_stream_state{state="running"} 1.0' in metrics
        for batch in batches:
            assert f'pinpipe_stream_last_batch_id{{table="{batch.table}"}}' in metrics, metrics
    finally:
        # what `make down` sends the stack's job: SIGINT to the whole group (the JVM ignores it)
        assert job.process is not None
        if job.process.poll() is None:
            os.killpg(job.process.pid, signal.SIGINT)
        code = job.process.wait(300)
        job.kill()
    assert code == 0, job.log_tail()
    assert not progress_path(stack).exists()  # a stopped job leaves no progress behind
