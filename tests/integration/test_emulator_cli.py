"""`pinpipe emulate` as a user runs it: summary, exit codes, and a clean stop on Ctrl-C."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner
from werkzeug.serving import make_server

from pipeline.config import get_settings
from pipeline.source import database
from pipeline.source.cli import register
from pipeline.source.loader import seed_database
from tests.support.fake_api import FakeApi

# Only this stage's commands: the test does not depend on other stages' imports.
DRIVER = (
    "import typer\n"
    "from pipeline.source.cli import register\n"
    "app = typer.Typer()\n"
    "register(app)\n"
    "app()\n"
)


@pytest.fixture
def served() -> Iterator[tuple[FakeApi, str]]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    fake = FakeApi()
    server = make_server("127.0.0.1", 0, fake, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def source_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'source.db'}"
    engine = database.connect(url)
    seed_database(engine, 200, seed=3, workers=0)
    engine.dispose()
    return url


def app() -> typer.Typer:
    application = typer.Typer()
    register(application)
    return application


def test_emulate_prints_a_summary_and_exits_zero(
    served: tuple[FakeApi, str], source_url: str, tmp_path: Path
) -> None:
    fake, url = served
    summary_path = tmp_path / "summary.json"
    result = CliRunner().invoke(
        app(),
        [
            "emulate",
            "--mode", "stream",
            "--count", "7",
            "--api-url", url,
            "--api-key", "k",
            "--source-url", source_url,
            "--summary-json", str(summary_path),
            "--no-progress",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for label in ("sent", "accepted", "rejected", "retried", "records/s", "latency p50", "p99"):
        assert label in result.output
    summary = json.loads(summary_path.read_text())
    assert (summary["sent"], summary["accepted"], summary["rejected"]) == (21, 21, 0)
    assert len(fake.answers(200)) == 21
    assert {r.api_key for r in fake.answers()} == {"k"}
    assert all(r.path.startswith("/streams/streaming-") for r in fake.answers())


def test_emulate_exits_nonzero_and_lists_reasons_on_rejections(
    served: tuple[FakeApi, str], source_url: str
) -> None:
    fake, url = served
    fake.always[get_settings().topics["user"]] = 400  # the CLI takes topics from settings
    result = CliRunner().invoke(
        app(),
        ["emulate", "--count", "4", "--api-url", url, "--source-url", source_url, "--no-progress"],
    )
    assert result.exit_code == 1
    assert "4 records: HTTP 400 40001: told to answer 400" in result.output


def test_emulate_rejects_an_unknown_mode(source_url: str) -> None:
    result = CliRunner().invoke(app(), ["emulate", "--mode", "fast", "--source-url", source_url])
    assert result.exit_code == 2


def test_emulate_without_a_bar_logs_a_summary_line_per_interval(
    served: tuple[FakeApi, str], source_url: str
) -> None:
    """As the stack's feeds run it: their logs show records flowing."""
    _fake, url = served
    result = CliRunner().invoke(
        app(),
        [
            "emulate",
            "--count", "20",
            "--rate", "15",
            "--api-url", url,
            "--source-url", source_url,
            "--no-progress",
            "--log-every", "0.5",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if " feed batch: " in line]
    assert lines, result.output  # 60 records at 15/s: four seconds, eight intervals
    sent = [int(line.split("feed batch: ")[1].split(" records")[0]) for line in lines]
    assert 0 < sum(sent) <= 60
    assert all(" accepted, 0 rejected, 0 failed" in line for line in lines)


def test_ctrl_c_stops_cleanly_with_a_summary_and_a_complete_ledger(
    served: tuple[FakeApi, str], source_url: str, tmp_path: Path
) -> None:
    fake, url = served
    ledger = tmp_path / "ledger.jsonl"
    summary_path = tmp_path / "summary.json"
    command = [
        sys.executable, "-c", DRIVER, "emulate",
        "--rate", "40",
        "--concurrency", "2",
        "--api-url", url,
        "--source-url", source_url,
        "--ledger", str(ledger),
        "--summary-json", str(summary_path),
        "--no-progress",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while len(fake.answers()) < 10:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the emulator posted nothing within 30 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted" in stdout
    assert "Traceback" not in stderr
    summary = json.loads(summary_path.read_text())
    assert summary["interrupted"] is True
    # Every request the server accepted was seen through and written to the ledger.
    lines = ledger.read_text().splitlines()
    assert summary["accepted"] == len(lines) == len(fake.answers(200)) >= 10
    assert summary["failed"] == summary["rejected"] == 0
