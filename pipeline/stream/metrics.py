"""The stream job's progress as Prometheus metrics, the way the API exposes its own.

The figures are the heartbeat's (one snapshot of what the query listener saw), so `/metrics`,
the heartbeat file and `pinpipe status` never disagree. Served on 127.0.0.1 by default: like the
Spark UI it is for the machine's operator, not the network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

STATES = ("waiting", "starting", "running")


def _epoch(moment: object) -> float | None:
    try:
        return datetime.fromisoformat(str(moment)).timestamp()
    except ValueError:
        return None


class StreamProgressCollector(Collector):
    """Metrics of one heartbeat snapshot, taken at scrape time."""

    def __init__(self, snapshot: Callable[[], Mapping[str, Any]]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        state = self.snapshot()
        queries: Mapping[str, Mapping[str, Any]] = state.get("queries") or {}

        job_state = GaugeMetricFamily(
            "pinpipe_stream_state", "1 for the job's current state", labels=["state"]
        )
        for name in STATES:
            job_state.add_metric([name], 1.0 if state.get("state") == name else 0.0)
        yield job_state

        active = GaugeMetricFamily(
            "pinpipe_stream_query_active", "1 while the table's query runs", labels=["table"]
        )
        restarts = GaugeMetricFamily(
            "pinpipe_stream_query_restarts",
            "Restarts of the table's query after transient failures, in a row",
            labels=["table"],
        )
        rows = CounterMetricFamily(
            "pinpipe_stream_input_rows",
            "Records read from the table's Kinesis stream since the job started",
            labels=["table"],
        )
        batches = CounterMetricFamily(
            "pinpipe_stream_batches_with_input",
            "Micro-batches that read records since the job started",
            labels=["table"],
        )
        last = {
            "batch_id": GaugeMetricFamily(
                "pinpipe_stream_last_batch_id",
                "Id of the latest micro-batch that read records",
                labels=["table"],
            ),
            "input_rows": GaugeMetricFamily(
                "pinpipe_stream_last_batch_input_rows",
                "Records the latest micro-batch read",
                labels=["table"],
            ),
            "duration_s": GaugeMetricFamily(
                "pinpipe_stream_last_batch_duration_seconds",
                "Wall time of the latest micro-batch (trigger execution)",
                labels=["table"],
            ),
            "input_rows_per_second": GaugeMetricFamily(
                "pinpipe_stream_last_batch_input_rows_per_second",
                "Input rate Spark reported for the latest micro-batch",
                labels=["table"],
            ),
            "processed_rows_per_second": GaugeMetricFamily(
                "pinpipe_stream_last_batch_processed_rows_per_second",
                "Processing rate Spark reported for the latest micro-batch",
                labels=["table"],
            ),
        }
        last_time = GaugeMetricFamily(
            "pinpipe_stream_last_batch_timestamp_seconds",
            "When the latest micro-batch that read records started (Unix time)",
            labels=["table"],
        )
        for table, query in sorted(queries.items()):
            active.add_metric([table], 1.0 if query.get("active") else 0.0)
            restarts.add_metric([table], float(query.get("restarts") or 0))
            rows.add_metric([table], float(query.get("input_rows") or 0))
            batches.add_metric([table], float(query.get("batches_with_input") or 0))
            batch = query.get("last_batch")
            if not batch:
                continue
            for key, family in last.items():
                family.add_metric([table], float(batch[key]))
            started = _epoch(batch.get("time"))
            if started is not None:
                last_time.add_metric([table], started)
        yield from (active, restarts, rows, batches, *last.values(), last_time)


def serve_metrics(
    snapshot: Callable[[], Mapping[str, Any]], port: int, host: str = "127.0.0.1"
) -> tuple[WSGIServer, Thread]:
    """Serve `/metrics` of `snapshot` (and the driver process's own) from a daemon thread."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    registry.register(StreamProgressCollector(snapshot))
    return start_http_server(port, addr=host, registry=registry)
