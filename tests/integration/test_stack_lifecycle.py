"""`pinpipe up` twice is harmless; `pinpipe down` leaves no process and no listening port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.conftest import TEST_PORTS

pytestmark = pytest.mark.integration

# The session's test stack may be up: this one sits 100 ports above it.
PORTS = {
    "kafka": TEST_PORTS["PINPIPE_KAFKA_PORT"] + 100,
    "controller": TEST_PORTS["PINPIPE_KAFKA_CONTROLLER_PORT"] + 100,
    "connect": TEST_PORTS["PINPIPE_CONNECT_PORT"] + 100,
    "s3": TEST_PORTS["PINPIPE_S3_PORT"] + 100,
    "kinesis": TEST_PORTS["PINPIPE_KINESIS_PORT"] + 100,
    "api": TEST_PORTS["PINPIPE_API_PORT"] + 100,
    "airflow": TEST_PORTS["PINPIPE_AIRFLOW_PORT"] + 100,
}


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _pinpipe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _stack_processes(run_dir: Path) -> list[psutil.Process]:
    """Every live process whose command line or working files mention this run folder."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(run_dir) in cmdline or any(str(p) in cmdline for p in PORTS.values()):
            found.append(proc)
    return found


def _topic_records(kafka_port: int) -> int:
    """Records in the three table topics (the feed's prefix is the default, `pinpipe`)."""
    consumer = Consumer({"bootstrap.servers": f"127.0.0.1:{kafka_port}", "group.id": "probe"})
    try:
        total = 0
        for table in ("pin", "geo", "user"):
            for partition in range(3):
                total += consumer.get_watermark_offsets(
                    TopicPartition(f"pinpipe.{table}", partition), timeout=10
                )[1]
        return total
    finally:
        consumer.close()


def _wait_for_records(kafka_port: int, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _topic_records(kafka_port) > 0:
            return True
        time.sleep(1)
    return False


def test_up_twice_is_harmless_and_down_leaves_nothing() -> None:
    tmp_path = Path(tempfile.mkdtemp(prefix="pinpipe-lifecycle-"))  # see conftest: not basetemp
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PINPIPE_", "AWS_"))},
        "PINPIPE_RUN_DIR": str(tmp_path / "run"),
        "PINPIPE_KAFKA_PORT": str(PORTS["kafka"]),
        "PINPIPE_KAFKA_CONTROLLER_PORT": str(PORTS["controller"]),
        "PINPIPE_CONNECT_PORT": str(PORTS["connect"]),
        "PINPIPE_S3_PORT": str(PORTS["s3"]),
        "PINPIPE_KINESIS_PORT": str(PORTS["kinesis"]),
        "PINPIPE_API_PORT": str(PORTS["api"]),
        "PINPIPE_AIRFLOW_PORT": str(PORTS["airflow"]),
        "COLUMNS": "200",
        # the emulator feed is on (as for users); the heavy workloads are tested elsewhere
        "PINPIPE_FEED_IDS_PER_SECOND": "2",
        "PINPIPE_FEED_SEED_ROWS": "500",
        "PINPIPE_STREAM_ENABLED": "false",
        "PINPIPE_AIRFLOW_ENABLED": "false",
    }
    assert not any(_listening(p) for p in PORTS.values()), "test ports busy before the test"
    try:
        first = _pinpipe(env, "up")
        assert first.returncode == 0, first.stdout + first.stderr
        pids_before = {p.pid for p in _stack_processes(tmp_path / "run")}
        assert all(_listening(p) for p in PORTS.values() if p != PORTS["airflow"])
        assert "emulator-batch: ready" in first.stdout and "emulator-stream: ready" in first.stdout
        assert _topic_records(PORTS["kafka"]) > 0 or _wait_for_records(PORTS["kafka"])

        second = _pinpipe(env, "up")
        assert second.returncode == 0, second.stdout + second.stderr
        assert "already running" in second.stdout
        pids_after = {p.pid for p in _stack_processes(tmp_path / "run")}
        assert pids_after == pids_before, "a second `up` must not restart or duplicate anything"
    finally:
        down = _pinpipe(env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not _stack_processes(tmp_path / "run"), "processes left behind"
    assert not [p for p in PORTS.values() if _listening(p)], "ports still listening"
