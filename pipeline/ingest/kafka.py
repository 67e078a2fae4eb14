"""Kafka delivery: one transactional producer per process; records visible only once answered.

Every produce request becomes a job on a queue. One transaction thread takes every job queued
while its previous commit ran (group commit), produces their records in one Kafka transaction,
waits for the broker's acks (acks=all, idempotence), writes the answers of requests that carried
an Idempotency-Key to the requests topic in the same transaction, commits, and only then answers
each request 200 with its offsets. Any failure aborts the transaction: every request of the group
gets 503 (or its own 4xx) and none of their records is ever visible to a read_committed consumer
(the S3 sink, the reconciliation), so a client's retry cannot create a duplicate there.

The producer has a stable `transactional.id` (`Settings.api_transaction_id`). Creating it calls
`init_transactions()`, which fences a killed predecessor and aborts the transaction it left open
(so read_committed readers do not wait for transaction.timeout.ms), then the committed answers are
read back (`idempotency.CommittedAnswers`). A fatal producer error (fenced, ...) replaces the
producer; an abortable one aborts the group. The producer is created lazily (gunicorn forks
workers; librdkafka threads do not survive a fork).
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from pipeline.config import Settings
from pipeline.ingest.idempotency import (
    Answer,
    AnswersUnavailable,
    CommittedAnswers,
    IdempotencyKey,
    KeyReused,
    encode_answer,
    record_key,
)

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
# Idempotency-Key answers that could not be read (topic missing, broker away) are tried again
# after this long; meanwhile keyed requests get 503.
ANSWERS_RETRY_S = 10.0


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


class Job:
    """One produce request on its way through the transaction thread.

    `state` moves queued -> taken (by the transaction thread) or queued -> cancelled (by its
    request, whose deadline passed before the thread got to it): a cancelled job is never
    produced, a taken one is always resolved (answer or error) by the thread.
    """

    def __init__(
        self,
        topic: str,
        records: Sequence[OutgoingRecord],
        deadline: float,
        idempotency: IdempotencyKey | None = None,
    ) -> None:
        self.topic = topic
        self.records = records
        self.deadline = deadline
        self.idempotency = idempotency
        self.state = "queued"
        self.retries = 0  # an innocent job of an aborted group is tried again once
        self.batch: PendingBatch | None = None
        self.offsets: list[tuple[int, int]] | None = None
        self.replayed = False
        self.error: Exception | None = None
        self.done = threading.Event()
        self._lock = threading.Lock()

    @property
    def answer_key(self) -> bytes | None:
        return None if self.idempotency is None else record_key(self.topic, self.idempotency.key)

    def take(self) -> bool:
        with self._lock:
            if self.state != "queued":
                return False
            self.state = "taken"
            return True

    def cancel(self) -> bool:
        """The request gives up: True unless the thread already took the job."""
        with self._lock:
            if self.state != "queued":
                return False
            self.state = "cancelled"
            return True

    def succeed(self, offsets: Sequence[tuple[int, int]], replayed: bool = False) -> None:
        self.offsets = list(offsets)
        self.replayed = replayed
        self.done.set()

    def fail(self, error: Exception) -> None:
        self.error = error
        self.done.set()


@dataclass
class GroupPlan:
    """What a group of jobs needs: produce some, answer some from committed answers, keep some
    for the next group (a second request with a key already in this group waits its outcome)."""

    produce: list[Job] = field(default_factory=list)
    answered: list[Job] = field(default_factory=list)
    later: list[Job] = field(default_factory=list)


def plan_group(jobs: Sequence[Job], answers: CommittedAnswers | None) -> GroupPlan:
    """Resolve the keyed jobs whose key is already committed (same records: the stored answer;
    other records: KeyReused), defer a key's second job in the same group, produce the rest.
    `answers` None means they could not be read: keyed jobs fail with AnswersUnavailable."""
    plan = GroupPlan()
    keys_in_group: set[bytes] = set()
    for job in jobs:
        key = job.answer_key
        if key is None or job.idempotency is None:
            plan.produce.append(job)
            continue
        if answers is None:
            job.fail(AnswersUnavailable("the committed Idempotency-Key answers are not loaded"))
            plan.answered.append(job)
            continue
        if key in keys_in_group:
            plan.later.append(job)
            continue
        committed = answers.get(key)
        if committed is None:
            keys_in_group.add(key)
            plan.produce.append(job)
        elif committed.fingerprint == job.idempotency.fingerprint:
            job.succeed(committed.offsets, replayed=True)
            plan.answered.append(job)
        else:
            job.fail(
                KeyReused(
                    f"Idempotency-Key {job.idempotency.key!r} was already used for other "
                    f"records on {job.topic}; a key identifies one request (send a new key for "
                    "new records)"
                )
            )
            plan.answered.append(job)
    return plan


def blame(jobs: Sequence[Job]) -> tuple[list[Job], list[Job]]:
    """After a failed group: (jobs whose own records were refused for a reason a retry will not
    fix, the others). With any retriable failure (broker away, timeout) nobody is to blame: the
    whole group gets 503."""
    if any(isinstance(job.error, KafkaUnavailable) for job in jobs):
        return [], list(jobs)
    guilty = [job for job in jobs if job.error is not None]
    return guilty, [job for job in jobs if job.error is None]


class KafkaDelivery:
    """The process's transactional producer, its transaction and poll threads, and a small topic
    metadata cache."""

    def __init__(self, settings: Settings, timeout_s: float | None = None) -> None:
        self.settings = settings
        self.timeout_s = timeout_s if timeout_s is not None else settings.api_timeout_s
        self._producer: Producer | None = None
        self._initialized = False  # init_transactions() done on the current producer
        self._fatal = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._partitions: dict[str, tuple[int, float]] = {}
        self._round_robin = itertools.count()
        self.on_latency: Callable[[float], None] | None = None  # see PendingBatch.on_latency
        self.answers = CommittedAnswers(settings.api_idempotency_hours * 3600)
        self._answers_current = False  # read up to the end since the producer's init
        self._answers_retry_at = 0.0
        self._jobs: queue.Queue[Job] = queue.Queue()
        self._later: list[Job] = []
        self._committer: threading.Thread | None = None
        self._closing = threading.Event()
        # tests: set to hold the transaction thread just before commit (see also the setting
        # api_pause_before_commit_s, for an API in another process)
        self.before_commit: Callable[[], None] | None = None

    # -- producer lifecycle --------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        timeout_ms = max(int(self.timeout_s * 1000), 1)
        return {
            **self.settings.kafka_client_config(),
            "acks": "all",
            "enable.idempotence": True,
            "transactional.id": self.settings.api_transaction_id,
            # The broker aborts a transaction left open this long (a dead API that nobody
            # restarts): read_committed readers wait at most that. A group's produce, commit
            # and abort each take at most the request timeout.
            "transaction.timeout.ms": max(4 * timeout_ms, 10_000),
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
                self._initialized = False
                self._producer = Producer(self.config())
                if self._poller is None or not self._poller.is_alive():
                    self._stop.clear()
                    self._poller = threading.Thread(
                        target=self._poll_loop, name="kafka-delivery-reports", daemon=True
                    )
                    self._poller.start()
            return self._producer

    def _transactional(self, deadline: float) -> Producer:
        """The producer, its transactions initialised and the committed answers read (transaction
        thread only). Raises KafkaUnavailable when the broker does not answer in time."""
        producer = self.producer()
        if not self._initialized:
            try:
                # fences a predecessor with this transactional.id, aborting its open transaction
                producer.init_transactions(max(deadline - time.monotonic(), 1.0))
            except KafkaException as error:
                if _kafka_error(error).fatal():
                    self._fatal = True
                raise KafkaUnavailable(
                    f"Kafka transactions could not be initialised: {error}; retry later "
                    "(nothing of this request was written)"
                ) from error
            self._initialized = True
            self._answers_current = False
            self._answers_retry_at = 0.0
            log.info(
                "kafka transactions initialised (transactional.id %s)",
                self.settings.api_transaction_id,
            )
        if not self._answers_current and time.monotonic() >= self._answers_retry_at:
            # a missing topic costs a consumer per try: at most one try per ANSWERS_RETRY_S
            self._answers_retry_at = time.monotonic() + ANSWERS_RETRY_S
            try:
                read = self.answers.catch_up(
                    self.settings.kafka_client_config(),
                    self.settings.api_requests_topic,
                    max(deadline - time.monotonic(), 1.0),
                )
                self._answers_current = True
                log.info("read %d committed Idempotency-Key answers", read)
            except AnswersUnavailable as error:
                log.warning("Idempotency-Key answers unavailable: %s", error)
        return producer

    def _discard_producer(self) -> None:
        """Drop a producer whose transaction state is unknown; the next group creates a new
        one, whose init_transactions aborts (or completes) what this one left."""
        with self._lock:
            self._close_producer(0)

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
        self._initialized = False
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
        """Graceful shutdown: the transaction thread finishes (commits or aborts) the group it
        holds and answers what is queued, within `flush_timeout_s` (default: the request
        timeout) plus a commit; then the producer is closed. Returns the records undelivered."""
        wait_s = self.timeout_s if flush_timeout_s is None else flush_timeout_s
        self._closing.set()
        committer = self._committer
        if committer is not None:
            committer.join(timeout=wait_s + self.timeout_s)
            if committer.is_alive():
                log.error("the transaction thread did not finish; its transaction stays open")
        with self._lock:
            self._stop.set()
            remaining = self._close_producer(wait_s)
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
        wanted = [*self.settings.topics.values(), self.settings.api_requests_topic]
        missing = [t for t in wanted if t not in metadata.topics]
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
                f"within {self.timeout_s:g}s{first}; the broker may be unreachable."
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

    # -- transactions: the group commit ----------------------------------------------------------
    def produce(
        self,
        topic: str,
        records: Sequence[OutgoingRecord],
        idempotency: IdempotencyKey | None = None,
    ) -> list[tuple[int, int]]:
        """Partition and offset of each record once its transaction committed."""
        return self.submit(topic, records, idempotency).offsets or []

    def submit(
        self,
        topic: str,
        records: Sequence[OutgoingRecord],
        idempotency: IdempotencyKey | None = None,
    ) -> Job:
        """Queue a request for the transaction thread and wait for its outcome: the resolved
        job, or the exception it failed with (KafkaUnavailable, KeyReused, RecordTooLarge...)."""
        job = Job(topic, records, time.monotonic() + self.timeout_s, idempotency)
        self._start_committer()
        self._jobs.put(job)
        if not job.done.wait(self.timeout_s) and job.cancel():
            raise KafkaUnavailable(
                f"Kafka transaction thread busy for {self.timeout_s:g}s; the broker may be "
                "slow or unreachable. Retry later (nothing of this request was written)."
            )
        # Taken: the thread resolves it within its own bounds (produce, then commit or abort).
        if not job.done.wait(3 * self.timeout_s + 5):
            raise KafkaUnavailable(
                "Kafka transaction outcome unknown; retry later with the same Idempotency-Key "
                "(without one, records of this request may have been written)"
            )
        if job.error is not None:
            raise job.error
        return job

    def _start_committer(self) -> None:
        with self._lock:
            if self._committer is None or not self._committer.is_alive():
                self._closing.clear()
                self._committer = threading.Thread(
                    target=self._commit_loop, name="kafka-transactions", daemon=True
                )
                self._committer.start()

    def _commit_loop(self) -> None:
        while True:
            group, self._later = self._later, []
            try:
                group.append(self._jobs.get(timeout=0.1 if not group else 0))
            except queue.Empty:
                if not group:
                    if self._closing.is_set():
                        return
                    continue
            while True:  # everything queued while the previous commit ran
                try:
                    group.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            try:
                self._run_group(group)
            except Exception as error:  # never leave a request without an answer
                log.exception("kafka transaction failed unexpectedly")
                self._discard_producer()
                for job in group:
                    if not job.done.is_set():
                        job.fail(KafkaFailed(f"Kafka transaction failed: {error!r}"))

    def _run_group(self, group: list[Job]) -> None:
        jobs = [job for job in group if job.state == "taken" or job.take()]
        if not jobs:
            return
        deadline = min(job.deadline for job in jobs)
        try:
            producer = self._transactional(deadline)
        except KafkaUnavailable as error:
            for job in jobs:
                job.fail(error)
            return
        plan = plan_group(jobs, self.answers if self._answers_current else None)
        self._later.extend(plan.later)
        if plan.produce:
            self._transaction(producer, plan.produce)

    def _transaction(self, producer: Producer, jobs: list[Job]) -> None:
        deadline = min(job.deadline for job in jobs)
        try:
            producer.begin_transaction()
        except KafkaException as error:  # e.g. a fatal error since the last group
            self._discard_producer()
            for job in jobs:
                job.fail(KafkaUnavailable(f"Kafka transaction could not begin: {error}"))
            return
        for job in jobs:
            try:
                job.batch = self.send(job.topic, job.records, deadline)
            except (KafkaUnavailable, KafkaFailed, RecordTooLarge, TopicNotFound) as error:
                job.error = error
                break  # the transaction is aborted anyway
        producer.flush(max(deadline - time.monotonic(), 0.0))
        for job in jobs:
            if job.batch is not None and job.error is None:
                try:
                    job.offsets = self.wait(job.topic, job.batch, deadline)
                except (KafkaUnavailable, KafkaFailed, RecordTooLarge, TopicNotFound) as error:
                    job.error = error
        if any(job.error is not None or job.batch is None for job in jobs):
            self._abort(producer, jobs)
            return
        try:
            for job in jobs:
                if job.idempotency is not None and job.answer_key is not None:
                    answer = Answer(
                        job.idempotency.fingerprint, tuple(job.offsets or ()), time.time()
                    )
                    producer.produce(
                        self.settings.api_requests_topic, encode_answer(answer), job.answer_key
                    )
        except (KafkaException, BufferError) as error:
            for job in jobs:
                job.error = KafkaUnavailable(f"Kafka refused the Idempotency-Key answer: {error}")
            self._abort(producer, jobs)
            return
        if self.before_commit is not None:
            self.before_commit()
        if self.settings.api_pause_before_commit_s:
            time.sleep(self.settings.api_pause_before_commit_s)
        outcome = self._commit(producer)
        if outcome is None:
            now = time.time()
            for job in jobs:
                if job.idempotency is not None and job.answer_key is not None:
                    answer = Answer(job.idempotency.fingerprint, tuple(job.offsets or ()), now)
                    self.answers.put(job.answer_key, answer)
                job.succeed(job.offsets or [])
            return
        for job in jobs:
            job.fail(outcome)

    def _commit(self, producer: Producer) -> KafkaUnavailable | None:
        """Commit, retrying a retriable failure for up to the request timeout; None when
        committed, else the error each request of the group gets."""
        give_up = time.monotonic() + self.timeout_s
        while True:
            try:
                producer.commit_transaction(max(give_up - time.monotonic(), 0.5))
                return None
            except KafkaException as exception:
                error = _kafka_error(exception)
                if error.retriable() and time.monotonic() < give_up:
                    continue
                if error.txn_requires_abort():
                    self._abort(producer, [])
                    return KafkaUnavailable(
                        f"Kafka transaction aborted at commit ({error.str()}); retry later "
                        "(nothing of this request was written)"
                    )
                # Fatal, or still unknown after retrying: whether the coordinator committed is
                # not known here. A new producer's init_transactions settles it, and re-reading
                # the answers tells a keyed retry the truth.
                log.error("kafka commit outcome unknown: %s", error)
                self._discard_producer()
                return KafkaUnavailable(
                    f"Kafka transaction commit failed ({error.str()}); retry later with the same "
                    "Idempotency-Key (without one, records of this request may have been written)"
                )

    def _abort(self, producer: Producer, jobs: list[Job]) -> None:
        """Abort the open transaction: none of its records becomes visible to read_committed
        readers. Jobs refused for their own records get their error, the others are tried
        once more (in the next group) while their deadline allows, else get 503."""
        try:
            producer.abort_transaction(self.timeout_s)
        except KafkaException as error:
            # The transaction stays open on the broker until a new producer with this
            # transactional.id fences it (next group) or transaction.timeout.ms: never committed.
            log.warning("kafka abort failed (%s); replacing the producer", error)
            self._discard_producer()
        guilty, innocent = blame(jobs)
        for job in guilty:
            job.fail(job.error or KafkaFailed("Kafka refused the records"))
        for job in innocent:
            # Tried once more while its deadline allows: its records may only have failed with
            # the transaction (purged by the abort, or a producer epoch the failed records of an
            # earlier transaction left behind, which the abort bumps).
            if job.retries == 0 and time.monotonic() < job.deadline:
                job.retries += 1
                job.batch, job.offsets, job.error = None, None, None
                self._later.append(job)
                continue
            reason = str(job.error) if job.error is not None else "another request's records failed"
            job.fail(
                KafkaUnavailable(
                    f"{reason.removesuffix('.')}; the transaction was aborted: nothing of this "
                    "request was written. Retry later."
                )
            )


def _kafka_error(exception: KafkaException) -> KafkaError:
    found = exception.args[0] if exception.args else None
    if isinstance(found, KafkaError):
        return found
    return KafkaError(KafkaError._FAIL, str(exception))


def _refused(what: str, error: KafkaException) -> Exception:
    """A produce call the producer refused: too large (413) or anything else (500)."""
    if error.args and isinstance(error.args[0], KafkaError) and error.args[0].code() in _TOO_LARGE:
        return RecordTooLarge(
            f"Kafka producer refused {what} as too large: key + value + {RECORD_OVERHEAD_BYTES} "
            f"bytes of record overhead must stay within {MESSAGE_MAX_BYTES} bytes ({error})"
        )
    return KafkaFailed(f"Kafka refused {what}: {error}")
