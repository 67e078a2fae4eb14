"""`pinpipe down` stops the stack in waves: producers first, storage last, each component by its
own stop signal (no SIGKILL), then supervisord; nothing is left running."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from tests.conftest import TEST_PORTS

pytestmark = pytest.mark.integration

# The session's test stack may be up, and test_stack_lifecycle sits 100 ports above it.
PORTS = {key: port + 200 for key, port in TEST_PORTS.items()}
STOPPED_LINE = re.compile(r"^» (\S+): stopped \(([\d.]+)s, (.*)\)$", re.MULTILINE)
STARTING_LINE = re.compile(r"^» (\S+): (?:starting|already running)$", re.MULTILINE)


def _pinpipe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _stack_processes(run_dir: Path) -> list[psutil.Process]:
    """Every live process whose command line mentions this run folder or one of its ports."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with_args = " ".join(proc.info["cmdline"] or [])
        if str(run_dir) in with_args or any(str(port) in with_args for port in PORTS.values()):
            found.append(proc)
    return found


def test_down_stops_producers_first_each_by_its_stop_signal() -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="pinpipe-shutdown-")) / "run"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PINPIPE_", "AWS_"))},
        **{key: str(port) for key, port in PORTS.items()},
        "PINPIPE_RUN_DIR": str(run_dir),
        "COLUMNS": "200",
        # the default stack but Airflow (1+ GB, tested in tests/e2e) and the Spark stream job
        "PINPIPE_FEED_IDS_PER_SECOND": "2",
        "PINPIPE_FEED_SEED_ROWS": "500",
        "PINPIPE_STREAM_ENABLED": "false",
        "PINPIPE_AIRFLOW_ENABLED": "false",
    }
    assert not any(_listening(port) for port in PORTS.values()), "test ports busy before the test"
    try:
        up = _pinpipe(env, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        start_order = STARTING_LINE.findall(up.stdout)
        assert {"api", "kafka", "connect", "emulator-batch", "emulator-stream"} <= set(start_order)
    finally:
        down = _pinpipe(env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    stopped = STOPPED_LINE.findall(down.stdout)
    print(down.stdout)  # the measured seconds per component, for the record

    # one line per component, wave by wave: feeds, then the API, Connect, the broker, storage
    order = [name for name, _, _ in stopped]
    assert sorted(order) == sorted(start_order), down.stdout
    assert max(order.index("emulator-batch"), order.index("emulator-stream")) < order.index("api")
    assert order.index("api") < order.index("connect") < order.index("kafka")
    assert order.index("kafka") < min(order.index("s3"), order.index("kinesis"))
    # each ended on its stop signal (a JVM exits 143 on SIGTERM): none needed supervisord's SIGKILL
    for name, _, outcome in stopped:
        assert "SIGKILL" not in outcome, f"{name} was killed: {outcome}"
        assert outcome.startswith(("exit status", "terminated by SIGTERM")), (name, outcome)
    supervisord_log = (run_dir / "logs" / "supervisord.log").read_text()
    assert "SIGKILL" not in supervisord_log, supervisord_log[-3000:]
    assert re.search(r"stack stopped in [\d.]+s", down.stdout), down.stdout

    assert not _stack_processes(run_dir), "processes left behind"
    assert not [port for port in PORTS.values() if _listening(port)], "ports still listening"
    shutil.rmtree(run_dir.parent, ignore_errors=True)  # kept when a check failed: its logs
