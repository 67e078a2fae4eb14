"""The stream job's progress as Prometheus metrics: a real query (Spark's `rate` source) watched
by the job's listener, published into the heartbeat, scraped over HTTP — the same figures the
heartbeat file (and so `pinpipe status`) shows."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families
from pyspark.sql import DataFrame, SparkSession

from pipeline.stream.job import Heartbeat, ProgressListener, StreamJob
from pipeline.stream.metrics import serve_metrics
from tests.support.ports import free_port


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    response.raise_for_status()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_show_the_queries_progress_as_the_heartbeat_does(
    spark: SparkSession, tmp_path: Path
) -> None:
    def write(batch: DataFrame, batch_id: int) -> None:
        batch.count()

    query = (
        spark.readStream.format("rate")
        .option("rowsPerSecond", 20)
        .load()
        .writeStream.queryName("metrics_test")
        .foreachBatch(write)
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .trigger(processingTime="0.5 seconds")
        .start()
    )
    listener = ProgressListener()
    spark.streams.addListener(listener)
    heartbeat = Heartbeat(None)
    job = StreamJob({"pin": query}, listener, heartbeat, threading.Event())
    port = free_port()
    server, _ = serve_metrics(heartbeat.snapshot, port)
    try:
        before = scrape(port)
        # before the job publishes: its state, no query yet
        assert before[("pinpipe_stream_state", (("state", "starting"),))] == 1.0
        assert not any(name.startswith("pinpipe_stream_input_rows") for name, _ in before)

        deadline = time.monotonic() + 300
        while len(job.batches("pin")) < 2:
            assert time.monotonic() < deadline, "the query read no records"
            job._check_alive()
            time.sleep(0.2)
        job.publish()
        published = heartbeat.snapshot()["queries"]["pin"]  # type: ignore[index]
        metrics = scrape(port)
    finally:
        server.shutdown()
        job.stop()
        spark.streams.removeListener(listener)

    table = (("table", "pin"),)
    assert metrics[("pinpipe_stream_state", (("state", "running"),))] == 1.0
    assert metrics[("pinpipe_stream_state", (("state", "starting"),))] == 0.0
    assert metrics[("pinpipe_stream_query_active", table)] == 1.0
    assert metrics[("pinpipe_stream_query_restarts", table)] == 0.0
    # the counters are the heartbeat's figures, read at the same moment
    assert metrics[("pinpipe_stream_input_rows_total", table)] == published["input_rows"] > 0
    assert (
        metrics[("pinpipe_stream_batches_with_input_total", table)]
        == published["batches_with_input"]
        >= 2
    )
    last = published["last_batch"]
    assert metrics[("pinpipe_stream_last_batch_id", table)] == last["batch_id"]
    assert metrics[("pinpipe_stream_last_batch_input_rows", table)] == last["input_rows"] > 0
    assert metrics[("pinpipe_stream_last_batch_duration_seconds", table)] == last["duration_s"]
    started = metrics[("pinpipe_stream_last_batch_timestamp_seconds", table)]
    assert abs(started - time.time()) < 600  # a real Unix time, recent
    # and the driver process's own figures, as the API's /metrics has them
    assert metrics[("process_resident_memory_bytes", ())] > 0
