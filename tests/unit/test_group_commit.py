"""The API's group commit and idempotency keys, without a broker: which jobs of a group are
produced, answered from committed answers or kept for the next group, who is to blame when a
group fails, and how answers are kept, encoded and expired."""

from __future__ import annotations

import time

import pytest

from pipeline.ingest.idempotency import (
    Answer,
    AnswersUnavailable,
    CommittedAnswers,
    IdempotencyKey,
    KeyReused,
    decode_answer,
    encode_answer,
    fingerprint,
    record_key,
)
from pipeline.ingest.kafka import (
    Job,
    KafkaUnavailable,
    OutgoingRecord,
    RecordTooLarge,
    blame,
    plan_group,
)

TOPIC = "p.geo"
RECORDS = [OutgoingRecord(b'{"ind":1}'), OutgoingRecord(b'{"ind":2}', b"2")]


def job(key: str | None = None, records: list[OutgoingRecord] = RECORDS) -> Job:
    idempotency = None if key is None else IdempotencyKey(key, fingerprint(TOPIC, records))
    return Job(TOPIC, records, time.monotonic() + 5, idempotency)


def committed(*pairs: tuple[str, Answer]) -> CommittedAnswers:
    answers = CommittedAnswers(ttl_s=3600)
    for key, answer in pairs:
        answers.put(record_key(TOPIC, key), answer)
    return answers


def answer_for(records: list[OutgoingRecord], offsets: tuple[tuple[int, int], ...]) -> Answer:
    return Answer(fingerprint(TOPIC, records), offsets, time.time())


def test_jobs_without_keys_are_all_produced() -> None:
    jobs = [job(), job(), job()]
    plan = plan_group(jobs, committed())
    assert plan.produce == jobs
    assert not plan.answered and not plan.later


def test_a_committed_key_is_answered_with_its_offsets_and_nothing_is_produced() -> None:
    answers = committed(("k", answer_for(RECORDS, ((0, 7), (2, 3)))))
    retry, fresh = job("k"), job("new")

    plan = plan_group([retry, fresh], answers)

    assert plan.produce == [fresh]
    assert plan.answered == [retry]
    assert retry.done.is_set() and retry.error is None
    assert retry.offsets == [(0, 7), (2, 3)] and retry.replayed


def test_a_committed_key_with_other_records_is_refused() -> None:
    answers = committed(("k", answer_for(RECORDS, ((0, 7), (2, 3)))))
    other = job("k", [OutgoingRecord(b'{"ind":3}')])

    plan = plan_group([other], answers)

    assert plan.answered == [other] and not plan.produce
    assert isinstance(other.error, KeyReused)
    assert "'k'" in str(other.error) and "other records" in str(other.error)


def test_a_key_twice_in_one_group_waits_for_the_first_outcome() -> None:
    first, second, unkeyed = job("k"), job("k"), job()
    plan = plan_group([first, second, unkeyed], committed())
    assert plan.produce == [first, unkeyed]
    assert plan.later == [second]
    assert not second.done.is_set()


def test_the_same_key_on_another_topic_is_another_request() -> None:
    answers = committed(("k", answer_for(RECORDS, ((0, 1),))))
    elsewhere = Job("p.pin", RECORDS, time.monotonic() + 5, IdempotencyKey("k", "x"))
    assert plan_group([elsewhere], answers).produce == [elsewhere]


def test_keyed_jobs_fail_when_the_answers_are_not_loaded_and_the_others_go_on() -> None:
    keyed, unkeyed = job("k"), job()
    plan = plan_group([keyed, unkeyed], None)
    assert plan.produce == [unkeyed]
    assert isinstance(keyed.error, AnswersUnavailable)


def test_a_retriable_failure_blames_nobody() -> None:
    jobs = [job(), job(), job()]
    jobs[1].error = KafkaUnavailable("broker away")
    jobs[2].error = RecordTooLarge("too large")
    guilty, innocent = blame(jobs)
    assert guilty == [] and innocent == jobs


def test_a_refused_record_blames_its_own_request_only() -> None:
    jobs = [job(), job(), job()]
    jobs[1].error = RecordTooLarge("too large")
    guilty, innocent = blame(jobs)
    assert guilty == [jobs[1]] and innocent == [jobs[0], jobs[2]]


def test_a_job_is_taken_or_cancelled_never_both() -> None:
    taken, cancelled = job(), job()
    assert taken.take() and not taken.cancel() and taken.state == "taken"
    assert cancelled.cancel() and not cancelled.take() and cancelled.state == "cancelled"


def test_fingerprint_follows_value_key_partition_and_topic() -> None:
    base = fingerprint(TOPIC, RECORDS)
    assert fingerprint(TOPIC, list(RECORDS)) == base
    assert fingerprint("p.pin", RECORDS) != base
    assert fingerprint(TOPIC, [RECORDS[0]._replace(key=b"1"), RECORDS[1]]) != base
    assert fingerprint(TOPIC, [RECORDS[0]._replace(partition=0), RECORDS[1]]) != base
    assert fingerprint(TOPIC, list(reversed(RECORDS))) != base
    # no ambiguity from concatenation: a value split differently is another request
    assert fingerprint(TOPIC, [OutgoingRecord(b"ab")]) != fingerprint(
        TOPIC, [OutgoingRecord(b"a"), OutgoingRecord(b"b")]
    )


def test_answers_round_trip_through_their_record() -> None:
    answer = Answer("f" * 64, ((0, 1), (2, 40)), 1_700_000_000.0)
    assert decode_answer(encode_answer(answer), answer.committed_at) == answer


def test_answers_expire_after_their_retention() -> None:
    answers = CommittedAnswers(ttl_s=60)
    key = record_key(TOPIC, "k")
    answers.put(key, Answer("f", ((0, 1),), committed_at=1000.0))
    assert answers.get(key, now=1059.0) is not None
    assert answers.get(key, now=1061.0) is None


@pytest.mark.parametrize("key", ["a", "8e03978e-40d5-43e8-bc93-6894a57f9324"])
def test_record_key_keeps_topic_and_key_apart(key: str) -> None:
    assert record_key("p.geo", key) != record_key("p.pin", key)
    assert record_key("p.geo", key).decode().endswith(key)
