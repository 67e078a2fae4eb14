"""The streaming job (`pinpipe stream`) as a real subprocess in tests, with its own lake root."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import Settings
from tests.support.waiting import wait_for

# Generous: a Spark driver and its first micro-batches on a busy two-core machine.
JOB_START_TIMEOUT_S = 480


@dataclass
class StreamJobProcess:
    """`pinpipe stream` as its own process group (the Python driver and its JVM)."""

    lake: str
    workdir: Path
    runs: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def progress_file(self) -> Path:
        return self.workdir / "progress.json"

    def start(self, *extra: str) -> None:
        self.runs += 1
        log = (self.workdir / f"job-{self.runs}.log").open("wb")
        command = [
            sys.executable, "-m", "pipeline.cli", "stream",
            "--lake", self.lake,
            "--trigger-seconds", "1",
            "--progress-file", str(self.progress_file),
            *extra,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PINPIPE_SPARK_DRIVER_MEMORY": "1g"},
            start_new_session=True,
        )

    def log_tail(self, lines: int = 40) -> str:
        text = (self.workdir / f"job-{self.runs}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def progress(self) -> dict[str, Any] | None:
        try:
            state: dict[str, Any] = json.loads(self.progress_file.read_text())
        except (OSError, ValueError):
            return None
        return state

    def input_rows(self) -> dict[str, int]:
        state = self.progress() or {"queries": {}}
        return {table: int(q["input_rows"]) for table, q in state["queries"].items()}

    def wait_for(self, condition: Callable[[], object], timeout_s: float, what: str) -> None:
        """`wait_for` while the job runs: fails at once if it exits, kills it on a timeout."""

        def met() -> bool:
            if condition():
                return True
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"stream job exited ({self.process.returncode}) while waiting for "
                            f"{what}:\n{self.log_tail()}")  # fmt: skip
            return False

        def killed_log_tail() -> str:
            self.kill()
            return self.log_tail()

        wait_for(met, timeout_s, what, interval_s=0.5, on_timeout=killed_log_tail)

    def wait_exit(self, timeout_s: float) -> dict[str, Any]:
        """Wait for the job to stop by itself; its final report (the last output line)."""
        assert self.process is not None
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"stream job did not stop within {timeout_s}s:\n{self.log_tail()}")
        assert code == 0, f"stream job failed ({code}):\n{self.log_tail()}"
        reports = [
            line for line in self.log_tail(400).splitlines() if line.startswith('{"batches"')
        ]
        assert reports, self.log_tail()
        report: dict[str, Any] = json.loads(reports[-1])
        return report

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown hook, no graceful stop."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)


def new_job(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> StreamJobProcess:
    scenario = uuid.uuid4().hex[:8]
    lake = f"s3a://{stack.lake_bucket}/stream-tests/{scenario}/lake"
    return StreamJobProcess(lake=lake, workdir=tmp_path_factory.mktemp(f"stream-{scenario}"))
