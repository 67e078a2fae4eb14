"""The keeper kinesis-mock runs under (pipeline/stack/kinesis_keeper.py), against the real
kinesis-mock: a server whose plain port stops answering is restarted with its records.

The fault seen under load was the plain HTTP port alone going dead (the process and the TLS port
stayed up). Its stand-in here is SIGSTOP to the kinesis-mock child, which freezes both ports: the
keeper sees the same thing on the plain port (connections accepted by the kernel, no answer), and
the frozen server cannot write its state on the way out either, which is the harder case.

The guarantee tested: every record acknowledged before the state kinesis-mock last wrote whole
before the freeze is readable after the restart. A freeze mid-write leaves the file cut; the keeper
then restores its own last whole copy (refreshed every COPY_EVERY_S while the server answers), so
the test freezes the server only once that copy holds the records, and runs both cases (the
cut one by cutting the frozen server's file as such a write would have).
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest

from pipeline.config import get_settings
from pipeline.stack import kinesis_keeper
from pipeline.stack.kinesis_state import STATE_FILE, WHOLE_COPY
from pipeline.stack.servers import kinesis_environment, kinesis_mock_main, node_binary
from tests.support.ports import free_port
from tests.support.waiting import wait_for

RECORDS = 20
# detection (3 probes of up to 5 s), the orderly stop of a frozen server (16 s for a write that
# never comes, 15 s before SIGKILL) and a start, with room for a loaded machine
RESTART_DEADLINE_S = 300


@dataclass
class KeptServer:
    keeper: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def server_pid(self) -> int | None:
        """The kinesis-mock process the keeper runs now."""
        try:
            children = psutil.Process(self.keeper.pid).children()
        except psutil.NoSuchProcess:
            return None
        return children[0].pid if children else None

    def client(self) -> Any:
        return boto3.client(
            "kinesis",
            endpoint_url=f"http://127.0.0.1:{self.port}",
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )


@pytest.fixture
def kept_server(tmp_path: Path) -> Iterator[KeptServer]:
    node = node_binary()
    main = kinesis_mock_main(get_settings())
    if node is None or not main.is_file():
        pytest.fail(f"kinesis-mock needs node and {main}: run `make setup`")
    settings = get_settings().model_copy(
        update={"kinesis_port": free_port(), "kinesis_tls_port": free_port()}
    )
    data_dir = tmp_path / "kinesis"
    data_dir.mkdir()
    log = tmp_path / "keeper.log"
    environment = {**os.environ, **kinesis_environment(settings, data_dir)}
    with log.open("wb") as output:
        keeper = subprocess.Popen(
            [sys.executable, kinesis_keeper.__file__, node, str(main)],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = KeptServer(keeper, settings.kinesis_port, data_dir, log)
    try:
        wait_for(
            lambda: kinesis_keeper.miss(server.port) is None,
            120,
            "kinesis-mock under the keeper to answer",
            on_timeout=server.log_text,
        )
        yield server
    finally:
        try:
            pids = [p.pid for p in psutil.Process(keeper.pid).children(recursive=True)]
        except psutil.NoSuchProcess:  # the test stopped it
            pids = []
        for pid in pids:  # a server left frozen by a failed test still stops
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        keeper.terminate()
        try:
            keeper.wait(kinesis_keeper.stop_budget_s() + 30)
        except subprocess.TimeoutExpired:
            keeper.kill()
            keeper.wait()
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def read_stream(kinesis: Any, stream: str) -> dict[str, bytes]:
    """Every record of the stream from TRIM_HORIZON: sequence number → data."""
    records: dict[str, bytes] = {}
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            records.update((r["SequenceNumber"], r["Data"]) for r in page["Records"])
            if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
                break
            iterator = page.get("NextShardIterator")
    return records


@pytest.mark.parametrize("cut_by_the_freeze", [False, True], ids=["file-whole", "file-cut"])
def test_a_server_whose_port_stops_answering_is_restarted_with_its_records(
    kept_server: KeptServer, cut_by_the_freeze: bool
) -> None:
    kinesis = kept_server.client()
    stream = f"liveness-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=stream, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    payloads = [f"record {n} {uuid.uuid4().hex}".encode() for n in range(RECORDS)]
    acknowledged = {
        kinesis.put_record(StreamName=stream, Data=data, PartitionKey=str(n))[
            "SequenceNumber"
        ]: data
        for n, data in enumerate(payloads)
    }
    last = base64.b64encode(payloads[-1])
    copy = kept_server.data_dir / WHOLE_COPY
    wait_for(
        lambda: copy.exists() and last in copy.read_bytes(),
        kinesis_keeper.COPY_EVERY_S * 3 + 60,
        "the keeper's whole copy to hold the records",
        on_timeout=kept_server.log_text,
    )
    frozen = kept_server.server_pid()
    assert frozen is not None
    os.kill(frozen, signal.SIGSTOP)
    assert kinesis_keeper.miss(kept_server.port) is not None  # the fault took: no answer
    if cut_by_the_freeze:  # what a freeze in the middle of a state write leaves
        (kept_server.data_dir / STATE_FILE).write_bytes(b'{"streams": {"')

    wait_for(
        lambda: (
            kept_server.server_pid() not in (None, frozen)
            and kinesis_keeper.miss(kept_server.port) is None
        ),
        RESTART_DEADLINE_S,
        "the keeper to restart kinesis-mock",
        interval_s=2,
        on_timeout=kept_server.log_text,
    )
    assert not psutil.pid_exists(frozen), "the frozen server was left running"
    log = kept_server.log_text()
    assert f"port {kept_server.port} missed {kinesis_keeper.MISSES_BEFORE_RESTART}" in log, log
    assert "restarting kinesis-mock" in log, log
    assert kept_server.keeper.poll() is None, "the keeper itself exited"
    assert ("restored the copy" in log) == cut_by_the_freeze, log

    held = read_stream(kept_server.client(), stream)
    assert held == acknowledged


def test_a_stop_signal_stops_kinesis_mock_through_the_keeper_and_keeps_a_whole_copy(
    kept_server: KeptServer,
) -> None:
    server = kept_server.server_pid()
    assert server is not None
    kept_server.keeper.send_signal(signal.SIGTERM)
    kept_server.keeper.wait(kinesis_keeper.stop_budget_s() + 30)
    assert not psutil.pid_exists(server)
    assert (kept_server.data_dir / WHOLE_COPY).exists()
    assert "no complete state write" not in kept_server.log_text()


def test_a_closed_port_is_a_miss_with_its_reason() -> None:
    why = kinesis_keeper.miss(free_port())
    assert why is not None and "ConnectionRefused" in why


@pytest.mark.parametrize(
    ("value", "seconds"), [("2s", 2.0), ("500ms", 0.5), (" 30s ", 30.0), (None, 2.0), ("x", 2.0)]
)
def test_persist_interval_is_read_as_kinesis_mock_reads_it(
    value: str | None, seconds: float
) -> None:
    assert kinesis_keeper.persist_interval_s(value) == seconds
