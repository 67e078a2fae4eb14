"""Idempotency keys: the answers the API committed, kept so that a retried request is answered
again instead of written again.

A request may carry `Idempotency-Key` (IETF draft "The Idempotency-Key HTTP Header Field",
draft-ietf-httpapi-idempotency-key-header-09). In the Kafka transaction that writes its records,
the API also writes one record to `<prefix>.api-requests`, keyed by topic + key, whose value is
the answer (the records' partitions and offsets) and a fingerprint of the records. Both become
visible together or not at all. The API reads that topic (read_committed) when its producer
starts and adds each answer it commits, so a key already answered gets the same answer, with
nothing written, also after a restart; the same key with other records is refused (422).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 255
# A whole-topic read at start-up is bounded; the topic holds a few hundred bytes per request.
LOAD_POLL_S = 0.5


class IdempotencyKey(NamedTuple):
    """A request's key and the fingerprint of what it asks to write."""

    key: str
    fingerprint: str


class KeyReused(Exception):
    """The key was already used for other records: HTTP 422."""


class AnswersUnavailable(Exception):
    """The committed answers could not be read (yet): HTTP 503."""


@dataclass(frozen=True)
class Answer:
    fingerprint: str
    offsets: tuple[tuple[int, int], ...]
    committed_at: float  # epoch seconds (the record's timestamp once read back)


def fingerprint(topic: str, records: Sequence[Any]) -> str:
    """SHA-256 over the topic and each record's value, key and partition, in order: the same
    request body (whatever its JSON spacing) gives the same fingerprint."""
    digest = hashlib.sha256(topic.encode())
    for record in records:
        for part in (record.value, record.key, record.partition):
            encoded = b"\x00" if part is None else repr(part).encode()
            digest.update(len(encoded).to_bytes(4, "big") + encoded)
    return digest.hexdigest()


def record_key(topic: str, key: str) -> bytes:
    """The requests topic's record key: one key per topic (a key may be reused on another)."""
    return f"{topic}\n{key}".encode()


def encode_answer(answer: Answer) -> bytes:
    return json.dumps(
        {"fingerprint": answer.fingerprint, "offsets": [list(pair) for pair in answer.offsets]},
        separators=(",", ":"),
    ).encode()


def decode_answer(value: bytes, committed_at: float) -> Answer:
    document = json.loads(value)
    return Answer(
        fingerprint=str(document["fingerprint"]),
        offsets=tuple((int(p), int(o)) for p, o in document["offsets"]),
        committed_at=committed_at,
    )


class CommittedAnswers:
    """Answers of committed keyed requests, by requests-topic record key, expiring after
    `ttl_s`; filled from the requests topic and by the transaction thread (its only writer)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._answers: dict[bytes, Answer] = {}
        self._positions: dict[int, int] = {}  # next offset to read, per partition
        self._lock = threading.Lock()
        self.loaded = False

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: bytes, now: float | None = None) -> Answer | None:
        with self._lock:
            answer = self._answers.get(key)
        if answer is None:
            return None
        if (now if now is not None else time.time()) - answer.committed_at > self.ttl_s:
            return None  # past the topic's retention: a retry now is a new request
        return answer

    def put(self, key: bytes, answer: Answer) -> None:
        with self._lock:
            self._answers[key] = answer
            if len(self._answers) % 10_000 == 0:
                self._prune(time.time())

    def _prune(self, now: float) -> None:
        expired = [k for k, a in self._answers.items() if now - a.committed_at > self.ttl_s]
        for key in expired:
            del self._answers[key]

    def catch_up(self, client_config: dict[str, Any], topic: str, timeout_s: float) -> int:
        """Read the committed answers added since the last call (all of them the first time),
        up to the topic's end offsets; returns how many were read. Raises AnswersUnavailable."""
        consumer = Consumer(
            {
                **client_config,
                "group.id": f"{topic}-loader",  # never joins or commits: assign() only
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
        deadline = time.monotonic() + timeout_s
        read = 0
        try:
            metadata = consumer.list_topics(topic, timeout=timeout_s)
            found = metadata.topics.get(topic)
            if found is None or found.error is not None or not found.partitions:
                reason = found.error if found is not None else "missing"
                raise AnswersUnavailable(
                    f"Kafka topic {topic} ({reason}); `pinpipe provision` creates it"
                )
            ends: dict[int, int] = {}
            for partition in found.partitions:
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=max(deadline - time.monotonic(), 1)
                )
                ends[partition] = high
            pending = {p for p, high in ends.items() if self._positions.get(p, 0) < high}
            if pending:
                consumer.assign(
                    [
                        TopicPartition(topic, p, self._positions.get(p, OFFSET_BEGINNING))
                        for p in pending
                    ]
                )
            while pending:
                if time.monotonic() > deadline:
                    raise AnswersUnavailable(
                        f"reading {topic} did not reach its end within {timeout_s:g}s"
                    )
                message = consumer.poll(LOAD_POLL_S)
                if message is None:
                    continue
                partition = message.partition()
                assert partition is not None
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        # read_committed stops at the last stable offset: once the producer's
                        # init_transactions aborted what a killed predecessor left open, the end
                        end = message.offset() or 0
                        self._positions[partition] = max(self._positions.get(partition, 0), end)
                        if end >= ends[partition]:
                            pending.discard(partition)
                        continue
                    raise AnswersUnavailable(f"reading {topic}: {error.str()}")
                offset = message.offset()
                if offset is None:
                    continue
                self._positions[partition] = offset + 1
                value, key = message.value(), message.key()
                if key is None or value is None:
                    continue  # a tombstone: nothing to keep
                _kind, timestamp_ms = message.timestamp()
                try:
                    self.put(key, decode_answer(value, timestamp_ms / 1000))
                except (ValueError, KeyError, TypeError):
                    log.warning(
                        "skipping an unreadable answer at %s[%d]@%d", topic, partition, offset
                    )
                    continue
                read += 1
                if offset + 1 >= ends[partition]:
                    pending.discard(partition)
        except KafkaException as error:
            raise AnswersUnavailable(f"reading {topic}: {error}") from error
        finally:
            consumer.close()
        self.loaded = True
        return read
