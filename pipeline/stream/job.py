"""The streaming job (data contract §5): Kinesis streams → Structured Streaming → Delta tables.

One query per stream, each with its own checkpoint. Every micro-batch is parsed with the explicit
row schema, split into readable and rejected records, cleaned with the batch job's silver
functions (`pipeline.transform.silver`, imported, not copied) and MERGEd into its table.

Layout under the lake root (`--lake`, default `Settings.lake_uri`), for prefix P:

    stream/P_pin_table, stream/P_geo_table, stream/P_user_table   data contract §3 columns,
                                       one row per ind, and `_arrival_order`: the row's Kinesis
                                       sequence number
    stream/P_rejected                  unreadable records: source, reason, record (the Kinesis
                                       data as text) and where it came from; partitioned by source
    _checkpoints/stream/P_<table>_table                        one checkpoint per query

Exactly once, with no streaming state: the tables themselves remember what was written.

- repeated ids follow data contract §3.4, the batch job's rule
  (`pipeline.transform.silver.latest_arrival`): the latest arrival wins. One id keeps to one
  shard (records are keyed by id), where the sequence number is arrival order. Within a
  micro-batch the greatest sequence number is kept; across micro-batches the MERGE on `ind`
  inserts a new id and updates a held one only when the incoming sequence number is greater than
  the one stored with the row;
- a batch replayed after a crash changes nothing: rows by `ind` and sequence number, rejected
  records by (stream, shard, sequence number).

Runs unchanged three ways, the session and every endpoint coming from config:

    uv run pinpipe stream [--trigger-seconds 2] [--until-idle 30] ...
    spark-submit pipeline/stream/cli.py --lake ... --prefix ...
    a Databricks Python job with that file and the same parameters: the active session and its
    built-in `kinesis` source are used; our Python source is registered only where none exists.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.listener import (
    QueryIdleEvent,
    QueryProgressEvent,
    QueryStartedEvent,
    QueryTerminatedEvent,
    StreamingQueryListener,
    StreamingQueryProgress,
)
from pyspark.sql.types import StringType, StructField, StructType, TimestampType

from pipeline.config import Settings, get_settings
from pipeline.config.settings import stream_names
from pipeline.lake import StreamPaths
from pipeline.spark_session import get_spark, long_running_options
from pipeline.stream.kinesis_source import ensure_kinesis_source
from pipeline.transform.lake import (
    add_column_if_absent,
    create_empty,
    insert_absent,
    retry_write_conflicts,
    upsert,
)
from pipeline.transform.schemas import SILVER_SCHEMAS, SOURCE_SCHEMAS
from pipeline.transform.silver import (
    ARRIVAL_ORDER,
    CLEANERS,
    REJECTED_COLUMNS,
    is_later_arrival,
    latest_arrival,
    parse_json_column,
    split_rejected,
)

if TYPE_CHECKING:
    from pyspark.sql.streaming.query import StreamingQuery

log = logging.getLogger("pinpipe.stream")

TABLES: tuple[str, ...] = ("pin", "geo", "user")

# Lineage of each record: where it sat in Kinesis and when it arrived there.
STREAM = "_stream"
SHARD = "_shard_id"
SEQUENCE = "_sequence_number"
ARRIVAL = "_arrival_time"
RAW = "_raw"
RECORD_KEY: tuple[str, ...] = (STREAM, SHARD, SEQUENCE)

REJECTED_SCHEMA = StructType(
    [
        *(StructField(name, StringType()) for name in REJECTED_COLUMNS),
        StructField(STREAM, StringType()),
        StructField(SHARD, StringType()),
        StructField(SEQUENCE, StringType()),
        StructField(ARRIVAL, TimestampType()),
    ]
)


# -- pure transformations ------------------------------------------------------------------------


def decode_records(raw: DataFrame, table: str) -> DataFrame:
    """Kinesis rows → the row fields of `table` (explicit schema), the corrupt-record column,
    and lineage columns (`_stream`, `_shard_id`, `_sequence_number`, `_arrival_time`, `_raw`)."""
    text = F.col("data").cast("string")
    records = raw.select(
        text.alias("value"),
        F.col("stream").alias(STREAM),
        F.col("shardId").alias(SHARD),
        F.col("sequenceNumber").alias(SEQUENCE),
        F.col("approximateArrivalTimestamp").alias(ARRIVAL),
        text.alias(RAW),
    )
    return parse_json_column(records, "value", SOURCE_SCHEMAS[table])


def stream_table_schema(table: str) -> StructType:
    """A stream table: the data contract §3 columns, then the row's arrival order (sequence no.)."""
    return StructType([*SILVER_SCHEMAS[table].fields, StructField(ARRIVAL_ORDER, StringType())])


def split_batch(raw: DataFrame, table: str) -> tuple[DataFrame, DataFrame]:
    """One micro-batch of Kinesis rows → (clean rows in data contract §3 columns plus
    `_arrival_order`, one per `ind`, the latest to arrive; rejected records with a reason and the
    data as text)."""
    good, rejected = split_rejected(decode_records(raw, table), table)
    cleaned = CLEANERS[table](good.withColumn(ARRIVAL_ORDER, F.col(SEQUENCE)))
    # ties (one record read twice) cannot differ in content; the shard keeps the choice stable
    latest = latest_arrival(cleaned, "ind", [F.col(SHARD).desc()])
    rejected_rows = rejected.select(
        *(F.col(name) for name in REJECTED_COLUMNS if name != "record"),
        # The data exactly as it came, even when it parsed as something other than an object.
        F.coalesce(F.col(RAW), F.col("record")).alias("record"),
        *(F.col(name) for name in (STREAM, SHARD, SEQUENCE, ARRIVAL)),
    ).select(*REJECTED_SCHEMA.fieldNames())
    return latest.select(*stream_table_schema(table).fieldNames()), rejected_rows


# -- Delta writes (the helpers are the batch job's: `pipeline.transform.lake`) --------------------


def ensure_tables(spark: SparkSession, paths: StreamPaths) -> None:
    """Create the empty tables up front, so concurrent queries never race to create one."""
    for table in TABLES:
        create_empty(spark, stream_table_schema(table), paths.table(table))
        # a table written before rows carried their arrival order gains the column (nulls,
        # which any later arrival overtakes)
        add_column_if_absent(spark, paths.table(table), ARRIVAL_ORDER, "STRING")
    create_empty(spark, REJECTED_SCHEMA, paths.rejected, partitioned_by=["source"])


@retry_write_conflicts
def merge_rows(spark: SparkSession, rows: DataFrame, path: str) -> None:
    """Insert rows of new ids; replace a held row only by a later arrival of its id.

    The rule for repeated ids of data contract §3.4."""
    later = is_later_arrival(F.col(f"source.{ARRIVAL_ORDER}"), F.col(f"target.{ARRIVAL_ORDER}"))
    upsert(spark, rows, path, "ind", replace_when=later)


# Queries commit concurrently to the shared rejected table (different partitions): retried.
@retry_write_conflicts
def insert_new_rejected(spark: SparkSession, rows: DataFrame, path: str, table: str) -> None:
    """Insert rejected records not recorded yet, matched on their Kinesis position."""
    # The literal partition filter keeps each query's MERGE to its own partition.
    insert_absent(spark, rows, path, RECORD_KEY, target_filter=f"target.source = '{table}'")


@dataclass
class BatchWriter:
    """The `foreachBatch` function of one query: clean, then MERGE rows and rejected records."""

    paths: StreamPaths
    table: str

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        spark = batch.sparkSession
        # Read from the source once: both writes and the emptiness check reuse these rows.
        records = batch.persist()
        try:
            rows, rejected = split_batch(records, self.table)
            merge_rows(spark, rows, self.paths.table(self.table))
            if not rejected.isEmpty():
                insert_new_rejected(spark, rejected, self.paths.rejected, self.table)
        finally:
            records.unpersist()


# -- the queries -----------------------------------------------------------------------------------


def kinesis_options(settings: Settings, stream_name: str, initial_position: str) -> dict[str, str]:
    """Databricks' option names; endpoint and credentials only where config has them."""
    options = {
        "streamName": stream_name,
        "initialPosition": initial_position,
        "region": settings.aws_region,
    }
    endpoint = settings.endpoint_url("kinesis")
    if endpoint:
        options["endpoint"] = endpoint
    if settings.aws_access_key_id and settings.aws_secret_access_key:
        options["awsAccessKey"] = settings.aws_access_key_id
        options["awsSecretKey"] = settings.aws_secret_access_key.get_secret_value()
    return options


def start_queries(
    spark: SparkSession,
    settings: Settings,
    paths: StreamPaths,
    streams: Mapping[str, str],
    trigger_seconds: float,
    initial_position: str,
) -> dict[str, StreamingQuery]:
    """Start one query per table: Kinesis → clean → MERGE, each with its own checkpoint."""
    ensure_kinesis_source(spark)
    ensure_tables(spark, paths)
    return {
        table: start_query(spark, settings, paths, streams[table], table, trigger_seconds,
                           initial_position)
        for table in TABLES
    }  # fmt: skip


def start_query(
    spark: SparkSession,
    settings: Settings,
    paths: StreamPaths,
    stream: str,
    table: str,
    trigger_seconds: float,
    initial_position: str,
) -> StreamingQuery:
    """The query of one table; started again on its checkpoint it resumes where it stopped."""
    source = (
        spark.readStream.format("kinesis")
        .options(**kinesis_options(settings, stream, initial_position))
        .load()
    )
    return (
        source.writeStream.queryName(paths.table_name(table))
        .foreachBatch(BatchWriter(paths, table))
        .option("checkpointLocation", paths.checkpoint(table))
        .trigger(processingTime=f"{trigger_seconds} seconds")
        .start()
    )


# Spark gives a Python worker (the Python Kinesis source's runner) a fixed 10 s to connect back;
# on a loaded machine it can miss that. Nothing was read or written: the query is started again on
# its checkpoint rather than the whole job (and its JVM) restarted.
TRANSIENT_QUERY_ERRORS = ("Python worker failed to connect back",)
MAX_QUERY_RESTARTS = 10  # in a row, without a micro-batch in between


def is_transient(error: BaseException | object) -> bool:
    return any(text in str(error) for text in TRANSIENT_QUERY_ERRORS)


# -- running, watching, stopping -------------------------------------------------------------------


class Heartbeat:
    """A JSON file rewritten every second while the job lives: its state (`waiting` for its
    inputs, `starting`, `running`) and each query's progress. The local stack's readiness probe
    and tests read it; a stale file means the process is gone."""

    def __init__(self, path: Path | None, interval_s: float = 1.0) -> None:
        self.path = path
        self.interval_s = interval_s
        self._state: dict[str, object] = {
            "pid": os.getpid(),
            "started_at": _now_iso(),
            "state": "starting",
            "queries": {},
        }
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def update(self, **fields: object) -> None:
        with self._lock:
            self._state.update(fields)

    def snapshot(self) -> dict[str, object]:
        """The state as the file shows it (and the job's /metrics)."""
        with self._lock:
            return dict(self._state)

    def start(self) -> Heartbeat:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._thread.start()
        return self

    def _write(self) -> None:
        assert self.path is not None
        with self._lock:
            state = {**self._state, "updated_at": _now_iso(), "updated_epoch": time.time()}
        partial = self.path.with_name(self.path.name + ".tmp")
        partial.write_text(json.dumps(state, indent=2, default=str))
        partial.replace(self.path)

    def _beat(self) -> None:
        while not self._stop.is_set():
            try:
                self._write()
            except OSError as error:  # a full disk must not stop the stream
                log.warning("heartbeat %s: %s", self.path, error)
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def _missing_inputs(settings: Settings, streams: Mapping[str, str], lake_root: str) -> list[str]:
    """The streams (not ACTIVE) and lake bucket (absent) the job cannot start without."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    missing = []
    kinesis = boto3.client("kinesis", **settings.boto3_kwargs("kinesis"))
    for stream in streams.values():
        status: str
        try:
            summary = kinesis.describe_stream_summary(StreamName=stream)
            status = summary["StreamDescriptionSummary"]["StreamStatus"]
        except (BotoCoreError, ClientError):
            status = "absent"
        if status not in ("ACTIVE", "UPDATING"):
            missing.append(f"stream {stream} ({status.lower()})")
    scheme, _, rest = lake_root.partition("://")
    if scheme in ("s3", "s3a"):
        bucket = rest.split("/", 1)[0]
        try:
            boto3.client("s3", **settings.boto3_kwargs("s3")).head_bucket(Bucket=bucket)
        except (BotoCoreError, ClientError):
            missing.append(f"bucket {bucket}")
    return missing


def wait_for_inputs(
    settings: Settings,
    streams: Mapping[str, str],
    lake_root: str,
    timeout_s: float,
    heartbeat: Heartbeat,
) -> None:
    """Wait until the streams and the lake bucket exist (a job started before provisioning
    finishes, e.g. by hand or on another machine); give up after `timeout_s` with what is
    still missing."""
    deadline = time.monotonic() + timeout_s
    while missing := _missing_inputs(settings, streams, lake_root):
        heartbeat.update(state="waiting", waiting_for=missing)
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up after {timeout_s:g}s waiting for {', '.join(missing)}")
        log.info("waiting for %s", ", ".join(missing))
        time.sleep(2)
    heartbeat.update(state="starting", waiting_for=[])


class ProgressListener(StreamingQueryListener):
    """Input rows per micro-batch of every query, as Spark reports them (no polling)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batches: dict[str, dict[int, int]] = {}  # query id → batch id → input rows
        self._last_input_at: dict[str, float] = {}
        self._last_batch: dict[str, dict[str, object]] = {}  # query id → its latest micro-batch

    def onQueryStarted(self, event: QueryStartedEvent) -> None:
        """Nothing to record."""

    def onQueryProgress(self, event: QueryProgressEvent) -> None:
        progress = event.progress
        rows = int(progress.numInputRows)
        if rows:
            self._keep_last_batch(progress, rows)
            durations = progress.durationMs
            log.info(
                "%s batch %s: %s rows in %.1fs (%s)",
                progress.name,
                progress.batchId,
                rows,
                durations.get("triggerExecution", 0) / 1000,
                ", ".join(f"{step} {ms / 1000:.1f}s" for step, ms in sorted(durations.items())),
            )
            query_id = str(progress.id)
            with self._lock:
                self._batches.setdefault(query_id, {})[int(progress.batchId)] = rows
                self._last_input_at[query_id] = time.monotonic()

    def _keep_last_batch(self, progress: StreamingQueryProgress, rows: int) -> None:
        """What `pinpipe status` shows (through the heartbeat file): the query's latest
        micro-batch that read records."""
        last_batch = {
            "batch_id": int(progress.batchId),
            "time": str(progress.timestamp),
            "input_rows": rows,
            "input_rows_per_second": float(progress.inputRowsPerSecond),
            "processed_rows_per_second": float(progress.processedRowsPerSecond),
            "duration_s": progress.durationMs.get("triggerExecution", 0) / 1000,
        }
        with self._lock:
            self._last_batch[str(progress.id)] = last_batch

    def onQueryIdle(self, event: QueryIdleEvent) -> None:
        """Nothing to record."""

    def onQueryTerminated(self, event: QueryTerminatedEvent) -> None:
        """Failures are read from the query itself."""

    def batches(self, query_id: str) -> dict[int, int]:
        with self._lock:
            return dict(self._batches.get(query_id, {}))

    def last_input_at(self, query_id: str) -> float | None:
        with self._lock:
            return self._last_input_at.get(query_id)

    def last_batch(self, query_id: str) -> dict[str, object] | None:
        """The query's latest micro-batch that read records, if any."""
        with self._lock:
            return self._last_batch.get(query_id)


@dataclass
class StreamReport:
    """What a run did, per table: micro-batches with input, and input rows."""

    batches: dict[str, int]
    input_rows: dict[str, int]
    stopped_because: str


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


class StreamJob:
    """The three running queries, their progress, and when to stop them."""

    def __init__(
        self,
        queries: Mapping[str, StreamingQuery],
        listener: ProgressListener,
        heartbeat: Heartbeat,
        stop_requested: threading.Event,
        restart: Callable[[str], StreamingQuery] | None = None,
    ) -> None:
        self.queries = dict(queries)
        self.listener = listener
        self.heartbeat = heartbeat
        self.stop_requested = stop_requested
        self.restart = restart  # starts one table's query again
        self.restarts: dict[str, int] = dict.fromkeys(self.queries, 0)
        self.started = time.monotonic()
        # fixed for a query's run: ask the JVM once
        self.names = {table: {"name": q.name, "id": str(q.id), "run_id": str(q.runId)}
                      for table, q in self.queries.items()}  # fmt: skip

    def batches(self, table: str) -> dict[int, int]:
        """Micro-batches of `table` with input since the start: batch id → input rows."""
        return self.listener.batches(self.names[table]["id"])

    def _check_alive(self) -> None:
        for table, query in list(self.queries.items()):
            error = query.exception()
            if error is not None and self._restart_after(table, error):
                continue
            if error is not None:
                raise RuntimeError(f"stream query {table} failed: {error}") from error
            if self.restarts.get(table) and query.lastProgress is not None:
                self.restarts[table] = 0  # it ran a micro-batch: the count is of failures in a row
            if not query.isActive:
                raise RuntimeError(f"stream query {table} stopped unexpectedly")

    def _restart_after(self, table: str, error: object) -> bool:
        """Start `table`'s query again after a transient failure; False if it is not one."""
        if self.restart is None or not is_transient(error):
            return False
        if self.restarts[table] >= MAX_QUERY_RESTARTS:
            return False
        self.restarts[table] += 1
        log.warning(
            "stream query %s failed (%s); starting it again on its checkpoint (%d in a row, of %d)",
            table,
            str(error).splitlines()[0],
            self.restarts[table],
            MAX_QUERY_RESTARTS,
        )
        # each attempt starts a Python process: back off, so a loaded machine gets its breath
        if self.stop_requested.wait(min(30.0, 2.0 ** self.restarts[table])):
            return True  # asked to stop meanwhile: start nothing, the watch loop stops
        query = self.restart(table)
        self.queries[table] = query
        self.names[table] = {"name": query.name, "id": str(query.id), "run_id": str(query.runId)}
        return True

    def idle_for(self) -> float:
        """Seconds since the last micro-batch with input, if no query is busy right now."""
        busy = any(
            query.status.get("isTriggerActive") or query.status.get("isDataAvailable")
            for query in self.queries.values()
        )
        if busy:
            return 0.0
        inputs = [self.listener.last_input_at(names["id"]) for names in self.names.values()]
        latest = max([self.started, *(moment for moment in inputs if moment is not None)])
        return time.monotonic() - latest

    def publish(self) -> None:
        self.heartbeat.update(
            state="running",
            queries={
                table: {
                    **self.names[table],
                    "active": query.isActive,
                    "restarts": self.restarts.get(table, 0),
                    "batches_with_input": len(batches),
                    "last_batch_id": max(batches, default=None),
                    "input_rows": sum(batches.values()),
                    "last_batch": self.listener.last_batch(self.names[table]["id"]),
                }
                for table, query in self.queries.items()
                for batches in [self.batches(table)]
            },
        )

    def watch(self, until_idle_s: float | None, timeout_s: float | None) -> str:
        """Block until asked to stop, idle for `until_idle_s`, or `timeout_s`; return why."""
        while True:
            self._check_alive()
            self.publish()
            if self.stop_requested.is_set():
                return "signal"
            if timeout_s is not None and time.monotonic() - self.started >= timeout_s:
                return "timeout"
            if until_idle_s is not None and self.idle_for() >= until_idle_s:
                return "idle"
            self.stop_requested.wait(1.0)

    def stop(self) -> None:
        for query in self.queries.values():
            try:
                query.stop()
            except Exception as error:  # the JVM may already be going down with us
                log.warning("stopping %s: %s", query.name, error)

    def report(self, reason: str) -> StreamReport:
        batches = {table: self.batches(table) for table in self.queries}
        return StreamReport(
            batches={table: len(found) for table, found in batches.items()},
            input_rows={table: sum(found.values()) for table, found in batches.items()},
            stopped_because=reason,
        )


def run(
    lake_root: str | None = None,
    prefix: str | None = None,
    trigger_seconds: float = 2.0,
    initial_position: str = "trim_horizon",
    until_idle_s: float | None = None,
    timeout_s: float | None = None,
    progress_file: Path | None = None,
    wait_for_inputs_s: float = 300.0,
    settings: Settings | None = None,
    metrics_port: int | None = None,
) -> StreamReport:
    """Run the streaming job until stopped (SIGTERM/SIGINT), idle, or out of time.

    `metrics_port` (default: the settings'; 0 for none) serves the progress as Prometheus
    metrics; never on Databricks, where the platform shows the queries.
    """
    from pipeline.spark_session import on_databricks

    settings = settings or get_settings()
    prefix = prefix or settings.topic_prefix
    streams = stream_names(prefix)
    paths = StreamPaths(lake_root or settings.lake_uri, prefix)
    heartbeat = Heartbeat(progress_file).start()
    port = settings.stream_metrics_port if metrics_port is None else metrics_port
    metrics_server = None
    if port and not on_databricks():
        host = settings.stream_metrics_host
        try:
            # prometheus-client comes with the `api` extra, which the local venv and the spark
            # image carry; a bare `pinpipe[spark]` install runs the stream without /metrics
            from pipeline.stream.metrics import serve_metrics

            metrics_server, _ = serve_metrics(heartbeat.snapshot, port, host)
            metrics_url = f"http://{host}:{port}/metrics"
            heartbeat.update(metrics_url=metrics_url)  # `pinpipe status` links it from there
            log.info("metrics: %s", metrics_url)
        except (ImportError, OSError) as error:  # the stream matters more: say so, go on
            log.warning("no /metrics on %s:%d: %s", host, port, error)
    stop_requested = threading.Event()

    starting = True  # until the queries start: nothing is in flight then

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping the stream queries", signum)
        stop_requested.set()
        if starting:
            # no query runs yet, so nothing to finish: leave now, not after Spark's start-up
            # (tens of seconds on a busy machine)
            raise SystemExit(0)

    def handle_stop_signals() -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, request_stop)
            signal.signal(signal.SIGINT, request_stop)

    handle_stop_signals()
    try:
        if not on_databricks():  # there the platform provisions, and may use other credentials
            wait_for_inputs(settings, streams, paths.root, wait_for_inputs_s, heartbeat)
        spark = get_spark("pinpipe-stream", settings, long_running_options(settings))
        # SparkContext installs its own SIGINT handler (cancel every job, KeyboardInterrupt);
        # the stack stops this job with SIGINT (its JVM ignores it): stop the queries instead
        handle_stop_signals()
        if stop_requested.is_set():  # asked to stop while Spark was starting
            return StreamReport(batches={}, input_rows={}, stopped_because="signal")
        starting = False
        # its port is the first free one from 4040: `pinpipe status` reads it from here
        heartbeat.update(spark_ui=spark.sparkContext.uiWebUrl)
        listener = ProgressListener()
        spark.streams.addListener(listener)  # before the queries start: no event missed
        queries = start_queries(spark, settings, paths, streams, trigger_seconds, initial_position)
        job = StreamJob(
            queries,
            listener,
            heartbeat,
            stop_requested,
            restart=lambda table: start_query(
                spark, settings, paths, streams[table], table, trigger_seconds, initial_position
            ),
        )
        reason = "error"
        try:
            reason = job.watch(until_idle_s, timeout_s)
        finally:
            job.stop()
        report = job.report(reason)
        spark.streams.removeListener(listener)
        return report
    finally:
        heartbeat.stop()
        if metrics_server is not None:
            metrics_server.shutdown()


def report_json(report: StreamReport) -> str:
    return json.dumps(report.__dict__, sort_keys=True)
