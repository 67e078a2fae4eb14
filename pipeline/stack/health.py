"""What `pinpipe status` adds below the component table: how far each stage has got.

- per topic, the end offset and the S3 sink's consumer-group lag (Kafka admin API);
- the sink connector's state and each task's (Connect REST);
- the stream job's last micro-batch per table (its heartbeat file, fed by Spark's
  StreamingQueryProgress events);
- the daily DAG's last run and its state (Airflow REST).

Each probe returns data or raises `Unavailable` with a one-line reason; the `*_lines` functions
turn data into text (unit-tested without a stack). A stopped component is said so, not traced.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import requests

from pipeline.config import Settings
from pipeline.land.connector import ConnectClient, ConnectorStatus
from pipeline.stream.component import progress_age_s, read_progress

ADMIN_TIMEOUT_S = 10.0
# pipeline.orchestrate.dag.DAG_ID (a unit test keeps them equal): that module imports Airflow,
# seconds of start-up `pinpipe status` does without
DAG_ID = "pinpipe_batch"


class Unavailable(Exception):
    """A probe could not answer; the message says why in one line."""


@dataclass(frozen=True)
class TopicLag:
    """One topic of the S3 sink: end offset and committed offset summed over its partitions."""

    topic: str
    end_offset: int
    committed: int
    lag: int


@dataclass(frozen=True)
class StreamBatch:
    table: str
    batch_id: int
    time: str
    input_rows: int
    input_rows_per_second: float
    processed_rows_per_second: float


def sink_group(settings: Settings) -> str:
    """Kafka Connect's consumer group of a sink connector: `connect-<connector name>`."""
    return f"connect-{settings.connector_name}"


def sink_lag(settings: Settings) -> list[TopicLag]:
    """End offset, committed offset and lag of the S3 sink per topic. A partition the sink has
    not committed yet counts from offset 0 (the sink reads from the earliest offset)."""
    from confluent_kafka import (
        ConsumerGroupTopicPartitions,
        KafkaException,
        TopicPartition,
    )
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.admin._listoffsets import OffsetSpec  # not re-exported for mypy

    admin = AdminClient({**settings.kafka_client_config(), "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=ADMIN_TIMEOUT_S)
        partitions = [
            TopicPartition(topic, partition)
            for topic in settings.topics.values()
            if topic in metadata.topics
            for partition in metadata.topics[topic].partitions
        ]
        if not partitions:
            raise Unavailable(f"no topic {', '.join(settings.topics.values())} on the broker")
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        answers = admin.list_offsets(
            {tp: latest for tp in partitions}, request_timeout=ADMIN_TIMEOUT_S
        )
        ends = {(tp.topic, tp.partition): future.result().offset for tp, future in answers.items()}
        request = ConsumerGroupTopicPartitions(sink_group(settings), partitions)
        found = admin.list_consumer_group_offsets([request], request_timeout=ADMIN_TIMEOUT_S)
        committed = {
            (tp.topic, tp.partition): max(tp.offset, 0)  # -1001: nothing committed yet
            for tp in found[request.group_id].result().topic_partitions
        }
    except KafkaException as error:
        raise Unavailable(f"Kafka: {error.args[0]}") from error
    lags = []
    for topic in settings.topics.values():
        keys = [key for key in ends if key[0] == topic]
        if not keys:
            continue
        end = sum(ends[key] for key in keys)
        done = sum(min(committed.get(key, 0), ends[key]) for key in keys)
        lags.append(TopicLag(topic, end, done, end - done))
    return lags


def _unavailable(what: str, url: str, error: Exception) -> Unavailable:
    if isinstance(error, requests.ConnectionError | requests.Timeout):
        return Unavailable(f"{what} does not answer at {url}")
    return Unavailable(f"{what}: {str(error).splitlines()[0]}")


def connector_status(settings: Settings) -> ConnectorStatus:
    try:
        return ConnectClient(settings, timeout_s=ADMIN_TIMEOUT_S).status(settings.connector_name)
    except (RuntimeError, requests.RequestException) as error:  # RuntimeError: an HTTP error
        raise _unavailable("Connect", settings.connect_url, error) from error


def stream_batches(settings: Settings) -> list[StreamBatch]:
    """The stream job's last micro-batch per table, from its heartbeat file (gone once the job
    has stopped; stale if it died)."""
    state = read_progress(settings)
    if state is None:
        raise Unavailable("the stream job is not running (no progress file)")
    age = progress_age_s(state)
    if age > 30:
        raise Unavailable(f"the stream job's progress file is {age:.0f}s old: is it running?")
    if state.get("state") != "running":
        waiting = ", ".join(state.get("waiting_for") or [])
        raise Unavailable(
            f"the stream job is {state.get('state')}" + (f" for {waiting}" if waiting else "")
        )
    batches = []
    for table, query in sorted(state.get("queries", {}).items()):
        last: dict[str, Any] | None = query.get("last_batch")
        if last:
            batches.append(
                StreamBatch(
                    table=table,
                    batch_id=int(last["batch_id"]),
                    time=str(last["time"]),
                    input_rows=int(last["input_rows"]),
                    input_rows_per_second=float(last["input_rows_per_second"]),
                    processed_rows_per_second=float(last["processed_rows_per_second"]),
                )
            )
    return batches


def last_dag_run(settings: Settings) -> dict[str, Any] | None:
    from pipeline.orchestrate.client import AirflowApiError, AirflowClient
    from pipeline.stack.airflow import airflow_login

    login = airflow_login(settings)
    if login is None:
        raise Unavailable("Airflow has not generated its admin password yet")
    try:
        return AirflowClient(settings, *login, timeout_s=ADMIN_TIMEOUT_S).latest_dag_run(DAG_ID)
    except (AirflowApiError, requests.RequestException) as error:
        raise _unavailable("Airflow", settings.airflow_url, error) from error


# -- text ----------------------------------------------------------------------------------------


def _rate(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}/s"


def lag_lines(group: str, lags: list[TopicLag], window: int) -> list[str]:
    """`window`: records per landed object. The sink commits a partition's offsets as each of
    its objects is complete, so up to window - 1 records per partition stay as lag meanwhile
    (landed in the open object all the same, after the flush interval)."""
    width = max([len("topic"), *(len(lag.topic) for lag in lags)])
    lines = [
        f"Kafka → S3 sink (consumer group {group}; offsets are committed per complete object "
        f"of {window} records):",
        f"  {'topic':<{width}}  {'end offset':>10}  {'committed':>10}  {'lag':>8}",
    ]
    lines += [
        f"  {lag.topic:<{width}}  {lag.end_offset:>10}  {lag.committed:>10}  {lag.lag:>8}"
        for lag in lags
    ]
    return lines


def connector_lines(status: ConnectorStatus) -> list[str]:
    tasks = ", ".join(f"task {task['id']} {task['state']}" for task in status.tasks) or "no task"
    lines = [f"S3 sink connector {status.name}: {status.state} on {status.worker}; {tasks}"]
    for task in status.tasks:
        if trace := (task.get("trace") or "").strip():
            lines.append(f"  task {task['id']}: {trace.splitlines()[0]}")
    return lines


def stream_lines(batches: list[StreamBatch]) -> list[str]:
    if not batches:
        return ["stream job: running, no micro-batch with input yet"]
    lines = ["stream job, last micro-batch with input per table:"]
    lines += [
        f"  {b.table}: batch {b.batch_id} at {b.time}, {b.input_rows} rows, "
        f"input {_rate(b.input_rows_per_second)}, processed {_rate(b.processed_rows_per_second)}"
        for b in batches
    ]
    return lines


def dag_run_lines(dag_id: str, run: dict[str, Any] | None) -> list[str]:
    if run is None:
        return [f"DAG {dag_id}: no run yet"]
    ended = f", ended {run['end_date']}" if run.get("end_date") else ""
    return [
        f"DAG {dag_id}: last run {run['dag_run_id']} {run['state']} "
        f"(started {run.get('start_date') or '-'}{ended})"
    ]


def health_lines(settings: Settings, running: Collection[str]) -> list[str]:
    """Every section for the components in `running`; a stopped one is named as such."""
    lines: list[str] = []

    def section(needs: str, what: str, probe: Any) -> None:
        if needs not in running:
            lines.append(f"{what}: {needs} is not running")
            return
        try:
            lines.extend(probe())
        except Unavailable as reason:
            lines.append(f"{what}: {reason}")

    section(
        "kafka",
        "sink lag",
        lambda: lag_lines(
            sink_group(settings), sink_lag(settings), settings.landing_flush_max_records
        ),
    )
    section("connect", "S3 sink connector", lambda: connector_lines(connector_status(settings)))
    if settings.stream_enabled or "spark-stream" in running:
        section("spark-stream", "stream job", lambda: stream_lines(stream_batches(settings)))
    if settings.airflow_enabled or "airflow" in running:
        section("airflow", "daily DAG", lambda: dag_run_lines(DAG_ID, last_dag_run(settings)))
    return lines
