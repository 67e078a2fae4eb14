"""Prometheus metrics of the API, in a registry of its own (one per app, so tests can build many).

The server runs one gunicorn worker with threads, so the process's registry is the whole truth.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from pipeline.ingest.kafka import KafkaDelivery

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.requests = Counter(
            "pinpipe_api_requests_total",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pinpipe_api_request_duration_seconds",
            "Time from request start to response, by route and method",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.records = Counter(
            "pinpipe_api_records_total",
            "Records by sink (kafka, kinesis), table and outcome "
            "(written, replayed, rejected, failed)",
            ["sink", "table", "outcome"],
            registry=self.registry,
        )
        self.errors = Counter(
            "pinpipe_api_errors_total",
            "Error responses by route and REST Proxy error code",
            ["route", "error_code"],
            registry=self.registry,
        )
        self.delivery = Histogram(
            "pinpipe_api_delivery_duration_seconds",
            "Time the sink took to acknowledge a request's records",
            ["sink"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

        self.in_flight = Gauge(
            "pinpipe_api_sink_requests_in_flight",
            "Requests currently using a sink (Kafka or Kinesis): at most --threads",
            registry=self.registry,
        )

        self.kafka_queue = Gauge(
            "pinpipe_api_kafka_producer_queue_messages",
            "Records in the Kafka producer's queue: produced, not yet acknowledged or failed",
            registry=self.registry,
        )
        self.kafka_record_latency = Histogram(
            "pinpipe_api_kafka_record_delivery_seconds",
            "Per record, from produce() to the broker's acknowledgement (librdkafka's latency)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def watch_kafka(self, delivery: KafkaDelivery) -> None:
        """Read the producer's queue depth at each scrape; observe each record's delivery."""
        self.kafka_queue.set_function(lambda: float(delivery.queue_depth()))
        delivery.on_latency = self.kafka_record_latency.observe

    def render(self) -> bytes:
        return generate_latest(self.registry)
