"""The local stack's Kinesis server (kinesalite) under concurrent writes and a kill (issue 14).

moto's Kinesis assigned sequence numbers without a lock and lost 4 of 5,000 concurrently put
records while answering 200. Here 5,000 records go to a one-shard stream from 16 threads, half as
PutRecord calls and half in PutRecords batches; every acknowledged record must be read back
exactly once, in sequence-number order. kinesis-mock, the server before kinesalite, kept its
streams in memory and wrote them whole every 2 s, so a kill lost what came after the last write;
here the server is SIGKILLed while 8 threads post, and every acknowledged record must be there
after the restart.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from pipeline.config import Settings
from pipeline.stack.provision import ensure_streams
from tests.support.kinesis_server import kinesis_client, kinesis_server
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

RECORDS = 5_000
BATCH = 10
THREADS = 16


@pytest.fixture
def one_shard_stream(stack: Settings) -> Iterator[tuple[Any, str]]:
    prefix = f"race{uuid.uuid4().hex[:6]}"
    settings = stack.model_copy(update={"topic_prefix": prefix, "kinesis_shards": 1})
    ensure_streams(settings)
    stream = settings.streams["pin"]
    config = Config(max_pool_connections=THREADS * 2, retries={"mode": "standard"})
    kinesis = boto3.client("kinesis", config=config, **stack.boto3_kwargs("kinesis"))
    yield kinesis, stream
    for name in settings.streams.values():
        kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)


def read_all(kinesis: Any, stream: str) -> list[tuple[str, bytes]]:
    """(sequence number, data) of every record of the stream's shards, in shard order."""
    records: list[tuple[str, bytes]] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            records += [(r["SequenceNumber"], r["Data"]) for r in page["Records"]]
            if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
                break
            iterator = page.get("NextShardIterator")
    return records


def test_concurrent_puts_to_one_shard_keep_every_acknowledged_record(
    one_shard_stream: tuple[Any, str],
) -> None:
    kinesis, stream = one_shard_stream
    acknowledged: dict[bytes, str] = {}
    lock = threading.Lock()

    def put_one(index: int) -> None:
        data = f"record-{index}".encode()
        answer = kinesis.put_record(StreamName=stream, Data=data, PartitionKey=str(index))
        with lock:
            acknowledged[data] = answer["SequenceNumber"]

    def put_batch(first: int) -> None:
        pending = [f"record-{i}".encode() for i in range(first, first + BATCH)]
        while pending:  # entries the shard throttled are retried; the others are acknowledged
            entries: Any = [{"Data": data, "PartitionKey": data.decode()} for data in pending]
            answer = kinesis.put_records(StreamName=stream, Records=entries)
            retry = []
            for data, result in zip(pending, answer["Records"], strict=True):
                if "SequenceNumber" in result:
                    with lock:
                        acknowledged[data] = result["SequenceNumber"]
                else:
                    retry.append(data)
            pending = retry

    half = RECORDS // 2
    with ThreadPoolExecutor(THREADS) as pool:
        calls = [pool.submit(put_one, i) for i in range(half)]
        calls += [pool.submit(put_batch, first) for first in range(half, RECORDS, BATCH)]
        for call in calls:
            call.result()

    assert len(acknowledged) == RECORDS
    assert len(set(acknowledged.values())) == RECORDS, "two records got one sequence number"
    records = read_all(kinesis, stream)
    times_read = Counter(data for _, data in records)
    lost = [data for data in acknowledged if times_read[data] == 0]
    doubled = [data for data, count in times_read.items() if count > 1]
    assert not lost, f"{len(lost)} acknowledged records lost, e.g. {lost[:3]}"
    assert not doubled, f"{len(doubled)} records read more than once, e.g. {doubled[:3]}"
    assert len(records) == RECORDS
    assert {data: sequence for sequence, data in records} == acknowledged
    sequences = [int(sequence) for sequence, _ in records]
    assert sequences == sorted(sequences), "a shard returns records in sequence-number order"


def test_a_killed_server_keeps_every_acknowledged_record(tmp_path: Path) -> None:
    """SIGKILL mid-posting, then SIGTERM: nothing acknowledged is lost, nothing is doubled."""
    acknowledged: set[bytes] = set()
    lock = threading.Lock()
    with kinesis_server(tmp_path / "kinesis", tmp_path / "kinesis.log") as server:
        kinesis = kinesis_client(server.url, THREADS)
        kinesis.create_stream(StreamName="kill", ShardCount=1)
        kinesis.get_waiter("stream_exists").wait(
            StreamName="kill", WaiterConfig={"Delay": 0.2, "MaxAttempts": 50}
        )
        no_retries = kinesis_client(server.url, THREADS, retry=False)  # a kill must surface

        def post(thread: int) -> None:
            for batch in range(10_000):
                pending = [f"{thread}-{batch}-{i}".encode() for i in range(BATCH * 5)]
                entries: Any = [{"Data": data, "PartitionKey": data.decode()} for data in pending]
                try:
                    answer = no_retries.put_records(StreamName="kill", Records=entries)
                except Exception:  # the server is gone: what was not answered is not acknowledged
                    return
                with lock:
                    acknowledged.update(
                        data
                        for data, result in zip(pending, answer["Records"], strict=True)
                        if "SequenceNumber" in result
                    )

        with ThreadPoolExecutor(THREADS // 2) as pool:
            posters = [pool.submit(post, thread) for thread in range(THREADS // 2)]
            wait_for(lambda: len(acknowledged) >= 5_000, 120, "5,000 acknowledged records", 0.05)
            assert server.kill() == -9
            for poster in posters:
                poster.result()
        with lock:
            killed_at = set(acknowledged)

        server.start()
        after_kill = Counter(data for _, data in read_all(kinesis_client(server.url), "kill"))
        assert not [data for data in killed_at if after_kill[data] == 0], "lost by the kill"
        assert not [data for data, count in after_kill.items() if count > 1], "doubled"
        assert server.stop() == 0, "SIGTERM is an orderly stop"
        server.start()
        after_stop = Counter(data for _, data in read_all(kinesis_client(server.url), "kill"))
        assert after_stop == after_kill, "the orderly stop changed the stream"
