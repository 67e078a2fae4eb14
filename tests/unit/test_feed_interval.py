"""The stack's feeds log a summary line per interval (they run without a progress bar)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from pipeline.config import LocalSettings
from pipeline.source.emulator import EmulationSummary
from pipeline.source.feed import FEED_LOG_EVERY_S, feed_components
from pipeline.source.interval import IntervalSummary, interval_line


def test_interval_line_gives_the_interval_and_the_totals() -> None:
    live = EmulationSummary(mode="batch", sent=2_712, accepted=2_700, rejected=3, failed=9)
    live.retried = 4
    line = interval_line("batch", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), 30.0, 90, live)
    assert line == (
        "2026-01-02T03:04:05Z feed batch: 90 records sent in the last 30s (3.0/s); "
        "total 2,700 accepted, 3 rejected, 9 failed, 4 retried"
    )


def test_a_line_per_interval_with_what_was_sent_since_the_last() -> None:
    lines: list[str] = []
    emitted = threading.Semaphore(0)

    def emit(line: str) -> None:
        lines.append(line)
        emitted.release()

    live = EmulationSummary(mode="stream")
    with IntervalSummary("stream", 0.05, emit) as interval:
        live.sent, live.accepted = 30, 30
        interval.observe(live)
        assert emitted.acquire(timeout=30)
        live.sent, live.accepted = 45, 45
        assert emitted.acquire(timeout=30)
        assert emitted.acquire(timeout=30)  # a quiet interval still gets its line
    sent = [int(line.split(": ")[1].split(" records")[0]) for line in lines]
    assert sum(sent) == 45 and sent[-1] == 0
    assert "total 45 accepted" in lines[-1]


def test_the_stack_feeds_log_an_interval_summary(tmp_path: Path) -> None:
    settings = LocalSettings(run_dir=tmp_path, feed_ids_per_second=1.0)
    for component in feed_components(settings):
        command = component.command
        assert "--no-progress" in command
        assert command[command.index("--log-every") + 1] == str(FEED_LOG_EVERY_S)


def test_a_compose_emulator_with_the_feed_off_idles_until_stopped(tmp_path: Path) -> None:
    """`python -m pipeline.source.feed` (the compose services): 0 ids/s stays up, stops clean."""
    environment = {
        **os.environ,
        "PINPIPE_FEED_IDS_PER_SECOND": "0",
        "PINPIPE_RUN_DIR": str(tmp_path),
    }
    feed = subprocess.Popen(
        [sys.executable, "-m", "pipeline.source.feed", "batch"],
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert feed.stdout is not None
    assert "emulator-batch: off" in feed.stdout.readline()
    assert feed.poll() is None, "an idle feed keeps running"
    feed.send_signal(signal.SIGTERM)
    assert feed.wait(timeout=60) == 0


def test_the_feed_module_names_its_modes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.source.feed", "kafka"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1 and "batch|stream" in result.stderr
