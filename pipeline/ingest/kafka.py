"""Kafka delivery: one idempotent producer per process; a request waits for its own acks.

The producer is created lazily (gunicorn forks workers; librdkafka threads do not survive a fork)
with `acks=all` and idempotence, and a background thread serves its delivery reports. A request
hands its records to librdkafka, then waits until the broker acknowledged every one of them or
the deadline passed. `message.timeout.ms` equals the request timeout, so records of a request that
got 503 are not delivered long after the client gave up (they may have been, just before: the
contract is at-least-once and the client retries).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from pipeline.config import Settings

log = logging.getLogger(__name__)

METADATA_TTL_S = 60.0
# The producer's message.max.bytes (librdkafka's default, set explicitly so the API's own check
# uses the same number). librdkafka refuses a record whose key + value + headers + the maximum
# v2 record overhead (RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD: 36 bytes) exceed it.
MESSAGE_MAX_BYTES = 1_000_000
RECORD_OVERHEAD_BYTES = 36
MAX_KEY_AND_VALUE_BYTES = MESSAGE_MAX_BYTES - RECORD_OVERHEAD_BYTES
# After a purge, librdkafka's threads hand over the purged records' reports quickly.
PURGE_REPORTS_TIMEOUT_S = 1.0


class KafkaUnavailable(Exception):
    """The broker did not answer in time (or answered with a retriable error): HTTP 503."""


class KafkaFailed(Exception):
    """The broker rejected records for a reason a retry will not fix: HTTP 500."""


class TopicNotFound(Exception):
    pass


class RecordTooLarge(Exception):
    """The producer or the broker refused a record as too large: HTTP 413."""


# The producer's own size check and the broker's (record batch over the topic's
# max.message.bytes) report the same code.
_TOO_LARGE = {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE}


class OutgoingRecord(NamedTuple):
    value: bytes
    key: bytes | None = None
    partition: int | None = None


@dataclass
class PendingBatch:
    """Delivery reports of one request's records, filled in by the poll thread.

    Records produced as one batch to one partition report through `in_order`: librdkafka emits
    the delivery reports of a partition in produce order, so the n-th report belongs to the n-th
    record of `order`. That is one bound method for the whole request instead of a closure per
    record. Other records (keyed, with a partition, or retried) report through `reporter(i)`.
    """

    size: int
    results: list[tuple[int, int] | None] = field(init=False)
    errors: list[KafkaError | None] = field(init=False)
    order: list[int] = field(default_factory=list)
    arrivals: list[tuple[KafkaError | None, int, int]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    # each acknowledged record's produce-to-ack time (librdkafka's), for the API's metrics
    on_latency: Callable[[float], None] | None = None
    _remaining: int = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.results = [None] * self.size
        self.errors = [None] * self.size
        self._remaining = self.size
        if self.size == 0:
            self.done.set()

    def _count(self, message: Message) -> None:
        if self.on_latency is not None and (latency := message.latency()) is not None:
            self.on_latency(latency)
        with self._lock:
            self._remaining -= 1
            if self._remaining == 0:
                self.done.set()

    def in_order(self, error: KafkaError | None, message: Message) -> None:
        self.arrivals.append((error, cast(int, message.partition()), cast(int, message.offset())))
        self._count(message)

    def reporter(self, index: int) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is None:
                self.results[index] = (cast(int, message.partition()), cast(int, message.offset()))
            else:
                self.errors[index] = error
            self._count(message)

        return on_delivery

    def settle(self) -> None:
        """Assign the in-order reports received so far to their records."""
        for index, (error, partition, offset) in zip(self.order, list(self.arrivals), strict=False):
            if error is None:
                self.results[index] = (partition, offset)
            else:
                self.errors[index] = error

    @property
    def unacknowledged(self) -> int:
        return sum(result is None for result in self.results)


# Errors that mean "the broker is away or busy": a retry later will succeed.
_RETRIABLE = {
    KafkaError._MSG_TIMED_OUT,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._PURGE_QUEUE,
    KafkaError._PURGE_INFLIGHT,
    KafkaError.NOT_ENOUGH_REPLICAS,
    KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.REQUEST_TIMED_OUT,
}


class KafkaDelivery:
    """The process's producer, its poll thread, and a small topic metadata cache."""

    def __init__(self, settings: Settings, timeout_s: float | None = None) -> None:
        self.settings = settings
        self.timeout_s = timeout_s if timeout_s is not None else settings.api_timeout_s
        self._producer: Producer | None = None
        self._fatal = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._partitions: dict[str, tuple[int, float]] = {}
        self._round_robin = itertools.count()
        self.on_latency: Callable[[float], None] | None = None  # see PendingBatch.on_latency

    # -- producer lifecycle --------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        timeout_ms = max(int(self.timeout_s * 1000), 1)
        return {
            **self.settings.kafka_client_config(),
            "acks": "all",
            "enable.idempotence": True,
            "message.timeout.ms": timeout_ms,
            "message.max.bytes": MESSAGE_MAX_BYTES,
            # a batched request fills a batch at once; single-record posts gain little from waiting
            "linger.ms": 2,
            # keyed records land where Confluent REST Proxy (a Java client) would put them
            "partitioner": "murmur2_random",
            # come back quickly after a broker restart (default backs off up to 10 s)
            "reconnect.backoff.max.ms": 1000,
            "socket.connection.setup.timeout.ms": max(timeout_ms, 1000),
            "error_cb": self._on_error,
            "logger": log,
        }

    def producer(self) -> Producer:
        with self._lock:
            if self._producer is not None and self._fatal:
                log.warning("kafka producer hit a fatal error; replacing it")
                self._close_producer(0)
            if self._producer is None:
                self._fatal = False
                self._producer = Producer(self.config())
                if self._poller is None or not self._poller.is_alive():
                    self._stop.clear()
                    self._poller = threading.Thread(
                        target=self._poll_loop, name="kafka-delivery-reports", daemon=True
                    )
                    self._poller.start()
            return self._producer

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            producer = self._producer
            if producer is None:
                time.sleep(0.05)
                continue
            try:
                producer.poll(0.1)
            except Exception:  # a callback must never kill the thread that serves the others
                log.exception("kafka delivery report handling failed")

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            log.error("kafka fatal error: %s", error)
            self._fatal = True
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            log.warning("kafka: all brokers down (%s)", error)
        else:
            log.info("kafka: %s", error)

    def _close_producer(self, flush_timeout_s: float) -> int:
        producer, self._producer = self._producer, None
        if producer is None:
            return 0
        remaining: int = producer.flush(flush_timeout_s)
        if remaining:
            # A broker that is gone would be retried until message.timeout.ms; drop the records
            # now instead. Their delivery reports (_PURGE_*) make any request still waiting for
            # them answer 503, never 2xx.
            producer.purge()
            producer.flush(PURGE_REPORTS_TIMEOUT_S)
        return remaining

    def close(self, flush_timeout_s: float | None = None) -> int:
        """Deliver what is queued (graceful shutdown) within `flush_timeout_s` (default: the
        request timeout), then drop the rest and stop the poll thread; returns undelivered."""
        with self._lock:
            self._stop.set()
            remaining = self._close_producer(
                self.timeout_s if flush_timeout_s is None else flush_timeout_s
            )
        if self._poller is not None:
            self._poller.join(timeout=2)
            self._poller = None
        log.log(
            logging.ERROR if remaining else logging.INFO,
            "kafka producer closed; %d records undelivered",
            remaining,
        )
        return remaining

    def queue_depth(self) -> int:
        """Records produced and not yet acknowledged or failed (librdkafka's queue)."""
        producer = self._producer
        return len(producer) if producer is not None else 0

    # -- metadata ------------------------------------------------------------------------------
    def partitions(self, topic: str) -> int:
        """Partition count of `topic`; raises TopicNotFound or KafkaUnavailable."""
        cached = self._partitions.get(topic)
        now = time.monotonic()
        if cached and now - cached[1] < METADATA_TTL_S:
            return cached[0]
        try:
            metadata = self.producer().list_topics(topic, timeout=self.timeout_s)
        except KafkaException as error:
            raise KafkaUnavailable(f"Kafka metadata request failed: {error}") from error
        found = metadata.topics.get(topic)
        if found is None or (
            found.error is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        ):
            self._partitions.pop(topic, None)
            raise TopicNotFound(topic)
        if found.error is not None or not found.partitions:
            raise KafkaUnavailable(f"Kafka metadata of {topic}: {found.error}")
        self._partitions[topic] = (len(found.partitions), now)
        return len(found.partitions)

    def check(self) -> str:
        """Readiness: brokers answer and every configured topic exists."""
        try:
            metadata = self.producer().list_topics(timeout=min(self.timeout_s, 3.0))
        except KafkaException as error:
            raise KafkaUnavailable(
                f"no answer from {self.settings.kafka_bootstrap_servers}: {error}"
            ) from error
        missing = [t for t in self.settings.topics.values() if t not in metadata.topics]
        if missing:
            raise TopicNotFound(", ".join(missing))
        return f"{len(metadata.brokers)} broker(s), topics present"

    # -- produce ---------------------------------------------------------------------------------
    def send(self, topic: str, records: Sequence[OutgoingRecord], deadline: float) -> PendingBatch:
        """Hand records to librdkafka (waiting for queue space up to `deadline`)."""
        producer = self.producer()
        batch = PendingBatch(len(records), on_latency=self.on_latency)
        batch_partition: int | None = None
        if any(record.partition is not None for record in records):
            # produce_batch ignores a per-message partition: records that name one go one by one
            for index, record in enumerate(records):
                self._produce_one(producer, topic, index, record, batch.reporter(index), deadline)
            return batch
        if any(record.key is not None for record in records):
            # keyed records go where the partitioner puts them; each reports for itself
            messages: list[dict[str, Any]] = [
                {"value": record.value, "key": record.key, "callback": batch.reporter(index)}
                if record.key is not None
                else {"value": record.value, "callback": batch.reporter(index)}
                for index, record in enumerate(records)
            ]
            queued = self._produce_batch(producer, topic, messages)
        else:
            # The common case: no keys. The whole request goes to one partition (round robin
            # over requests), in one call: a produce() per record would hand the GIL back and
            # forth with the delivery-report thread hundreds of times.
            batch_partition = next(self._round_robin) % self.partitions(topic)
            messages = [{"value": record.value} for record in records]
            queued = self._produce_batch(producer, topic, messages, batch_partition, batch.in_order)
            batch.order = [i for i, message in enumerate(messages) if "_error" not in message]
        if queued < len(messages):  # refused ones carry `_error` (queue full): one by one
            for index, message in enumerate(messages):
                if "_error" in message:
                    record = records[index]
                    if batch_partition is not None:
                        record = record._replace(partition=batch_partition)
                    self._produce_one(
                        producer, topic, index, record, batch.reporter(index), deadline
                    )
        return batch

    @staticmethod
    def _produce_batch(
        producer: Producer,
        topic: str,
        messages: list[dict[str, Any]],
        partition: int = -1,
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    ) -> int:
        try:
            queued: int = producer.produce_batch(
                topic, messages, partition=partition, on_delivery=on_delivery
            )
        except KafkaException as error:  # raised before anything is queued
            raise _refused("the records", error) from error
        return queued

    def _produce_one(
        self,
        producer: Producer,
        topic: str,
        index: int,
        record: OutgoingRecord,
        on_delivery: Callable[[KafkaError | None, Message], None],
        deadline: float,
    ) -> None:
        partition = -1 if record.partition is None else record.partition  # -1: partitioner
        while True:
            try:
                producer.produce(topic, record.value, record.key, partition, on_delivery)
                return
            except BufferError:  # local queue full: let the poll thread drain it
                if time.monotonic() >= deadline:
                    raise KafkaUnavailable(
                        f"Kafka producer queue stayed full for {self.timeout_s:g}s"
                    ) from None
                time.sleep(0.01)
            except KafkaException as error:
                raise _refused(f"record {index}", error) from error

    def wait(self, topic: str, batch: PendingBatch, deadline: float) -> list[tuple[int, int]]:
        """Partition and offset of each record, once the broker acknowledged all of them."""
        batch.done.wait(max(deadline - time.monotonic(), 0.0))
        batch.settle()
        failed = [error for error in batch.errors if error is not None]
        if not batch.done.is_set() or any(e.code() in _RETRIABLE or e.retriable() for e in failed):
            first = f" ({failed[0].str()})" if failed else ""
            raise KafkaUnavailable(
                f"Kafka did not acknowledge {batch.unacknowledged} of {batch.size} records "
                f"within {self.timeout_s:g}s{first}; the broker may be unreachable. "
                "Retry later (records of this request may have been written)."
            )
        if failed:
            if any(e.code() == KafkaError.UNKNOWN_TOPIC_OR_PART for e in failed):
                self._partitions.pop(topic, None)
                raise TopicNotFound(topic)
            too_large = [
                (index, e) for index, e in enumerate(batch.errors) if e and e.code() in _TOO_LARGE
            ]
            if too_large:
                index, refusal = too_large[0]
                raise RecordTooLarge(
                    f"Kafka refused {len(too_large)} of {batch.size} records as too large "
                    f"(first: record {index}, {refusal.str()}): over the broker's or topic's "
                    "message size limit (max.message.bytes)"
                )
            raise KafkaFailed(f"Kafka rejected {len(failed)} records: {failed[0].str()}")
        return [result for result in batch.results if result is not None]

    def produce(self, topic: str, records: Sequence[OutgoingRecord]) -> list[tuple[int, int]]:
        deadline = time.monotonic() + self.timeout_s
        return self.wait(topic, self.send(topic, records, deadline), deadline)


def _refused(what: str, error: KafkaException) -> Exception:
    """A produce call the producer refused: too large (413) or anything else (500)."""
    if error.args and isinstance(error.args[0], KafkaError) and error.args[0].code() in _TOO_LARGE:
        return RecordTooLarge(
            f"Kafka producer refused {what} as too large: key + value + {RECORD_OVERHEAD_BYTES} "
            f"bytes of record overhead must stay within {MESSAGE_MAX_BYTES} bytes ({error})"
        )
    return KafkaFailed(f"Kafka refused {what}: {error}")
