"""Exactly once into Kafka through the API: transactions and Idempotency-Key, under faults.

Each test runs its own `pinpipe api` (gunicorn, as the stack runs it) with a transactional.id of
its own, and counts what a read_committed consumer (as the S3 sink) sees of its rows, next to
what a read_uncommitted one sees (the records that reached the broker, committed or not)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from confluent_kafka import Consumer, KafkaError, TopicPartition

from pipeline.config import Settings
from pipeline.stack.components import kafka_ready
from pipeline.stack.supervisor import Supervisor
from tests.support.api import (
    KAFKA_JSON,
    api_process,
    assert_error,
    geo_row,
    own_transactional_id,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

Marks = dict[int, int]


def reader(settings: Settings, isolation: str = "read_uncommitted") -> Consumer:
    return Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": f"test-exactly-once-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
        }
    )


def marks(settings: Settings, topic: str) -> Marks:
    """The high watermark of each partition: the end of the log, committed or not (a
    read_committed client would get the last stable offset instead)."""
    client = reader(settings)
    try:
        partitions = client.list_topics(topic, timeout=30).topics[topic].partitions
        return {
            p: client.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in partitions
        }
    finally:
        client.close()


def copies(settings: Settings, topic: str, since: Marks, ind: int, isolation: str) -> int:
    """How many records of row `ind` the topic holds after `since`, as a reader with this
    isolation level sees them, read to the end of the log: for read_committed that needs every
    transaction in it to be over (committed or aborted)."""
    ends = marks(settings, topic)
    consumer = reader(settings, isolation)
    pending = {p for p, end in ends.items() if end > since.get(p, 0)}
    seen: Counter[int] = Counter()
    try:
        if pending:
            consumer.assign([TopicPartition(topic, p, since.get(p, 0)) for p in pending])
        deadline = time.monotonic() + 120
        while pending:
            assert time.monotonic() < deadline, f"could not read {topic} to its end: {pending}"
            message = consumer.poll(1.0)
            if message is None:
                continue
            error = message.error()
            partition, offset = message.partition(), message.offset()
            assert partition is not None and offset is not None
            if error is not None:
                # read_committed ends at the last stable offset: a transaction left open by a
                # killed API would keep it below the end (the restarted API must abort it)
                assert error.code() == KafkaError._PARTITION_EOF, error
                if offset >= ends[partition]:
                    pending.discard(partition)
                continue
            seen[json.loads(message.value() or b"{}").get("ind", -1)] += 1
            if offset + 1 >= ends[partition]:
                pending.discard(partition)
    finally:
        consumer.close()
    return seen[ind]


def post(url: str, topic: str, body: Any, key: str | None, timeout: float = 120) -> Any:
    headers = {"Content-Type": KAFKA_JSON}
    if key is not None:
        headers["Idempotency-Key"] = f'"{key}"'
    return requests.post(f"{url}/topics/{topic}", json=body, headers=headers, timeout=timeout)


def in_background(call: Any) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["answer"] = call()
        except requests.RequestException as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def sigkill_tree(pid: int) -> None:
    """A crash of the API: its gunicorn master and worker die at once."""
    process = psutil.Process(pid)
    for each in [*process.children(recursive=True), process]:
        with contextlib.suppress(psutil.NoSuchProcess):
            each.send_signal(signal.SIGKILL)


def fresh_row() -> tuple[int, dict[str, Any]]:
    ind = random.randint(10_000_000, 99_999_999)
    return ind, {"records": [{"value": geo_row(ind)}]}


def test_api_killed_between_produce_and_commit_leaves_nothing_and_the_retry_lands_once(
    stack: Settings, tmp_path: Path
) -> None:
    topic = stack.topics["geo"]
    transactional_id, key = own_transactional_id(stack), str(uuid.uuid4())
    ind, body = fresh_row()
    since = marks(stack, topic)
    paused = {
        "PINPIPE_API_TRANSACTIONAL_ID": transactional_id,
        "PINPIPE_API_PAUSE_BEFORE_COMMIT_S": "600",
        "PINPIPE_API_TIMEOUT_S": "30",
    }
    with api_process(stack, tmp_path / "killed.log", **paused) as (url, process):
        thread, outcome = in_background(lambda: post(url, topic, body, key))
        # the records reached the broker (acks=all), inside the transaction not yet committed
        wait_for(
            lambda: copies(stack, topic, since, ind, "read_uncommitted") == 1,
            120,
            "the request's record in the broker, uncommitted",
            interval_s=0.5,
        )
        sigkill_tree(process.pid)
        thread.join(60)
    assert "error" in outcome, outcome  # the client saw the connection drop, no answer

    with api_process(
        stack, tmp_path / "restarted.log", PINPIPE_API_TRANSACTIONAL_ID=transactional_id
    ) as (url, _process):
        retry = post(url, topic, body, key)  # what the emulator does: same body, same key
        assert retry.status_code == 200, retry.text
        assert "Idempotent-Replayed" not in retry.headers  # the first attempt never committed

    # the restart aborted the killed API's transaction: read_committed readers reach the end
    assert copies(stack, topic, since, ind, "read_committed") == 1
    assert copies(stack, topic, since, ind, "read_uncommitted") == 2  # the aborted copy too


def test_same_key_twice_is_written_once_also_across_a_restart(
    stack: Settings, tmp_path: Path
) -> None:
    topic = stack.topics["geo"]
    transactional_id, key = own_transactional_id(stack), str(uuid.uuid4())
    ind, body = fresh_row()
    since = marks(stack, topic)
    with api_process(
        stack, tmp_path / "first.log", PINPIPE_API_TRANSACTIONAL_ID=transactional_id
    ) as (url, _process):
        first = post(url, topic, body, key)
        assert first.status_code == 200, first.text
        again = post(url, topic, body, key)
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
        assert again.headers["Idempotent-Replayed"] == "true"

        _other_ind, other_body = fresh_row()
        reused = post(url, topic, other_body, key)
        error = assert_error(reused, 422, 42203)
        assert key in error["message"] and "other records" in error["message"]

    with api_process(
        stack, tmp_path / "second.log", PINPIPE_API_TRANSACTIONAL_ID=transactional_id
    ) as (url, _process):
        after_restart = post(url, topic, body, key)
        assert after_restart.status_code == 200, after_restart.text
        assert after_restart.json() == first.json()
        assert after_restart.headers["Idempotent-Replayed"] == "true"

    assert copies(stack, topic, since, ind, "read_committed") == 1
    assert copies(stack, topic, since, _other_ind, "read_uncommitted") == 0


def test_concurrent_requests_with_one_key_wait_for_the_first(
    stack: Settings, tmp_path: Path
) -> None:
    """Retries sent while the first attempt is still in its transaction get its answer."""
    topic = stack.topics["geo"]
    key = str(uuid.uuid4())
    ind, body = fresh_row()
    since = marks(stack, topic)
    slow_commit = {"PINPIPE_API_PAUSE_BEFORE_COMMIT_S": "2", "PINPIPE_API_TIMEOUT_S": "30"}
    with api_process(stack, tmp_path / "api.log", **slow_commit) as (url, _process):
        posts = [in_background(lambda: post(url, topic, body, key)) for _ in range(4)]
        for thread, _outcome in posts:
            thread.join(120)
    answers = [outcome["answer"] for _thread, outcome in posts]
    assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers]
    assert len({json.dumps(answer.json()) for answer in answers}) == 1
    assert sum(answer.headers.get("Idempotent-Replayed") == "true" for answer in answers) == 3
    assert copies(stack, topic, since, ind, "read_committed") == 1


def test_broker_killed_mid_request_gives_503_and_the_retry_lands_once(
    stack: Settings, tmp_path: Path
) -> None:
    topic = stack.topics["geo"]
    key = str(uuid.uuid4())
    ind, body = fresh_row()
    since = marks(stack, topic)
    supervisor = Supervisor(stack)
    with api_process(stack, tmp_path / "api.log", PINPIPE_API_PAUSE_BEFORE_COMMIT_S="3") as (
        url,
        _process,
    ):
        thread, outcome = in_background(lambda: post(url, topic, body, key))
        wait_for(
            lambda: copies(stack, topic, since, ind, "read_uncommitted") == 1,
            60,
            "the request's record in the broker, uncommitted",
            interval_s=0.2,
        )
        broker = supervisor.info()["kafka"]["pid"]
        os.killpg(os.getpgid(broker), signal.SIGKILL)  # supervisord restarts it
        thread.join(120)
        assert_error(outcome["answer"], 503, 50003)

        wait_for(lambda: kafka_ready(stack), 180, "the broker back", interval_s=0.5)
        deadline = time.monotonic() + 180
        while True:
            retry = post(url, topic, body, key)
            if retry.status_code == 200 or time.monotonic() > deadline:
                break
            assert_error(retry, 503, 50003)
            time.sleep(1)
        assert retry.status_code == 200, retry.text

    assert copies(stack, topic, since, ind, "read_committed") == 1
