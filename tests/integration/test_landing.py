"""The landing zone against the real broker, Connect worker and S3 server (issue: landing)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from confluent_kafka import Consumer, Producer
from sqlalchemy.engine import Engine

from pipeline.config import Settings
from pipeline.land.connector import ConnectClient, render
from pipeline.landing import not_landed, object_key, window_object_key, window_start
from pipeline.source import database
from pipeline.source.emulator import EmulationConfig, run_emulation
from pipeline.source.loader import seed_database
from pipeline.source.posting import row_value
from pipeline.stack.components import connect_ready
from pipeline.stack.provision import ensure_topics
from pipeline.stack.supervisor import Supervisor
from tests.support.landing import (
    landed_line_count,
    landed_objects,
    record_offsets,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


# -- a second sink on its own topics, for tests that poison or kill ----------------------------
@pytest.fixture
def isolated_sink(stack: Settings) -> Iterator[Settings]:
    """The same connector definition on topics of its own (prefix unique to the test)."""
    prefix = f"iso{uuid.uuid4().hex[:6]}"
    settings = stack.model_copy(
        update={"topic_prefix": prefix, "connector_name": f"{prefix}-s3-sink"}
    )
    ensure_topics(settings)
    connector = render(settings)
    client = ConnectClient(settings)
    client.put_config(connector["name"], connector["config"])

    def running() -> bool:
        try:
            tasks = client.status(settings.connector_name).tasks
        except RuntimeError:  # 404 until the worker has assigned the new connector
            return False
        return bool(tasks) and all(task["state"] == "RUNNING" for task in tasks)

    wait_for(running, 60, "the isolated connector's task to run")
    yield settings
    client.delete(settings.connector_name)


# -- tests ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def source_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine = database.connect(f"sqlite:///{tmp_path_factory.mktemp('source') / 'source.db'}")
    seed_database(engine, 300, seed=7)
    return engine


def test_posted_records_land_exactly_once(
    stack: Settings, source_engine: Engine, tmp_path: Path
) -> None:
    ledger_path = tmp_path / "ledger.jsonl"
    config = EmulationConfig.from_settings(
        stack, mode="batch", count=120, seed=11, ledger=ledger_path, records_per_request=1
    )
    summary = run_emulation(source_engine, config)
    assert summary.accepted == summary.sent > 0 and summary.rejected == summary.failed == 0
    ledger = [json.loads(line) for line in ledger_path.read_text().splitlines()]
    assert len(ledger) == summary.accepted

    topics = list(stack.topics.values())
    # every record ever produced to the topics (this test's and others') lands exactly once
    offsets = {t: record_offsets(stack, t) for t in topics}
    expected_total = sum(
        len(found) for by_partition in offsets.values() for found in by_partition.values()
    )
    wait_for(
        lambda: landed_line_count(stack, topics) >= expected_total,
        stack.landing_flush_interval_ms / 1000 + 60,
        f"{expected_total} records to land",
    )
    assert landed_line_count(stack, topics) == expected_total, "duplicates in the lake"

    window = stack.landing_flush_max_records
    objects = {t: landed_objects(stack, t) for t in topics}
    ids = {entry["id"] for entry in ledger}
    rows = {table: database.fetch_rows(source_engine, table, ids) for table in stack.topics}
    for entry in ledger:
        topic, partition, offset = entry["topic"], entry["partition"], entry["offset"]
        key = window_object_key(topic, partition, offset, window)
        assert key in objects[topic], f"{key} missing for offset {offset}"
        # its line: the records before it in its window (commit markers take offsets, no line)
        in_partition = offsets[topic][partition]
        before = bisect_left(in_partition, offset) - bisect_left(
            in_partition, window_start(offset, window)
        )
        line = objects[topic][key][before]
        assert json.loads(line) == row_value(rows[entry["table"]][entry["id"]])
    assert not_landed(stack, ledger) == []


def test_not_landed_finds_records_in_parts_of_a_window(stack: Settings) -> None:
    """A window past flush.max.bytes lands as parts named by their first offset: the reader
    looks for a record in the last object starting at or before it."""
    topic = f"parts{uuid.uuid4().hex[:6]}"
    s3 = boto3.client("s3", **stack.boto3_kwargs("s3"))
    window = stack.landing_flush_max_records
    assert window > 5
    # window 0 cut into parts at offset 3 (offset 5 not landed yet), window 1 holding one record
    for start, count in ((0, 3), (3, 2), (window, 1)):
        body = b"".join(b'{"i":%d}\n' % (start + i) for i in range(count))
        s3.put_object(Bucket=stack.lake_bucket, Key=object_key(topic, 0, start), Body=body)
    offsets = (0, 2, 3, 4, 5, window, window + 1, 2 * window)
    ledger = [{"topic": topic, "partition": 0, "offset": o} for o in offsets]
    missing = sorted(entry["offset"] for entry in not_landed(stack, ledger))
    assert missing == [5, window + 1, 2 * window]


def test_a_quiet_topic_lands_within_the_flush_interval(stack: Settings) -> None:
    topic = stack.topics["geo"]
    before = landed_line_count(stack, [topic])
    producer = Producer(stack.kafka_client_config())
    for i in range(3):  # far fewer than a window: only the time bound can flush them
        producer.produce(topic, json.dumps({"ind": 10_000 + i, "quiet": True}))
    assert producer.flush(10) == 0
    bound_s = stack.landing_flush_interval_ms / 1000 + 20  # + one poll and commit cycle
    waited = wait_for(
        lambda: landed_line_count(stack, [topic]) >= before + 3, bound_s, "the quiet records"
    )
    print(
        f"quiet topic landed in {waited:.1f}s (flush interval {stack.landing_flush_interval_ms} ms)"
    )


def test_poison_messages_go_to_the_dead_letter_topic(isolated_sink: Settings) -> None:
    settings = isolated_sink
    topic = settings.topics["pin"]
    good = [json.dumps({"index": i, "title": f"good {i}"}).encode() for i in range(5)]
    poison: list[bytes | None] = [
        b"not json {",
        b"[1, 2, 3]",
        b'"just a string"',
        b"\xff\xfe binary",
        b'{"a": 1} garbage',  # content after the object would be cut or lost
        b'{"a": 1}\n{"b": 2}',
        None,  # a tombstone
    ]
    producer = Producer(settings.kafka_client_config())
    order = [good[0], poison[0], good[1], poison[1], good[2], poison[2], poison[3], *good[3:]]
    for value in [*order[:-1], *poison[4:], order[-1]]:
        producer.produce(topic, value, partition=0)
    assert producer.flush(10) == 0

    consumer = Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": f"dlq-reader-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([settings.dlq_topic])
    dead: dict[bytes | None, dict[str, bytes]] = {}

    def all_dead_lettered() -> bool:
        message = consumer.poll(1)
        if message is not None and not message.error():
            raw = message.headers() or []
            pairs = raw.items() if isinstance(raw, dict) else raw
            dead[message.value()] = {k: v for k, v in pairs if isinstance(v, bytes)}
        return len(dead) >= len(poison)

    try:
        wait_for(
            all_dead_lettered,
            60,
            "the poison records in the dead-letter topic",
            interval_s=0,  # the poll itself waits
            on_timeout=lambda: f"found {sorted(map(repr, dead))}",
        )
    finally:
        consumer.close()
    assert set(dead) == set(poison)
    for headers in dead.values():
        assert headers["__connect.errors.topic"] == topic.encode()
        assert b"DataException" in headers["__connect.errors.exception.class.name"]
        assert headers["__connect.errors.exception.message"].startswith(b"value is ")

    wait_for(lambda: landed_line_count(settings, [topic]) >= len(good), 60, "good records")
    lines = [line for lines in landed_objects(settings, topic).values() for line in lines]
    assert sorted(lines) == sorted(good)
    status = ConnectClient(settings).status(settings.connector_name)
    assert status.state == "RUNNING" and all(t["state"] == "RUNNING" for t in status.tasks)


def test_aborted_transactions_never_land(isolated_sink: Settings) -> None:
    """The sink's consumer reads read_committed: an aborted transaction's records stay out."""
    settings = isolated_sink
    topic = settings.topics["geo"]
    producer = Producer(
        {**settings.kafka_client_config(), "transactional.id": f"{settings.topic_prefix}-tx"}
    )
    producer.init_transactions(30)
    aborted = [json.dumps({"ind": i, "aborted": True}).encode() for i in range(3)]
    committed = [json.dumps({"ind": i, "committed": True}).encode() for i in range(2)]
    producer.begin_transaction()
    for value in aborted:
        producer.produce(topic, value, partition=0)
    producer.flush(10)
    producer.abort_transaction(30)
    producer.begin_transaction()
    for value in committed:
        producer.produce(topic, value, partition=0)
    producer.commit_transaction(30)

    # the committed records come after the aborted ones: once they landed, so would have those
    wait_for(lambda: landed_line_count(settings, [topic]) >= len(committed), 60, "the commit")
    lines = [line for lines in landed_objects(settings, topic).values() for line in lines]
    assert lines == committed


def test_connect_worker_killed_mid_stream_loses_and_duplicates_nothing(
    isolated_sink: Settings,
) -> None:
    settings = isolated_sink
    topic = settings.topics["user"]
    total = 3000
    values = [json.dumps({"ind": i, "run": settings.topic_prefix}).encode() for i in range(total)]
    producer = Producer({**settings.kafka_client_config(), "enable.idempotence": True})

    def produce() -> None:
        for i, value in enumerate(values):
            producer.produce(topic, value)
            if i % 100 == 99:
                producer.flush(10)
                time.sleep(0.05)  # keep the stream flowing while the worker dies
        producer.flush(30)

    feeder = threading.Thread(target=produce)
    feeder.start()
    supervisor = Supervisor(settings)
    wait_for(lambda: landed_line_count(settings, [topic]) > 0, 60, "the first objects")
    pid = supervisor.info()["connect"]["pid"]
    os.kill(pid, signal.SIGKILL)  # no shutdown hook, no final commit
    feeder.join()
    # supervisord restarts the worker (autorestart); the connector resumes from committed offsets
    wait_for(lambda: supervisor.info()["connect"]["pid"] not in (0, pid), 60, "a new worker")
    wait_for(lambda: connect_ready(settings), 180, "the restarted worker")
    wait_for(
        lambda: landed_line_count(settings, [topic]) >= total,
        settings.landing_flush_interval_ms / 1000 + 120,
        f"{total} records after the restart",
    )
    time.sleep(settings.landing_flush_interval_ms / 1000 + 5)  # a late duplicate would show now
    lines = [line for lines in landed_objects(settings, topic).values() for line in lines]
    counts = Counter(lines)
    assert len(lines) == total, f"{len(lines) - total} extra lines"
    assert set(counts) == set(values) and max(counts.values()) == 1
