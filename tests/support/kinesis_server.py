"""A Kinesis server of a test's own: the local stack's kinesis-server.js (kinesalite) on a free
loopback port over a folder the test chooses, so that a test can kill and restart it."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from pipeline.config import LocalSettings
from pipeline.stack.servers import kinesis_environment, kinesis_server_script, node_binary
from tests.support.ports import free_port
from tests.support.waiting import wait_for


def kinesis_client(url: str, threads: int = 4, retry: bool = True) -> Any:
    """A boto3 Kinesis client for `url` with the local servers' dummy credentials; with
    `retry=False` a failed call raises at once."""
    retries: Any = {"mode": "standard"} if retry else {"total_max_attempts": 1}
    config = Config(max_pool_connections=threads * 2, retries=retries)
    return boto3.client(
        "kinesis",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=config,
    )


class KinesisServer:
    """kinesis-server.js over `data_dir`: `start()`, `kill()` (SIGKILL), `stop()` (SIGTERM)."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        node, script = node_binary(), kinesis_server_script(LocalSettings())
        if node is None or not script.is_file():
            pytest.fail(f"node or {script} missing: run `make setup`")
        self.command = [node, str(script)]
        self.data_dir, self.log = data_dir, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # the local stack's own configuration of it, on this server's port and folder
        settings = LocalSettings(kinesis_port=self.port)
        environment = {**os.environ, **kinesis_environment(settings, self.data_dir)}
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                self.command, env=environment, stdout=out, stderr=subprocess.STDOUT
            )
        client = kinesis_client(self.url)

        def answers() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"kinesis-server.js exited: {self.log.read_text()[-2000:]}")
            try:
                client.list_streams()
            except Exception:  # not listening yet
                return False
            return True

        wait_for(answers, 60, f"kinesis-server.js on {self.url}", 0.1)

    def _end(self, how: signal.Signals) -> int:
        assert self.process is not None
        self.process.send_signal(how)
        code = self.process.wait(timeout=30)
        self.process = None
        return code

    def kill(self) -> int:
        return self._end(signal.SIGKILL)

    def stop(self) -> int:
        return self._end(signal.SIGTERM)


@contextmanager
def kinesis_server(data_dir: Path, log: Path) -> Iterator[KinesisServer]:
    """A started KinesisServer, killed on exit if still running."""
    server = KinesisServer(data_dir, log)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.kill()
