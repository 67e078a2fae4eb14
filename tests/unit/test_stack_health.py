"""How `pinpipe status` words lag and progress (the probes are tested against the real stack in
tests/integration/test_stack_status.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pipeline.config import LocalSettings
from pipeline.land.connector import ConnectorStatus
from pipeline.stack import health
from pipeline.stack.health import (
    StreamBatch,
    TopicLag,
    Unavailable,
    connector_lines,
    dag_run_lines,
    health_lines,
    lag_lines,
    stream_batches,
    stream_lines,
)
from pipeline.stream.component import progress_path


def test_lag_lines_align_a_column_per_figure() -> None:
    lines = lag_lines(
        "connect-s3",
        [TopicLag("pinpipe.pin", 1500, 1000, 500), TopicLag("pinpipe.user", 7, 0, 7)],
        window=500,
    )
    assert "consumer group connect-s3" in lines[0] and "500 records" in lines[0]
    assert lines[1].split() == ["topic", "end", "offset", "committed", "lag"]
    assert lines[2].split() == ["pinpipe.pin", "1500", "1000", "500"]
    assert lines[3].split() == ["pinpipe.user", "7", "0", "7"]
    assert len({len(line) for line in lines[1:]}) == 1  # right-aligned columns


def test_connector_lines_name_every_task_and_the_first_line_of_a_failure() -> None:
    status = ConnectorStatus(
        name="s3-sink",
        state="RUNNING",
        worker="127.0.0.1:8083",
        tasks=[
            {"id": 0, "state": "RUNNING", "worker_id": "w"},
            {"id": 1, "state": "FAILED", "worker_id": "w", "trace": "Boom: S3 down\n\tat x.y"},
        ],
    )
    lines = connector_lines(status)
    assert lines[0] == (
        "S3 sink connector s3-sink: RUNNING on 127.0.0.1:8083; task 0 RUNNING, task 1 FAILED"
    )
    assert lines[1:] == ["  task 1: Boom: S3 down"]


def test_stream_lines_show_time_rows_and_rates_and_no_nan() -> None:
    batches = [
        StreamBatch("geo", 4, "2026-01-01T10:00:00.000Z", 12, 3.456, float("nan")),
    ]
    assert stream_lines(batches) == [
        "stream job, last micro-batch with input per table:",
        "  geo: batch 4 at 2026-01-01T10:00:00.000Z, 12 rows, input 3.5/s, processed -",
    ]
    assert stream_lines([]) == ["stream job: running, no micro-batch with input yet"]


def test_dag_run_lines() -> None:
    run = {
        "dag_run_id": "manual__1",
        "state": "success",
        "start_date": "2026-01-01T00:00:01Z",
        "end_date": "2026-01-01T00:05:00Z",
    }
    assert dag_run_lines("pinpipe_batch", run) == [
        "DAG pinpipe_batch: last run manual__1 success "
        "(started 2026-01-01T00:00:01Z, ended 2026-01-01T00:05:00Z)"
    ]
    queued = {"dag_run_id": "scheduled__2", "state": "queued", "start_date": None}
    assert dag_run_lines("d", queued) == ["DAG d: last run scheduled__2 queued (started -)"]
    assert dag_run_lines("d", None) == ["DAG d: no run yet"]


def test_dag_id_is_the_dags() -> None:
    from pipeline.orchestrate.dag import DAG_ID

    assert health.DAG_ID == DAG_ID


def _write_progress(settings: LocalSettings, **state: object) -> Path:
    path = progress_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"updated_epoch": time.time(), **state}))
    return path


def test_stream_batches_read_the_heartbeat_file(tmp_path: Path) -> None:
    settings = LocalSettings(run_dir=tmp_path)
    with pytest.raises(Unavailable, match="not running"):
        stream_batches(settings)
    last = {
        "batch_id": 3,
        "time": "t",
        "input_rows": 9,
        "input_rows_per_second": 1.0,
        "processed_rows_per_second": 2.0,
    }
    queries = {"user": {"last_batch": last}, "pin": {"last_batch": None}}
    _write_progress(settings, state="running", queries=queries)
    assert stream_batches(settings) == [StreamBatch("user", 3, "t", 9, 1.0, 2.0)]
    _write_progress(settings, state="waiting", waiting_for=["bucket b"], queries={})
    with pytest.raises(Unavailable, match="the stream job is waiting for bucket b"):
        stream_batches(settings)


def test_stopped_components_are_named_not_probed(tmp_path: Path) -> None:
    settings = LocalSettings(run_dir=tmp_path, stream_enabled=True, airflow_enabled=True)
    assert health_lines(settings, running=set()) == [
        "sink lag: kafka is not running",
        "S3 sink connector: connect is not running",
        "stream job: spark-stream is not running",
        "daily DAG: airflow is not running",
    ]
